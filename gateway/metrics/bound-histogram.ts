import type { Metric, Registry } from 'prom-client';

/** One label set's series: observations per bucket (not cumulative; the last is above every bound), their sum and count. */
interface Series {
  readonly labels: Readonly<Record<string, string>>;
  readonly counts: number[];
  sum: number;
  count: number;
}

type Level = Map<string, Level | Series>;

interface ExportedValue {
  labels: Record<string, string | number>;
  sharedLabels: Readonly<Record<string, string>>;
  value: number;
  metricName: string;
  exemplar: null | undefined;
}

interface Exported<Value> {
  name: string;
  help: string;
  type: 'histogram';
  aggregator: 'sum';
  values: Value[];
}

/**
 * A Prometheus histogram for the per-request metrics. prom-client 15's
 * Histogram checks the label names and builds a hash string of the label
 * values on every observation, and its `labels()` children do the same (they
 * only hold the label object): about a microsecond each, about nine times per
 * request (the operation, the HTTP request, each subgraph fetch, the cost).
 * Here each label set's series is found by walking one map per label value,
 * built once. What a registry exposes (text, JSON, the cluster aggregation)
 * is what prom-client's Histogram exposes for the same observations; the test
 * holds the two to the same bytes.
 */
export class BoundHistogram<Label extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private root: Level = new Map();
  private series: Series[] = [];

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly [Label, ...Label[]],
    private readonly buckets: readonly number[],
    registry: Registry,
  ) {
    // The registry reads only name, help, type, aggregator, get/getForPromString and reset; Metric's other members are for its own classes.
    registry.registerMetric(this as unknown as Metric);
  }

  /** Records `value` under the label values given in `labelNames`' order. */
  observe(value: number, ...labelValues: string[]): void {
    if (!Number.isFinite(value)) throw new TypeError(`histogram ${this.name} expects a finite number, but got ${value}`);
    const series = this.seriesFor(labelValues);
    let bucket = 0;
    while (bucket < this.buckets.length && value > this.buckets[bucket]) bucket += 1;
    series.counts[bucket] += 1;
    series.sum += value;
    series.count += 1;
  }

  reset(): void {
    this.root = new Map();
    this.series = [];
  }

  /** The JSON form (getMetricsAsJSON, the cluster aggregation): each value's labels all in one object, as prom-client's Histogram gives them. */
  async get(): Promise<Exported<Omit<ExportedValue, 'sharedLabels'>>> {
    const exported = await this.getForPromString();
    return { ...exported, values: exported.values.map(({ sharedLabels, labels, ...value }) => ({ ...value, labels: { ...labels, ...sharedLabels } })) };
  }

  /** The text form, in prom-client's Histogram's shape: the bucket bound as the value's own label, the label set shared, so the text puts `le` first. */
  async getForPromString(): Promise<Exported<ExportedValue>> {
    const values: ExportedValue[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const { labels, counts, sum, count } of this.series) {
      let cumulative = 0;
      this.buckets.forEach((bound, i) => {
        cumulative += counts[i];
        values.push({ labels: { le: bound }, sharedLabels: labels, value: cumulative, metricName: bucketName, exemplar: null });
      });
      values.push({ labels: { le: '+Inf' }, sharedLabels: labels, value: count, metricName: bucketName, exemplar: null });
      values.push({ labels: {}, sharedLabels: labels, value: sum, metricName: `${this.name}_sum`, exemplar: undefined });
      values.push({ labels: {}, sharedLabels: labels, value: count, metricName: `${this.name}_count`, exemplar: undefined });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  private seriesFor(labelValues: readonly string[]): Series {
    if (labelValues.length !== this.labelNames.length) throw new TypeError(`histogram ${this.name} expects labels ${this.labelNames.join(', ')}, but got ${labelValues.length} values`);
    let level = this.root;
    for (let i = 0; i < labelValues.length - 1; i++) {
      let next = level.get(labelValues[i]) as Level | undefined;
      if (!next) {
        next = new Map();
        level.set(labelValues[i], next);
      }
      level = next;
    }
    const last = labelValues[labelValues.length - 1];
    let series = level.get(last) as Series | undefined;
    if (!series) {
      const labels = Object.fromEntries(this.labelNames.map((name, i) => [name, labelValues[i]]));
      series = { labels, counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
      level.set(last, series);
      this.series.push(series);
    }
    return series;
  }
}
