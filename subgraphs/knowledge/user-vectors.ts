import { Index, MetricKind, ScalarKind } from 'usearch';
import { codedError, ErrorCode } from '../../lib/errors';

/** A chunk found by a search; `score` is the cosine similarity of its vector to the query. */
export interface SearchHit {
  docId: string;
  chunk: number;
  score: number;
}

export interface UserVectorsOptions {
  /** Exact search while the user has at most this many vectors; an HNSW graph above it. */
  exactThreshold: number;
  /** Told when building the graph fails (search stays exact). */
  onError?: (error: unknown) => void;
}

/** Graph parameters: usearch's defaults, which gave recall@5 ≥ 0.99 on 100k clustered vectors (bench/vector-search.ts). */
const CONNECTIVITY = 16;
const EXPANSION_ADD = 128;
const EXPANSION_SEARCH = 64;
/** Vectors handed to usearch in one call while a graph is built. */
const BUILD_STEP = 16;
/** How long building a graph may hold the event loop before it lets searches and requests in. */
const BUILD_SLICE_MS = 15;
/**
 * usearch inserts with one thread. With several, concurrent inserts left a few vectors of every few
 * thousand unreachable (a stored vector was not its own nearest neighbour); one thread left none in
 * 120,000 and builds the same graph every time. It costs build time, not search time (bench/RESULTS.md).
 */
const INSERT_THREADS = 1;
/** Vectors per storage block (2 MiB at D = 128); the first block starts at 64 and doubles up to this. */
const BLOCK_SHIFT = 12;
const BLOCK_VECTORS = 1 << BLOCK_SHIFT;
const BLOCK_MASK = BLOCK_VECTORS - 1;

interface DocEntry {
  docId: string;
  tags: ReadonlySet<string>;
  seq: number;
  slots: Int32Array;
}

/**
 * One user's vectors, as unit vectors in Float32Array blocks of BLOCK_VECTORS (slot s is vector
 * s mod BLOCK_VECTORS of block s / BLOCK_VECTORS): growing adds a block rather than copying them all,
 * and wastes at most one block. A removed document's slots are reused by later ones. Searched by brute force while small; above
 * `exactThreshold` an HNSW graph (usearch, cosine) is built in batches between event-loop turns and
 * takes over once complete. Its keys are slot numbers: a removal deletes them from the graph
 * (usearch `remove`), a reused slot is inserted again. When the user falls to half the threshold the
 * graph is dropped and search is exact again, so users hovering at the threshold do not rebuild it.
 */
export class UserVectors {
  readonly dimensions: number;
  private readonly blocks: Float32Array[];
  private slotChunk: Int32Array;
  private readonly slotDoc: (DocEntry | undefined)[] = [];
  private capacity: number;
  /** Slots ever used; those below it that are not live are in `free`. */
  private used = 0;
  private readonly free: number[] = [];
  private live = 0;
  private readonly docs = new Map<string, DocEntry>();
  private graph: Index | null = null;
  /** True once the graph holds every live slot; until then search is exact. */
  private graphReady = false;
  /** While the graph is built: slots below this were handed to it, later changes there go to it directly. */
  private graphUpTo = 0;
  private building: Promise<void> | null = null;

  constructor(
    dimensions: number,
    private readonly options: UserVectorsOptions,
  ) {
    if (!Number.isInteger(dimensions) || dimensions < 1) throw new TypeError(`UserVectors expects dimensions to be a positive integer, but got ${dimensions}`);
    this.dimensions = dimensions;
    this.capacity = 64;
    this.blocks = [new Float32Array(this.capacity * dimensions)];
    this.slotChunk = new Int32Array(this.capacity);
  }

  /** Live vectors. */
  get size(): number {
    return this.live;
  }

  get documentCount(): number {
    return this.docs.size;
  }

  /** 'hnsw' once a complete graph answers searches. */
  get mode(): 'exact' | 'hnsw' {
    return this.graphReady ? 'hnsw' : 'exact';
  }

  /** The change that last published the document, if it is here. */
  seqOf(docId: string): number | undefined {
    return this.docs.get(docId)?.seq;
  }

  /** Resolves when no graph is being built. */
  async indexed(): Promise<void> {
    while (this.building) await this.building;
  }

