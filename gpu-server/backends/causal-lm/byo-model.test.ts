/**
 * Bring your own model: a Hugging Face causal LM exported with
 * `optimum-cli export onnx --task text-generation-with-past` is served from
 * model.onnx + tokenizer.json (+ config.json) and a hand-written config.pbtxt.
 * The export here is the one build-models.ts writes (same layout), copied
 * under another name and loaded through the repository loader like any model.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLogger } from '../../../lib/log';
import { isStreamingRunner, type StreamingRunner } from '../../core/runner';
import { ModelRepository } from '../../repository/repository';
import { selectBackend } from '../index';
import { chatInputs, collectingSink, MODEL_REPOSITORY } from './chat-requests';

const CONFIG = (name: string, extra = '') => `
name: "${name}"
max_batch_size: 0
model_transaction_policy { decoupled: true }
input [
  { name: "text_input" data_type: TYPE_STRING dims: [ 1 ] },
  { name: "stream" data_type: TYPE_BOOL dims: [ 1 ] optional: true },
  { name: "sampling_parameters" data_type: TYPE_STRING dims: [ 1 ] optional: true },
  { name: "exclude_input_in_output" data_type: TYPE_BOOL dims: [ 1 ] optional: true },
  { name: "return_finish_reason" data_type: TYPE_BOOL dims: [ 1 ] optional: true }
]
output [
  { name: "text_output" data_type: TYPE_STRING dims: [ -1 ] },
  { name: "finish_reason" data_type: TYPE_STRING dims: [ 1 ] }
]
instance_group [ { count: 1 kind: KIND_CPU } ]
parameters { key: "sluice_backend" value: { string_value: "causal-lm" } }
${extra}
`;

let root: string;
let repository: ModelRepository;

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-byo-'));
  const source = path.join(MODEL_REPOSITORY, 'sluice-chat', '1');
  const place = (name: string, files: string[], config: string) => {
    fs.mkdirSync(path.join(root, name, '1'), { recursive: true });
    for (const file of files) fs.copyFileSync(path.join(source, file), path.join(root, name, '1', file));
    fs.writeFileSync(path.join(root, name, 'config.pbtxt'), config);
  };
  // With config.json: the context length comes from its max_position_embeddings.
  place('my-gpt', ['model.onnx', 'tokenizer.json', 'config.json'], CONFIG('my-gpt'));
  // Without: geometry from the graph's inputs, context length from config.pbtxt.
  place('bare-gpt', ['model.onnx', 'tokenizer.json'], CONFIG('bare-gpt', 'parameters { key: "context_length" value: { string_value: "64" } }'));
  place('no-context', ['model.onnx', 'tokenizer.json'], CONFIG('no-context'));
  place('no-tokenizer', ['model.onnx'], CONFIG('no-tokenizer'));
  repository = await ModelRepository.load({ root, selectBackend, logger: createLogger({ test: 'byo' }), cuda: false });
});

afterAll(async () => {
  await repository?.close();
  fs.rmSync(root, { recursive: true, force: true });
});

function streamingRunner(name: string): StreamingRunner {
  const version = repository.get(name)?.versions[0];
  expect(version?.state).toBe('READY');
  const runner = version!.runners[0];
  if (!isStreamingRunner(runner)) throw new Error(`${name} is not served by a streaming runner`);
  return runner;
}

async function generate(runner: StreamingRunner, prompt: string, sampling: Record<string, unknown>) {
  const sink = collectingSink();
  await runner.stream(chatInputs({ prompt, sampling, stream: true, returnFinishReason: true }), sink, new AbortController().signal);
  return { text: sink.responses.map((r) => r.text).join(''), reason: sink.responses[sink.responses.length - 1].finishReason };
}

describe('bring your own Optimum-exported causal LM', () => {
  it('serves it under its own name, with or without config.json (the same text)', async () => {
    const mine = await generate(streamingRunner('my-gpt'), 'Hello there', { max_tokens: 20, temperature: 0 });
    const bare = await generate(streamingRunner('bare-gpt'), 'Hello there', { max_tokens: 20, temperature: 0 });
    expect(mine.text.length).toBeGreaterThan(10);
    expect(bare.text).toBe(mine.text);
  });

  it('applies the context_length of config.pbtxt', async () => {
    const { reason } = await generate(streamingRunner('bare-gpt'), 'Hello there', { max_tokens: 500, temperature: 0, ignore_eos: true });
    expect(reason).toBe('length');
    await expect(generate(streamingRunner('bare-gpt'), 'word '.repeat(80), { max_tokens: 5 })).rejects.toThrow('the context length is 64');
  });

  it('leaves a model UNAVAILABLE with the reason when a file or the context length is missing', () => {
    expect(repository.get('no-tokenizer')?.versions[0]?.state).toBe('UNAVAILABLE');
    expect(repository.get('no-tokenizer')?.versions[0]?.reason).toMatch(/tokenizer\.json does not exist/);
    expect(repository.get('no-context')?.versions[0]?.reason).toMatch(/the model's context length is unknown: set parameter 'context_length'/);
  });
});
