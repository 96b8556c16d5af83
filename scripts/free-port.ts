import { createServer } from 'node:net';

/**
 * Ports are handed out below Linux's ephemeral range (32768–60999 by
 * default): a port the OS picks from that range for us is free only until
 * some outgoing connection takes it, and a service listening a few seconds
 * later could then find it in use. Each jest worker gets its own block, and
 * within a process ports are taken in turn from a random start, so parallel
 * test files never pick the same one.
 */
const FIRST = 20_000;
const BLOCK = 1_500;
const BLOCKS = 8;
const worker = Number(process.env.JEST_WORKER_ID ?? 0) % BLOCKS;
const blockStart = FIRST + worker * BLOCK;
let offset = Math.floor(Math.random() * BLOCK);

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < BLOCK; tries++) {
    offset = (offset + 1) % BLOCK;
    const port = blockStart + offset;
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port in ${blockStart}–${blockStart + BLOCK - 1}`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
