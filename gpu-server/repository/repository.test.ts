import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLogger, type Logger } from '../../lib/log';
import { echoBackend } from '../testing/fake-runners';
import { instanceBindings } from './devices';
import { parseModelConfig } from './model-config';
import { ModelRepository } from './repository';

let root: string;

function writeModel(name: string, body: string, versions: number[] = [1]): void {
  fs.mkdirSync(path.join(root, name), { recursive: true });
  for (const v of versions) fs.mkdirSync(path.join(root, name, String(v)), { recursive: true });
  fs.writeFileSync(path.join(root, name, 'config.pbtxt'), `name: "${name}"\n${body}`);
}

const IO = 'input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ]\noutput [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]\n';

function recordingLogger(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = [];
  const base = createLogger({ test: 'repository' });
  const logger: Logger = { ...base, info: () => undefined, warn: (message) => warnings.push(message), child: () => logger };
  return { logger, warnings };
}

const load = (logger: Logger = recordingLogger().logger) => ModelRepository.load({ root, selectBackend: () => echoBackend, logger, cuda: false });
const versionsOf = (repository: ModelRepository, name: string) => repository.get(name)!.versions.map((v) => `${v.version}:${v.state}`);

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-repository-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

describe('version_policy', () => {
  it('serves the latest version by default, the latest N, all, or the specific ones', async () => {
    writeModel('default', IO, [1, 2, 3]);
    writeModel('latest2', `${IO}version_policy: { latest: { num_versions: 2 } }`, [1, 2, 3]);
    writeModel('all', `${IO}version_policy: { all: {} }`, [1, 2, 10]);
    writeModel('specific', `${IO}version_policy: { specific: { versions: [1, 3] } }`, [1, 2, 3]);
    writeModel('missing', `${IO}version_policy: { specific: { versions: [4] } }`, [1]);
    const repository = await load();
    expect(versionsOf(repository, 'default')).toEqual(['3:READY']);
    expect(versionsOf(repository, 'latest2')).toEqual(['3:READY', '2:READY']);
    expect(versionsOf(repository, 'all')).toEqual(['10:READY', '2:READY', '1:READY']);
    expect(versionsOf(repository, 'specific')).toEqual(['3:READY', '1:READY']);
    expect(repository.get('missing')!.error).toMatch(/version_policy\.specific lists version\(s\) 4, but .*missing has only 1$/);
    await repository.close();
  });
});

describe('config errors', () => {
  it('leaves a model with a bad config.pbtxt UNAVAILABLE with file:line, the others READY', async () => {
    writeModel('good', IO);
    writeModel('bad', `max_batch_size: 4\n${IO}dynamic_batching { preferred_batch_size: [ 2, 8 ] }`);
    writeModel('typo', `max_batch_size: 4\n${IO}dynamic_batching { max_queue_delay: 5 }`);
    writeModel('gpus-on-cpu', `${IO}instance_group [ { kind: KIND_CPU gpus: [ 0 ] } ]`);
    writeModel('sequence', `max_batch_size: 4\n${IO}sequence_batching { }`);
    const repository = await load();
    expect(versionsOf(repository, 'good')).toEqual(['1:READY']);
    expect(repository.get('bad')!.error).toBe(`${path.join(root, 'bad', 'config.pbtxt')}: dynamic_batching.preferred_batch_size must be within 1..max_batch_size (4), but got 8`);
    expect(repository.get('typo')!.error).toMatch(/typo\/config\.pbtxt:5:20: unknown field 'max_queue_delay' in inference\.ModelDynamicBatching; expected one of: /);
    expect(repository.get('gpus-on-cpu')!.error).toContain('instance_group 0 is KIND_CPU but lists gpus [0]; gpus are for KIND_GPU');
    expect(repository.get('sequence')!.error).toContain('sequence_batching is not supported by the Sluice gpu-server');
    await repository.close();
  });
});