  /** Adds (or replaces) a document's chunk vectors; throws, changing nothing, if their length is not `dimensions`. */
  add(docId: string, tags: readonly string[], seq: number, vectors: readonly Float32Array[]): void {
    vectors.forEach((vector, chunk) => {
      if (vector.length !== this.dimensions) {
        throw codedError(
          ErrorCode.InternalServerError,
          `cannot index document ${docId}: this user's vectors have ${this.dimensions} dimensions, but chunk ${chunk} has ${vector.length} (was the embedding model changed?)`,
          { docId, expected: this.dimensions, got: vector.length },
        );
      }
    });
    this.remove(docId);
    const entry: DocEntry = { docId, tags: new Set(tags), seq, slots: new Int32Array(vectors.length) };
    vectors.forEach((vector, chunk) => {
      const slot = this.allocate();
      writeUnit(vector, this.blocks[slot >>> BLOCK_SHIFT], (slot & BLOCK_MASK) * this.dimensions);
      this.slotDoc[slot] = entry;
      this.slotChunk[slot] = chunk;
      entry.slots[chunk] = slot;
    });
    this.docs.set(docId, entry);
    this.live += vectors.length;
    if (this.graph) {
      const inGraph = entry.slots.filter((slot) => this.graphHolds(slot));
      if (inGraph.length > 0) this.graph.add(slotKeys(inGraph), this.gather(inGraph), INSERT_THREADS);
    } else if (this.live > this.options.exactThreshold) {
      this.startGraph();
    }
  }

  /** Removes a document's vectors; false when it was not here. */
  remove(docId: string): boolean {
    const entry = this.docs.get(docId);
    if (!entry) return false;
    if (this.graph) {
      const inGraph = entry.slots.filter((slot) => this.graphHolds(slot));
      if (inGraph.length > 0) this.graph.remove(slotKeys(inGraph));
    }
    for (const slot of entry.slots) {
      this.slotDoc[slot] = undefined;
      this.free.push(slot);
    }
    this.docs.delete(docId);
    this.live -= entry.slots.length;
    if (this.graph && this.live <= Math.floor(this.options.exactThreshold / 2)) {
      this.graph = null;
      this.graphReady = false;
    }
    return true;
  }

  /** Top-k chunks by cosine similarity, best first; with `tags`, only documents carrying every one of them. */
  search(query: Float32Array, k: number, tags?: readonly string[]): SearchHit[] {
    if (query.length !== this.dimensions) {
      throw codedError(ErrorCode.InternalServerError, `search expects a query vector of ${this.dimensions} dimensions (those indexed), but got ${query.length}`, {
        expected: this.dimensions,
        got: query.length,
      });
    }
    const unit = new Float32Array(this.dimensions);
    writeUnit(query, unit, 0);
    const filter = tags && tags.length > 0 ? (doc: DocEntry) => tags.every((tag) => doc.tags.has(tag)) : null;
    const graph = this.graphReady ? this.graph : null;
    if (!filter) return graph ? this.fromGraph(graph, unit, k, k, null) : this.exact(unit, k, this.docs.values());
    const matching = [...this.docs.values()].filter(filter);
    const matchingVectors = matching.reduce((sum, doc) => sum + doc.slots.length, 0);
    // A subset small enough to scan exactly costs less than over-fetching from the graph, and is exact.
    if (!graph || matchingVectors <= this.options.exactThreshold) return this.exact(unit, k, matching);
    return this.overFetch(graph, unit, k, filter, matchingVectors) ?? this.exact(unit, k, matching);
  }

  private exact(unit: Float32Array, k: number, docs: Iterable<DocEntry>): SearchHit[] {
    const top = new TopK(k);
    const { blocks, dimensions } = this;
    for (const doc of docs) {
      for (const slot of doc.slots) {
        const block = blocks[slot >>> BLOCK_SHIFT];
        const base = (slot & BLOCK_MASK) * dimensions;
        let dot = 0;
        for (let j = 0; j < dimensions; j++) dot += block[base + j] * unit[j];
        top.offer(dot, slot);
      }
    }
    return top.hits(this.slotDoc, this.slotChunk);
  }

  /**
   * Asks the graph for more neighbours than k, in proportion to how rare matching vectors are, and
   * widens until k of them match. Returns null once the fetch would pass a quarter of the user's
   * vectors: scanning the subset is then cheaper, and exact.
   */
  private overFetch(graph: Index, unit: Float32Array, k: number, filter: (doc: DocEntry) => boolean, matchingVectors: number): SearchHit[] | null {
    let fetch = Math.min(this.live, Math.ceil((k * this.live) / matchingVectors) * 2);
    for (;;) {
      const hits = this.fromGraph(graph, unit, k, fetch, filter);
      if (hits.length >= k || fetch >= this.live) return hits;
      fetch = Math.min(this.live, fetch * 4);
      if (fetch > this.live / 4) return null;
    }
  }

  /** The graph's `fetch` nearest vectors as hits, best first, keeping at most k that `filter` accepts. */
  private fromGraph(graph: Index, unit: Float32Array, k: number, fetch: number, filter: ((doc: DocEntry) => boolean) | null): SearchHit[] {
    const found = graph.search(unit, fetch, 1);
    const hits: SearchHit[] = [];
    for (let i = 0; i < found.keys.length && hits.length < k; i++) {
      const slot = Number(found.keys[i]);
      const doc = this.slotDoc[slot];
      if (!doc || (filter && !filter(doc))) continue;
      hits.push({ docId: doc.docId, chunk: this.slotChunk[slot], score: 1 - found.distances[i] });
    }
    return hits;
  }

