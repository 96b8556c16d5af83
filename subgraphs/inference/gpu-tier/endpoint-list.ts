/**
 * Where the GPU endpoints come from, reloadable without a restart.
 *
 * - `INFERENCE_GPU_ENDPOINTS` (comma-separated host:port or
 *   `dns:///name:port`, else the single `INFERENCE_GPU_ENDPOINT`): the list at
 *   start. A `dns:` entry is re-resolved while the service runs
 *   (dns-endpoints.ts); so is one in the file below.
 * - `INFERENCE_GPU_ENDPOINTS_FILE`: a file holding the list (commas or one
 *   address per line, `#` comments). When set, it replaces the variable's list
 *   as soon as it can be read, and is re-read every
 *   `INFERENCE_GPU_ENDPOINTS_FILE_POLL_MS` (default 2000 ms) and applied when
 *   its list changed. Re-reading a small file beats watching it: an editor's
 *   save, a `mv` over it and a Kubernetes ConfigMap update (a symlink swap)
 *   are all seen, with no event lost between a read and a watch. `reload()`
 *   re-reads it at once (what the service does on SIGHUP).
 *
 * A file that is missing, unreadable or lists no endpoint leaves the current
 * list in place (with a logged error): emptying the tier by mistake would be
 * an outage.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from '../../../lib/log';
import { isDnsTarget, parseDnsTarget } from './dns-endpoints';

/**
 * `a:1, b:2` or one address per line; blank lines and `#` comments are
 * skipped; duplicates are dropped. An entry may also be a DNS target
 * (`dns:///name:port`, dns-endpoints.ts), which stands for the addresses the
 * name resolves to.
 */
export function parseEndpointList(text: string): string[] {
  const addresses = text
    .split('\n')
    .map((line) => line.replace(/#.*/, ''))
    .flatMap((line) => line.split(','))
    .map((address) => address.trim())
    .filter(Boolean);
  for (const address of addresses) {
    if (isDnsTarget(address)) parseDnsTarget(address);
    else if (!/^[^\s:]+:\d{1,5}$/.test(address) && !/^\[[0-9a-f:.]+\]:\d{1,5}$/i.test(address)) {
      throw new TypeError(`a GPU endpoint is expected as host:port or dns:///name:port, but got ${JSON.stringify(address)}`);
    }
  }
  return [...new Set(addresses)];
}

export interface EndpointFileOptions {
  file: string;
  pollMs: number;
  log: Logger;
  /** Called with the file's list whenever it is read and differs from the last one applied. */
  onChange: (addresses: string[]) => void;
}

/** Re-reads an endpoint-list file; see the module comment for the rules. */
export class EndpointFile {
  private last: string | undefined;
  private lastError: string | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: EndpointFileOptions) {
    this.timer = setInterval(() => this.reload(), options.pollMs);
    this.timer.unref();
  }

  /** Reads the file now and applies its list if it changed; returns the list in force from the file, if any. */
  reload(): string[] | undefined {
    let addresses: string[];
    try {
      addresses = parseEndpointList(readFileSync(this.options.file, 'utf8'));
      if (addresses.length === 0) throw new Error('it lists no endpoint');
    } catch (error) {
      // Logged once per distinct problem, not on every re-read.
      const message = (error as Error).message;
      if (message !== this.lastError) this.options.log.error('the GPU endpoint file could not be used; keeping the current endpoints', { file: this.options.file, error: message });
      this.lastError = message;
      return undefined;
    }
    this.lastError = undefined;
    const key = addresses.join(',');
    if (key !== this.last) {
      this.last = key;
      this.options.onChange(addresses);
    }
    return addresses;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
