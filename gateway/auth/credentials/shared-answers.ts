import cluster from 'node:cluster';

/**
 * Auth's session answers, shared by the gateway's worker processes
 * (gateway/workers.ts). Each worker caches what auth said on its own, and
 * the cluster hands each new connection to the next worker: without sharing,
 * a caller whose connections happened to reach one worker has no answer at
 * the others, and while auth is down those refuse it with 503 (a new
 * graphql-ws stream, 4503) although the gateway did check the session. A
 * worker's fresh answer is sent to the primary, which passes it to the other
 * workers; each holds it as if it had asked (same bound, counted from when the
 * question was sent). Only session answers travel: they are held under the
 * session id, which is no secret, whereas API-key answers are held under an
 * HMAC with a key born in each worker (credentials/cached-verifier.ts).
 */
const TYPE = 'sluice:session-answer';

interface SessionAnswerMessage {
  type: typeof TYPE;
  sessionId: string;
  revoked: boolean;
  askedAt: number;
}

function isSessionAnswer(message: unknown): message is SessionAnswerMessage {
  const m = message as Partial<SessionAnswerMessage> | null;
  return m?.type === TYPE && typeof m.sessionId === 'string' && typeof m.revoked === 'boolean' && typeof m.askedAt === 'number';
}

/** In the primary: passes each worker's session answers on to the other workers. */
export function relaySessionAnswers(): void {
  cluster.on('message', (from, message: unknown) => {
    if (!isSessionAnswer(message)) return;
    for (const worker of Object.values(cluster.workers ?? {})) {
      if (worker && worker !== from && worker.isConnected()) worker.send(message);
    }
  });
}

/**
 * In a worker: `learn` receives the other workers' session answers, and the
 * returned function sends this worker's; outside a cluster worker nothing is
 * shared (undefined).
 */
export function shareSessionAnswers(learn: (sessionId: string, revoked: boolean, askedAt: number) => void): ((sessionId: string, revoked: boolean, askedAt: number) => void) | undefined {
  const send = process.send?.bind(process);
  if (!cluster.isWorker || !send) return undefined;
  process.on('message', (message: unknown) => {
    if (isSessionAnswer(message)) learn(message.sessionId, message.revoked, message.askedAt);
  });
  return (sessionId, revoked, askedAt) => {
    const message: SessionAnswerMessage = { type: TYPE, sessionId, revoked, askedAt };
    send(message);
  };
}
