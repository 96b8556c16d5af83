/**
 * Automatic prefix caching for one model instance, as vLLM does it: a
 * prompt is cut into blocks of `blockTokens` tokens, and each whole block's
 * keys and values (every layer) are kept under the hash of the WHOLE prefix
 * up to its end — a chain hash, h_i = sha256(h_{i-1} ‖ tokens of block i) —
 * so equal hashes mean equal prefixes and a block is only ever reused after
 * the very tokens it was computed after (its K/V depend on all of them).
 * A new prompt reuses the longest run of cached blocks from its start.
 *
 * Eviction is least-recently-used within `budgetBytes` (a pool of
 * floor(budget / block size) blocks). A chain is touched
 * from its last block back to its first, so the first blocks of a prefix are
 * always younger than its tail: eviction eats prefixes from the end, and what
 * stays cached is still reachable (a lookup stops at the first missing
 * block, so a surviving tail behind an evicted block would be dead weight).
 *
 * Only prompt blocks are cached, not generated ones: a conversation's next
 * turn re-renders the answer as text, whose tokens need not be the sampled
 * ones, while its earlier prompt comes back verbatim.
 */
import { createHash } from 'node:crypto';
import { newPrefixCacheCounters, PrefixCacheCounter } from '../../core/prefix-cache-counters';

/** Where one block's K/V sits in a tensor set [batch, kvHeads, width, headDim] (index layer × 2 + 0 key / 1 value). */
export interface KvSlice {
  tensors: readonly Float32Array[];
  /** Width of the tensors' sequence axis. */
  width: number;
  row: number;
  /** First column of the block in that row. */
  column: number;
}

export interface KvShape {
  layers: number;
  kvHeads: number;
  headDim: number;
}

export class PrefixCache {
  /**
   * The block pool, as vLLM keeps one: `capacity` blocks of
   * [layer×2+kind][head][token][dim] in one buffer, allocated at the first
   * store: the instance's memory for the cache is bounded and taken once,
   * a block costs no allocation, and a full cache is not tens of thousands
   * of typed arrays for the garbage collector to trace and free.
   */
  private pool: Float32Array | undefined;
  /** Slots handed out so far; slots after them were never used. */
  private allocated = 0;
  /** Slots by chain hash, in recency order (oldest first). */
  private readonly blocks = new Map<string, number>();
  readonly blockBytes: number;
  /** Blocks the budget holds. */
  readonly capacity: number;
  private readonly blockFloats: number;

  constructor(
    readonly blockTokens: number,
    readonly budgetBytes: number,
    private readonly shape: KvShape,
    /** Indexed by PrefixCacheCounter; shared with the main thread for metrics. */
    readonly counters: Float64Array = newPrefixCacheCounters(),
  ) {
    if (!Number.isInteger(blockTokens) || blockTokens < 1) throw new RangeError(`PrefixCache expects a block size of at least 1 token, but got ${blockTokens}`);
    this.blockFloats = 2 * shape.layers * shape.kvHeads * blockTokens * shape.headDim;
    this.blockBytes = this.blockFloats * Float32Array.BYTES_PER_ELEMENT;
    this.capacity = Math.floor(budgetBytes / this.blockBytes);
  }

  /** Chain hashes of the whole blocks at the start of `ids`. */
  hashes(ids: readonly number[]): string[] {
    const hashes: string[] = [];
    let previous = Buffer.alloc(0);
    for (let end = this.blockTokens; end <= ids.length; end += this.blockTokens) {
      const tokens = Int32Array.from(ids.slice(end - this.blockTokens, end));
      previous = createHash('sha256').update(previous).update(new Uint8Array(tokens.buffer)).digest();
      hashes.push(previous.toString('base64'));
    }
    return hashes;
  }

  /**
   * The cached blocks at the start of a prompt of `promptLength` tokens with
   * block hashes `hashes`, longest run first to last; at least one prompt
   * token is always left out, so the prefill has a position to take logits
   * from. Counts the hit and the miss. The blocks are views into the pool:
   * copy them out (`copyOut`) before the next `store`.
   */
  lookup(hashes: readonly string[], promptLength: number): Float32Array[] {
    const usable = Math.min(hashes.length, Math.floor((promptLength - 1) / this.blockTokens));
    const found: Float32Array[] = [];
    for (let i = 0; i < usable; i++) {
      const slot = this.blocks.get(hashes[i]);
      if (slot === undefined) break;
      found.push(this.pool!.subarray(slot * this.blockFloats, (slot + 1) * this.blockFloats));
    }
    this.touch(hashes.slice(0, found.length));
    const hit = found.length * this.blockTokens;
    this.counters[PrefixCacheCounter.HitTokens] += hit;
    this.counters[PrefixCacheCounter.MissTokens] += promptLength - hit;
    return found;
  }

  /** Copies `block` into `into` (a past tensor set), right-aligned so the block's first token lands at `into.column`. */
  copyOut(block: Float32Array, into: KvSlice): void {
    const { kvHeads, headDim } = this.shape;
    const span = this.blockTokens * headDim;
    into.tensors.forEach((tensor, t) => {
      for (let h = 0; h < kvHeads; h++) {
        tensor.set(block.subarray((t * kvHeads + h) * span, (t * kvHeads + h + 1) * span), ((into.row * kvHeads + h) * into.width + into.column) * headDim);
      }
    });
  }

  /**
   * Keeps the blocks of a prefilled prompt: block i of `hashes` is read from
   * `from` at column `from.column + i × blockTokens`. Blocks already cached
   * are only touched. A full pool gives up its least recently used block.
   */
  store(hashes: readonly string[], from: KvSlice): void {
    if (this.capacity === 0) return;
    this.pool ??= new Float32Array(this.capacity * this.blockFloats);
    const { kvHeads, headDim } = this.shape;
    const span = this.blockTokens * headDim;
    hashes.forEach((hash, i) => {
      if (this.blocks.has(hash)) return;
      const slot = this.allocated < this.capacity ? this.allocated++ : this.evictOldest();
      const block = this.pool!.subarray(slot * this.blockFloats, (slot + 1) * this.blockFloats);
      from.tensors.forEach((tensor, t) => {
        for (let h = 0; h < kvHeads; h++) {
          const start = ((from.row * kvHeads + h) * from.width + from.column + i * this.blockTokens) * headDim;
          block.set(tensor.subarray(start, start + span), (t * kvHeads + h) * span);
        }
      });
      this.blocks.set(hash, slot);
    });
    this.touch(hashes);
    this.counters[PrefixCacheCounter.Bytes] = this.blocks.size * this.blockBytes;
  }

  /** Blocks held now. */
  get size(): number {
    return this.blocks.size;
  }

  /** Drops the least recently used block; returns its slot. */
  private evictOldest(): number {
    const [hash, slot] = this.blocks.entries().next().value!;
    this.blocks.delete(hash);
    this.counters[PrefixCacheCounter.EvictedBlocks]++;
    return slot;
  }

  /** Marks a chain used now, its first block most recent (see the file comment). */
  private touch(hashes: readonly string[]): void {
    for (let i = hashes.length - 1; i >= 0; i--) {
      const slot = this.blocks.get(hashes[i]);
      if (slot === undefined) continue;
      this.blocks.delete(hashes[i]);
      this.blocks.set(hashes[i], slot);
    }
  }
}
