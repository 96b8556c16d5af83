/**
 * Where a stream's text stands for its client, across the runs of its
 * generation (completions.ts): what the client already has, so a run that
 * makes the text again from the start — a resumed stream's (resumeAt), or a
 * run started again after its GPU server was lost — sends only what lies
 * past it, and chunks say where their text begins.
 *
 * - The first `resumeAt` characters are the client's from an earlier run of
 *   the stream: generated, not sent, and counted as delivered once (for the
 *   bill of a run cut short), as the run reaches them.
 * - After a restart, the text the lost run handled is not sent again either,
 *   and not counted again; the new run must make it again exactly, or it has
 *   `diverged` (a fleet whose endpoints do not make the same text for a seed),
 *   and going on would splice two texts.
 */
import { ErrorCode } from '../../../lib/errors';

export class StreamText {
  private generated = '';
  /** Text before this point is not sent: the client has it. */
  private skipTo: number;
  /** Of the first resumeAt characters, how many count as delivered so far. */
  private credited = 0;
  /** The text handled before the last restart, which the run must make again. */
  private handledBefore = '';
  private divergedAt: number | undefined;

  constructor(
    private readonly resumeAt: number,
    /** Called with text that counts as delivered without being sent (the client had it). */
    private readonly delivered: (text: string) => void,
  ) {
    this.skipTo = resumeAt;
  }

  /** This run's text so far, from the start. */
  get text(): string {
    return this.generated;
  }

  /** True once the run made text other than what the lost run had handled. */
  get diverged(): boolean {
    return this.divergedAt !== undefined;
  }

  /** Takes the run's next piece of text; returns the part of it the client does not have. */
  take(piece: string): string {
    const from = this.generated.length;
    this.generated += piece;
    const to = Math.min(this.generated.length, this.handledBefore.length);
    for (let at = from; this.divergedAt === undefined && at < to; at++) if (this.generated[at] !== this.handledBefore[at]) this.divergedAt = at;
    const creditTo = Math.min(this.generated.length, this.resumeAt);
    if (creditTo > this.credited) {
      this.delivered(this.generated.slice(this.credited, creditTo));
      this.credited = creditTo;
    }
    const unseen = this.generated.length - this.skipTo;
    return unseen <= 0 ? '' : piece.slice(Math.max(0, piece.length - unseen));
  }

  /** Where `delta`, the end of the text so far, begins for the client (never before what it has). */
  offsetOf(delta: string): number {
    return Math.max(this.generated.length - delta.length, this.skipTo);
  }

  /** The run was lost; the next one starts from the start, and what was handled is not sent again. */
  restart(): void {
    if (this.generated.length >= this.skipTo) this.handledBefore = this.generated;
    this.skipTo = Math.max(this.skipTo, this.generated.length);
    this.generated = '';
  }

  /**
   * Why a run cannot go on, or end well, with the text it made: it diverged, or (`ended`) it ended before the
   * point the client has. Undefined when it can.
   */
  problem(ended: boolean): { code: ErrorCode; message: string } | undefined {
    if (this.divergedAt !== undefined) {
      return {
        code: ErrorCode.GpuUnavailable,
        message: `the generation was started again on another GPU server after its own was lost, and made other text from character ${this.divergedAt} of the ${this.skipTo} already sent (the fleet's endpoints do not make the same text for a seed)`,
      };
    }
    if (!ended || this.generated.length >= this.skipTo) return undefined;
    if (this.skipTo === this.resumeAt) {
      return { code: ErrorCode.BadUserInput, message: `resumeAt expects at most ${this.generated.length} (the characters of this stream's text), but got ${this.resumeAt}` };
    }
    return {
      code: ErrorCode.GpuUnavailable,
      message: `the generation was started again on another GPU server after its own was lost, and ended after ${this.generated.length} characters, where ${this.skipTo} had been sent`,
    };
  }
}
