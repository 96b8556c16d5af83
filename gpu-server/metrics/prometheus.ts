/**
 * The Prometheus text exposition format (version 0.0.4): per metric family a
 * `# HELP` and a `# TYPE` line, then one sample per label set. Label values
 * escape backslash, double quote and newline; HELP text escapes backslash
 * and newline — the only escapes the format has.
 */
export type MetricType = 'counter' | 'gauge';

export interface Sample {
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** The families as exposition text. Names are checked, since a bad one makes the whole scrape fail. */
export function formatPrometheus(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const family of families) {
    if (!METRIC_NAME.test(family.name)) throw new Error(`metric name '${family.name}' is not a valid Prometheus name (expected ${METRIC_NAME})`);
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`);
    for (const sample of family.samples) {
      const labels = Object.entries(sample.labels).map(([key, value]) => {
        if (!LABEL_NAME.test(key)) throw new Error(`label name '${key}' of metric '${family.name}' is not a valid Prometheus label name (expected ${LABEL_NAME})`);
        return `${key}="${escapeLabelValue(value)}"`;
      });
      lines.push(`${family.name}${labels.length ? `{${labels.join(',')}}` : ''} ${formatValue(sample.value)}`);
    }
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}
