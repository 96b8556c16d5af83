import { existsSync } from 'node:fs';
import path from 'node:path';
import { ProbeFiles, ROOT, runTool } from './probe-files';

/**
 * The layout rules in .dependency-cruiser.cjs, proved on temporary files placed where the rules look: each forbidden
 * import must fail the check with the rule's name and the import (from → to), and the imports the layout allows must pass.
 * Only the probe files are followed, so the verdict does not depend on the state of the rest of the tree.
 */
describe('dependency rules', () => {
  const probes = new ProbeFiles();
  const m = probes.marker;
  /** Each forbidden import the probes make, as the report must name it. */
  const expected: Array<{ rule: string; from: string; to: string }> = [];
  const files: string[] = [];
  let report = '';
  let status: number | null = null;

  /** A module that exports one value, so every probe is valid TypeScript for anyone compiling the tree meanwhile. */
  const leaf = (name: string) => `export const ${name} = '${name}';\n`;

  beforeAll(() => {
    try {
      const add = (file: string, text: string) => files.push(probes.write(file, text));
      const forbid = (rule: string, from: string, to: string) => expected.push({ rule, from, to });

      add(`lib/${m}/util.ts`, leaf('util'));
      add(`protocol/triton/${m}-types.ts`, `export interface ProbeTensor {\n  name: string;\n}\n`);
      add(`gateway/${m}/feature.ts`, leaf('feature'));
      add(`gpu-server/${m}/runner.ts`, leaf('runner'));
      add(`gpu-server/grpc/${m}-adapter.ts`, leaf('adapter'));
      add(`subgraphs/${m}-b/resolver.ts`, leaf('otherResolver'));

      add(`lib/${m}/cycle-a.ts`, `import { b } from './cycle-b';\n\nexport const a = (): unknown => b;\n`);
      add(`lib/${m}/cycle-b.ts`, `import { a } from './cycle-a';\n\nexport const b = (): unknown => a;\n`);
      forbid('no-import-cycles', `lib/${m}/cycle-a.ts`, `lib/${m}/cycle-b.ts`);

      add(`lib/${m}/testing/fake-clock.ts`, leaf('fakeClock'));
      add(`lib/${m}/service.ts`, `import { fakeClock } from './testing/fake-clock';\n\nexport const service = fakeClock;\n`);
      forbid('production-imports-test-code', `lib/${m}/service.ts`, `lib/${m}/testing/fake-clock.ts`);

      add(`protocol/triton/${m}-contract.ts`, `import { util } from '../../lib/${m}/util';\n\nexport const contract = util;\n`);
      forbid('triton-contract-imports-outside-itself', `protocol/triton/${m}-contract.ts`, `lib/${m}/util.ts`);

      add(
        `gpu-server/core/${m}-transport.ts`,
        `import * as grpc from '@grpc/grpc-js';\nimport * as http from 'node:http';\nimport { adapter } from '../grpc/${m}-adapter';\n\nexport const transport = [grpc.status.OK, http.STATUS_CODES, adapter];\n`,
      );
      forbid('gpu-server-core-imports-transport', `gpu-server/core/${m}-transport.ts`, 'node_modules/@grpc/grpc-js/');
      // Node reports its core modules without the node: prefix.
      forbid('gpu-server-core-imports-transport', `gpu-server/core/${m}-transport.ts`, 'http');
      forbid('gpu-server-core-imports-transport', `gpu-server/core/${m}-transport.ts`, `gpu-server/grpc/${m}-adapter.ts`);

      add(`subgraphs/${m}-a/cross.ts`, `import { otherResolver } from '../${m}-b/resolver';\n\nexport const cross = otherResolver;\n`);
      forbid('subgraph-imports-another-subgraph', `subgraphs/${m}-a/cross.ts`, `subgraphs/${m}-b/resolver.ts`);

      add(`subgraphs/${m}-a/gateway-reach.ts`, `import { feature } from '../../gateway/${m}/feature';\n\nexport const reach = feature;\n`);
      forbid('subgraph-imports-gateway', `subgraphs/${m}-a/gateway-reach.ts`, `gateway/${m}/feature.ts`);

      add(`subgraphs/${m}-a/gpu-reach.ts`, `import { runner } from '../../gpu-server/${m}/runner';\n\nexport const reach = runner;\n`);
      forbid('subgraph-imports-gpu-server', `subgraphs/${m}-a/gpu-reach.ts`, `gpu-server/${m}/runner.ts`);

      add(`subgraphs/${m}-a/testing/gpu-internals.ts`, `import { runner } from '../../../gpu-server/${m}/runner';\n\nexport const reach = runner;\n`);
      forbid('subgraph-test-imports-gpu-server-internals', `subgraphs/${m}-a/testing/gpu-internals.ts`, `gpu-server/${m}/runner.ts`);

      add(`gateway/${m}/subgraph-reach.ts`, `import { otherResolver } from '../../subgraphs/${m}-b/resolver';\n\nexport const reach = otherResolver;\n`);
      forbid('gateway-imports-subgraph-or-gpu-server', `gateway/${m}/subgraph-reach.ts`, `subgraphs/${m}-b/resolver.ts`);

      add(`lib/${m}/upward.ts`, `import { feature } from '../../gateway/${m}/feature';\n\nexport const upward = feature;\n`);
      forbid('lib-imports-upper-layer', `lib/${m}/upward.ts`, `gateway/${m}/feature.ts`);

      add(`web/${m}/page.ts`, `import { util } from '../../lib/${m}/util';\n\nexport const page = util;\n`);
      forbid('web-imports-outside-web', `web/${m}/page.ts`, `lib/${m}/util.ts`);

      // What the layout allows: a subgraph on lib/ and the contract, its tests on the gpu-server's public entry,
      // the gpu-server core on the contract and plain node modules.
      add(
        `subgraphs/${m}-a/allowed.ts`,
        `import { util } from '../../lib/${m}/util';\nimport type { ProbeTensor } from '../../protocol/triton/${m}-types';\n\nexport const allowed: ProbeTensor = { name: util };\n`,
      );
      add(`subgraphs/${m}-a/testing/start-gpu-server.ts`, `import * as gpuServer from '../../../gpu-server/server';\n\nexport const server = gpuServer;\n`);
      add(
        `gpu-server/core/${m}-allowed.ts`,
        `import path from 'node:path';\nimport type { ProbeTensor } from '../../protocol/triton/${m}-types';\n\nexport const allowed: ProbeTensor = { name: path.sep };\n`,
      );

      // Follow nothing but the probes: the rest of the tree is judged by `npm run lint`, not here.
      const run = runTool('depcruise', ['--config', '.dependency-cruiser.cjs', '--output-type', 'err-long', '--do-not-follow', `^(?!.*${m})`, ...files]);
      // The report wraps long lines; one space everywhere makes "from → to" searchable.
      report = run.output.replace(/\s+/g, ' ');
      status = run.status;
    } finally {
      probes.remove();
    }
  });

  test('fails, counting exactly the forbidden imports and none of the allowed ones', () => {
    expect(status).not.toBe(0);
    expect(report).toContain(` ${expected.length} dependency violations (${expected.length} errors, 0 warnings)`);
  });

  test('names the rule and the import for each forbidden import', () => {
    for (const { rule, from, to } of expected) {
      if (rule === 'no-import-cycles') {
        // A cycle is reported once, starting from either of its modules.
        expect(report).toMatch(new RegExp(`error ${rule}: (${escapeRegExp(from)} → ${escapeRegExp(to)}|${escapeRegExp(to)} → ${escapeRegExp(from)}) → `));
      } else {
        expect(report).toContain(`error ${rule}: ${from} → ${to}`);
      }
    }
  });

  test("prints each broken rule's reason and what to do instead", () => {
    expect(report).toContain('Subgraphs are separate services that talk only through the graph');
    expect(report).toContain('Move shared code to lib/ (or protocol/ for a wire contract) and import it from there.');
  });

  test('leaves no probe file behind', () => {
    expect(files.filter((file) => existsSync(path.join(ROOT, file)))).toEqual([]);
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
