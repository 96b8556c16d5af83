/**
 * The committed generated/ types must be what `npm run gen:protocol` writes
 * today, with the options the loader decodes with: otherwise the types would
 * describe messages other than the ones received.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TRITON_PROTO_LOADER_OPTIONS } from './loader';

const ROOT = path.join(__dirname, '..', '..');
const GENERATED = path.join(__dirname, 'generated');

function genScript(): string[] {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  return pkg.scripts['gen:protocol'].split(/\s+/);
}

function filesUnder(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => fs.statSync(path.join(dir, f)).isFile())
    .sort();
}

describe('the generated Triton types', () => {
  it('are generated with the options the loader decodes with', () => {
    const o = TRITON_PROTO_LOADER_OPTIONS;
    // proto-loader-gen-types names `longs: Number` and `enums: String` by the constructors' names.
    const expected = [
      o.keepCase && '--keepCase',
      o.longs && `--longs=${(o.longs as NumberConstructor).name}`,
      o.enums && `--enums=${(o.enums as StringConstructor).name}`,
      o.defaults && '--defaults',
      o.oneofs && '--oneofs',
    ].filter(Boolean);
    const script = genScript();
    expect(script.filter((arg) => arg.startsWith('--') && !arg.startsWith('--grpcLib'))).toEqual(expected);
    expect(o.bytes).toBeUndefined(); // the generator's default (Buffer) is the loader's default
  });

  it('are what the generator writes from the .proto files now', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-gen-'));
    try {
      const [command, ...args] = genScript();
      expect(command).toBe('proto-loader-gen-types');
      const outIndex = args.indexOf('-O');
      args[outIndex + 1] = out;
      const bin = require.resolve('@grpc/proto-loader/build/bin/proto-loader-gen-types.js');
      const run = spawnSync(process.execPath, [bin, ...args], { cwd: ROOT, encoding: 'utf8' });
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      expect(filesUnder(GENERATED)).toEqual(filesUnder(out));
      const stale = filesUnder(out).filter((f) => fs.readFileSync(path.join(out, f), 'utf8') !== fs.readFileSync(path.join(GENERATED, f), 'utf8'));
      if (stale.length) throw new Error(`protocol/triton/generated is stale (run npm run gen:protocol); these files differ: ${stale.join(', ')}`);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});
