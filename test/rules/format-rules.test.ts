import { ProbeFiles, runTool } from './probe-files';

/**
 * `npm run lint:format` (biome ci with the root biome.jsonc) on temporary files: a file written in the project's style
 * passes, one that is not formatted fails naming the file, and a lint warning fails too (warnings are errors in CI).
 */
describe('format and lint rules', () => {
  const probes = new ProbeFiles();
  const folder = `test/rules/${probes.marker}`;

  afterEach(() => probes.remove());

  const check = (file: string) => runTool('biome', ['ci', '--error-on-warnings', '--colors=off', file]);

  test('passes a file written in the project style', () => {
    const file = probes.write(`${folder}/formatted.ts`, `export const greeting = { text: 'hello', to: ['ada', 'grace'] };\n`);
    const run = check(file);
    expect(run.output).toContain('Checked 1 file');
    expect(run.status).toBe(0);
  });

  test('fails on a file that is not formatted, naming the file', () => {
    const file = probes.write(`${folder}/unformatted.ts`, `export const greeting = {text: "hello", to: ['ada', 'grace']}\n`);
    const run = check(file);
    expect(run.status).not.toBe(0);
    expect(run.output).toContain(`${file} format`);
    expect(run.output).toContain('File content differs from formatting output');
  });

  test('fails on a lint warning, naming the rule', () => {
    const file = probes.write(`${folder}/loose.ts`, `export const loose: any = 1;\n`);
    const run = check(file);
    expect(run.status).not.toBe(0);
    expect(run.output).toContain(`${file}:1:21 lint/suspicious/noExplicitAny`);
  });
});
