/** The endpoint list: its syntax, and a file that changes the GPU tier's endpoints while it runs. */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLogger } from '../../../lib/log';
import { EndpointFile, parseEndpointList } from './endpoint-list';
import { GpuTier } from './gpu-tier';

const log = createLogger({ service: 'endpoint-list-test' });
let dir: string;
beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), 'sluice-endpoints-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('parseEndpointList', () => {
  it('takes commas or lines, skips comments and blanks, drops duplicates', () => {
    expect(parseEndpointList('a:1, b:2\n# a comment\n\nc:3 # gpu node 3\na:1\n[::1]:8001')).toEqual(['a:1', 'b:2', 'c:3', '[::1]:8001']);
    expect(parseEndpointList('  \n# nothing\n')).toEqual([]);
  });

  it('refuses an entry that is not host:port, naming it', () => {
    expect(() => parseEndpointList('a:1,gpu-node-2')).toThrow('a GPU endpoint is expected as host:port or dns:///name:port, but got "gpu-node-2"');
  });
});

describe('EndpointFile', () => {
  it('applies the file when it changes, and keeps the current list when it becomes unusable', () => {
    const file = path.join(dir, 'endpoints');
    writeFileSync(file, 'a:1\nb:2\n');
    const applied: string[][] = [];
    const watcher = new EndpointFile({ file, pollMs: 60_000, log, onChange: (list) => applied.push(list) });
    try {
      expect(watcher.reload()).toEqual(['a:1', 'b:2']);
      watcher.reload(); // unchanged: not applied again
      writeFileSync(file, '# emptied by mistake\n');
      expect(watcher.reload()).toBeUndefined();
      writeFileSync(file, 'a:1,bad');
      expect(watcher.reload()).toBeUndefined();
      rmSync(file);
      expect(watcher.reload()).toBeUndefined();
      writeFileSync(file, 'c:3');
      watcher.reload();
      expect(applied).toEqual([['a:1', 'b:2'], ['c:3']]);
    } finally {
      watcher.close();
    }
  });

  it('a GpuTier with a file takes the file over the list, and follows it when the file is replaced', async () => {
    const file = path.join(dir, 'endpoints');
    writeFileSync(file, '127.0.0.1:1\n');
    const tier = new GpuTier({ endpoints: ['127.0.0.1:9'], endpointsFile: file, endpointsFilePollMs: 20, deadlineMs: 500, log, probeIntervalMs: 60_000 });
    try {
      expect(tier.endpoints.map((e) => e.address)).toEqual(['127.0.0.1:1']);
      // Replaced the way a deploy tool does it: a new file renamed over the old one.
      writeFileSync(path.join(dir, 'next'), '127.0.0.1:1,127.0.0.1:2\n');
      renameSync(path.join(dir, 'next'), file);
      while (tier.endpoints.length !== 2) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(tier.endpoints.map((e) => e.address)).toEqual(['127.0.0.1:1', '127.0.0.1:2']);
    } finally {
      tier.close();
    }
  });

  it('a GpuTier with no endpoint from either source refuses to start', () => {
    const file = path.join(dir, 'missing');
    expect(() => new GpuTier({ endpoints: [], endpointsFile: file, deadlineMs: 500, log })).toThrow(`GpuTier expects at least one endpoint, but got none from the list or from ${file}`);
  });
});
