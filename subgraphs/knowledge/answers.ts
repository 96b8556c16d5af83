import type { GraphQLError } from 'graphql';
import { codedError, ErrorCode } from '../../lib/errors';
import { interruptible } from '../../lib/interruptible';
import { type GroundedPrompt, groundedPrompt } from './grounded-prompt';
import type { Usage } from '../../lib/usage-events';
import type { GeneratedChunk, GenerationInput, InferenceClient } from './inference-client';
import type { ModelChoice } from './model-choice';
import type { Hit, Retrieval } from './retrieval';

export interface AnswerOptions {
  model?: string | null;
  maxTokens?: number | null;
  temperature?: number | null;
  seed?: number | null;
  tags?: string[] | null;
}

export interface Citation extends Hit {
  number: number;
}

export interface Answer {
  text: string;
  grounded: boolean;
  citations: Citation[];
  finishReason: string;
  usage: Usage | null;
  model: { id: string } | null;
}

export interface AnswerChunk {
  index: number;
  delta: string;
  citations: Citation[];
  grounded: boolean;
  finishReason: string | null;
  usage: Usage | null;
  error: { code: string; message: string } | null;
  model: { id: string } | null;
}

export interface AnswerSettings {
  /** Sources scoring below this (cosine similarity) are not relevant enough to answer from. */
  minScore: number;
  defaultMaxTokens: number;
  /** The chat model's tokenizer needs more tokens than the embedding tokenizer the budget counts with; percent. */
  promptTokenMarginPercent: number;
  /** Budget used when the model declares no context length. */
  fallbackContextLength: number;
}

export const NO_SOURCES_ANSWER = 'None of your documents is relevant to this question, so there is nothing to answer it from.';

/**
 * Retrieval-augmented answers: retrieve the caller's best chunks, build a
 * grounded prompt of numbered sources within the model's context, and
 * generate through the inference service (metered and batched there, as any
 * completion). A prompt the model still finds too long is retried with one
 * source fewer; that is safe because a refused prompt generated nothing.
 */
export class Answers {
  constructor(
    private readonly retrieval: Retrieval,
    private readonly inference: InferenceClient,
    private readonly models: ModelChoice,
    private readonly settings: AnswerSettings,
  ) {}

  async ask(owner: string, identityHeader: string, question: string, k: number, options: AnswerOptions = {}): Promise<Answer> {
    const plan = await this.plan(owner, identityHeader, question, k, options, 'ask');
    if (plan.sources.length === 0) return { text: NO_SOURCES_ANSWER, grounded: false, citations: [], finishReason: 'STOP', usage: null, model: null };
    for (let count = plan.sources.length; ; count -= 1) {
      const prompt = this.prompt(question, plan.sources.slice(0, count), plan.promptTokens);
      try {
        const generated = await this.inference.complete(identityHeader, { ...plan.input, messages: prompt.messages });
        return { ...generated, grounded: true, citations: citations(plan.sources.slice(0, prompt.sources)) };
      } catch (error) {
        if (!isContextOverflow(error) || prompt.sources <= 1) throw error;
        count = prompt.sources;
      }
    }
  }

  stream(owner: string, identityHeader: string, question: string, k: number, options: AnswerOptions = {}): AsyncGenerator<AnswerChunk> {
    const stop = new AbortController();
    return interruptible(this.streamAnswer(owner, identityHeader, question, k, options, stop.signal), { interrupt: () => stop.abort() });
  }

  private async *streamAnswer(owner: string, identityHeader: string, question: string, k: number, options: AnswerOptions, signal: AbortSignal): AsyncGenerator<AnswerChunk> {
    const plan = await this.plan(owner, identityHeader, question, k, options, 'answerStream');
    if (plan.sources.length === 0) {
      yield { index: 0, delta: NO_SOURCES_ANSWER, citations: [], grounded: false, finishReason: 'STOP', usage: null, error: null, model: null };
      return;
    }
    for (let count = plan.sources.length; ; count -= 1) {
      const prompt = this.prompt(question, plan.sources.slice(0, count), plan.promptTokens);
      const chunks = this.inference.completionStream(identityHeader, { ...plan.input, messages: prompt.messages }, signal);
      try {
        const first = await chunks.next();
        if (first.done) return;
        if (first.value.error && isContextOverflow(first.value.error) && prompt.sources > 1) {
          count = prompt.sources;
          continue;
        }
        // Citations travel with the first piece of text: only then is it certain which sources the prompt kept.
        let index = 0;
        yield shape(first.value, index++, citations(plan.sources.slice(0, prompt.sources)));
        for await (const chunk of chunks) yield shape(chunk, index++, []);
        return;
      } finally {
        await chunks.return(undefined);
      }
    }
  }

  private async plan(owner: string, identityHeader: string, question: string, k: number, options: AnswerOptions, label: string) {
    const maxTokens = options.maxTokens ?? this.settings.defaultMaxTokens;
    const contextLength = (await this.models.contextLength(identityHeader, options.model)) ?? this.settings.fallbackContextLength;
    if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens >= contextLength) {
      throw codedError(ErrorCode.BadUserInput, `${label} expects "options.maxTokens" between 1 and ${contextLength - 1} (the model's context length is ${contextLength}), but got ${maxTokens}`, {
        field: 'options.maxTokens',
      });
    }
    const hits = await this.retrieval.search(owner, identityHeader, question, k, options.tags ?? [], label);
    const sources = hits.filter((hit) => hit.score >= this.settings.minScore);
    const input: Omit<GenerationInput, 'messages'> = { model: options.model, maxTokens, temperature: options.temperature ?? 0, seed: options.seed };
    const promptTokens = Math.floor(((contextLength - maxTokens) * 100) / this.settings.promptTokenMarginPercent);
    return { sources, input, promptTokens };
  }

  private prompt(question: string, sources: Hit[], promptTokens: number) {
    let prompt: GroundedPrompt;
    try {
      prompt = groundedPrompt(
        question,
        sources.map((hit) => ({ title: hit.document.title, heading: hit.chunk.heading, text: hit.chunk.text })),
        { promptTokens },
      );
    } catch (error) {
      if (error instanceof RangeError) throw codedError(ErrorCode.BadUserInput, `the question does not fit the model's context with room for the answer: ${error.message}`, { field: 'question' });
      throw error;
    }
    // An answer with no source in its prompt would not be grounded: refuse rather than let the model invent one.
    if (prompt.sources === 0) {
      throw codedError(
        ErrorCode.BadUserInput,
        `the question leaves no room for any source in the model's context (${promptTokens} prompt tokens with room for the answer); ask a shorter question or lower "options.maxTokens"`,
        { field: 'question' },
      );
    }
    return prompt;
  }
}

function citations(hits: Hit[]): Citation[] {
  return hits.map((hit, i) => ({ ...hit, number: i + 1 }));
}

function shape(chunk: GeneratedChunk, index: number, cited: Citation[]): AnswerChunk {
  return { index, delta: chunk.delta, citations: cited, grounded: true, finishReason: chunk.finishReason, usage: chunk.usage, error: chunk.error, model: chunk.model };
}

/** The model refused the prompt as longer than its context (the gpu-server's and Triton's INVALID_ARGUMENT). */
function isContextOverflow(error: unknown): boolean {
  const e = error as Partial<GraphQLError> & { code?: string };
  const code = e.extensions?.code ?? e.code;
  return code === ErrorCode.BadUserInput && /context/i.test(e.message ?? '');
}