  private graphHolds(slot: number): boolean {
    return this.graphReady || slot < this.graphUpTo;
  }

  private startGraph(): void {
    const graph = new Index({
      dimensions: this.dimensions,
      metric: MetricKind.Cos,
      quantization: ScalarKind.F32,
      connectivity: CONNECTIVITY,
      expansion_add: EXPANSION_ADD,
      expansion_search: EXPANSION_SEARCH,
      multi: false,
    });
    this.graph = graph;
    this.graphReady = false;
    this.graphUpTo = 0;
    const building = this.buildGraph(graph)
      .catch((error: unknown) => {
        if (this.graph === graph) this.graph = null;
        this.options.onError?.(error);
      })
      .finally(() => {
        if (this.building === building) this.building = null;
      });
    this.building = building;
  }

  /**
   * Inserts the live slots in slices of BUILD_SLICE_MS, yielding to the event loop between them; slots
   * changed meanwhile below `graphUpTo` are kept in step by add/remove.
   */
  private async buildGraph(graph: Index): Promise<void> {
    while (this.graph === graph && this.graphUpTo < this.used) {
      const sliceEnds = performance.now() + BUILD_SLICE_MS;
      do {
        const from = this.graphUpTo;
        const to = Math.min(this.used, from + BUILD_STEP);
        const slots: number[] = [];
        for (let slot = from; slot < to; slot++) if (this.slotDoc[slot]) slots.push(slot);
        if (slots.length > 0) graph.add(slotKeys(slots), this.gather(slots), INSERT_THREADS);
        this.graphUpTo = to;
      } while (this.graphUpTo < this.used && performance.now() < sliceEnds);
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (this.graph === graph) this.graphReady = true;
  }

  private gather(slots: ArrayLike<number>): Float32Array {
    const flat = new Float32Array(slots.length * this.dimensions);
    for (let i = 0; i < slots.length; i++) {
      const base = (slots[i] & BLOCK_MASK) * this.dimensions;
      flat.set(this.blocks[slots[i] >>> BLOCK_SHIFT].subarray(base, base + this.dimensions), i * this.dimensions);
    }
    return flat;
  }

  private allocate(): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    if (this.used === this.capacity) {
      if (this.capacity < BLOCK_VECTORS) {
        const first = new Float32Array(this.capacity * 2 * this.dimensions);
        first.set(this.blocks[0]);
        this.blocks[0] = first;
        this.capacity *= 2;
      } else {
        this.blocks.push(new Float32Array(BLOCK_VECTORS * this.dimensions));
        this.capacity += BLOCK_VECTORS;
      }
      const slotChunk = new Int32Array(this.capacity);
      slotChunk.set(this.slotChunk);
      this.slotChunk = slotChunk;
    }
    return this.used++;
  }
}

/** The k best (score, slot) pairs seen, kept sorted best first (k is small: insertion beats a heap). */
class TopK {
  private readonly scores: Float64Array;
  private readonly slots: Int32Array;
  private count = 0;

  constructor(private readonly k: number) {
    this.scores = new Float64Array(k);
    this.slots = new Int32Array(k);
  }

  offer(score: number, slot: number): void {
    if (this.count === this.k && score <= this.scores[this.k - 1]) return;
    let i = this.count < this.k ? this.count++ : this.k - 1;
    while (i > 0 && this.scores[i - 1] < score) {
      this.scores[i] = this.scores[i - 1];
      this.slots[i] = this.slots[i - 1];
      i--;
    }
    this.scores[i] = score;
    this.slots[i] = slot;
  }

  hits(slotDoc: readonly (DocEntry | undefined)[], slotChunk: Int32Array): SearchHit[] {
    const hits: SearchHit[] = [];
    for (let i = 0; i < this.count; i++) hits.push({ docId: slotDoc[this.slots[i]]!.docId, chunk: slotChunk[this.slots[i]], score: this.scores[i] });
    return hits;
  }
}

/** Writes `vector` scaled to unit length (so a dot product is the cosine); a zero vector stays zero. */
function writeUnit(vector: Float32Array, into: Float32Array, offset: number): void {
  let norm = 0;
  for (let j = 0; j < vector.length; j++) norm += vector[j] * vector[j];
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  for (let j = 0; j < vector.length; j++) into[offset + j] = vector[j] * scale;
}

function slotKeys(slots: ArrayLike<number>): BigUint64Array {
  const keys = new BigUint64Array(slots.length);
  for (let i = 0; i < slots.length; i++) keys[i] = BigInt(slots[i]);
  return keys;
}