describe('instance groups', () => {
  const config = (groups: string) => parseModelConfig(`name: "m"\n${IO}instance_group [ ${groups} ]`, 'config.pbtxt');

  it('gives count instances per listed GPU, Triton-named, bound to their device', () => {
    const bindings = instanceBindings(config('{ count: 2 kind: KIND_GPU gpus: [ 0, 1 ] }, { name: "cpu" kind: KIND_CPU }'), true);
    expect(bindings).toEqual([
      { name: 'm_0_0', index: 0, kind: 'KIND_GPU', device: 0, executionProvider: 'cuda' },
      { name: 'm_0_1', index: 1, kind: 'KIND_GPU', device: 0, executionProvider: 'cuda' },
      { name: 'm_0_2', index: 2, kind: 'KIND_GPU', device: 1, executionProvider: 'cuda' },
      { name: 'm_0_3', index: 3, kind: 'KIND_GPU', device: 1, executionProvider: 'cuda' },
      { name: 'cpu_0', index: 4, kind: 'KIND_CPU', device: -1, executionProvider: 'cpu' },
    ]);
  });

  it('maps each GPU to a CPU execution slot without CUDA; KIND_AUTO is CPU then', () => {
    expect(instanceBindings(config('{ kind: KIND_GPU gpus: [ 0, 1 ] }, { kind: KIND_AUTO }'), false)).toEqual([
      { name: 'm_0_0', index: 0, kind: 'KIND_GPU', device: 0, executionProvider: 'cpu' },
      { name: 'm_0_1', index: 1, kind: 'KIND_GPU', device: 1, executionProvider: 'cpu' },
      { name: 'm_1_0', index: 2, kind: 'KIND_CPU', device: -1, executionProvider: 'cpu' },
    ]);
    expect(instanceBindings(parseModelConfig(`name: "m"\n${IO}`, 'c'), false)).toEqual([{ name: 'm_0_0', index: 0, kind: 'KIND_CPU', device: -1, executionProvider: 'cpu' }]);
  });

  it('starts one runner per instance with its binding, and says once that GPUs are CPU slots', async () => {
    writeModel('a', `${IO}instance_group [ { count: 1 kind: KIND_GPU gpus: [ 0, 1 ] } ]`);
    writeModel('b', `${IO}instance_group [ { count: 2 kind: KIND_GPU gpus: [ 3 ] } ]`);
    const { logger, warnings } = recordingLogger();
    const seen: string[] = [];
    const repository = await ModelRepository.load({
      root,
      logger,
      cuda: false,
      selectBackend: () => (context) => {
        seen.push(`${context.config.name}:${context.instance.name}:${context.instance.device}:${context.instance.executionProvider}`);
        return echoBackend(context);
      },
    });
    expect(seen).toEqual(['a:a_0_0:0:cpu', 'a:a_0_1:1:cpu', 'b:b_0_0:3:cpu', 'b:b_0_1:3:cpu']);
    expect(repository.get('a')!.versions[0].runners).toHaveLength(2);
    expect(warnings.filter((w) => w.includes('no CUDA execution provider'))).toHaveLength(1);
    await repository.close();
  });
});

describe('model control', () => {
  it('reloads a model from disk, and leaves it UNAVAILABLE with the reason when the new config is bad', async () => {
    writeModel('m', IO);
    const repository = await load();
    const before = repository.get('m')!.versions[0];
    fs.mkdirSync(path.join(root, 'm', '2'));
    const reloaded = await repository.loadModel('m');
    expect(reloaded.versions.map((v) => `${v.version}:${v.state}`)).toEqual(['2:READY']);
    expect(before.state).toBe('UNAVAILABLE');
    fs.writeFileSync(path.join(root, 'm', 'config.pbtxt'), 'name: "m"\nmax_batch_size: x\n');
    const broken = await repository.loadModel('m');
    expect(broken.error).toMatch(/m\/config\.pbtxt:2:17: field 'max_batch_size' of inference\.ModelConfig expects an integer/);
    expect(reloaded.versions[0].state).toBe('UNAVAILABLE');
    await expect(repository.loadModel('nope')).rejects.toThrow(`the model repository ${root} has no model directory 'nope'`);
    await repository.close();
  });

  it('unloads a model: UNLOADING at once, UNAVAILABLE "unloaded" once drained', async () => {
    writeModel('m', `max_batch_size: 2\n${IO}dynamic_batching { }`);
    const repository = await load();
    const v = repository.get('m')!.versions[0];
    const x = { name: 'x', datatype: 'FP32' as const, shape: [1, 1], data: Buffer.alloc(4) };
    const queued = v.scheduler!.schedule({ inputs: new Map([['x', x]]), batchSize: 1 });
    const unloading = repository.unloadModel('m');
    expect(v.state).toBe('UNLOADING');
    await expect(queued).resolves.toBeInstanceOf(Map);
    await unloading;
    expect(v).toMatchObject({ state: 'UNAVAILABLE', reason: 'unloaded' });
    await repository.close();
  });
});
