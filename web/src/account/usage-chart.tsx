import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { formatCount, formatMicros } from '../money';

export interface UsageBucket {
  key: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  amount: number;
}

/**
 * Spend and tokens per UTC day, drawn with uPlot (small, canvas, no
 * dependencies). Days without usage are absent from the graph's answer; the
 * chart fills them with zero so the time axis is continuous. The same figures
 * follow as a table, for screen readers and for reading exact numbers.
 */
export function UsageByDayChart({ buckets, from, to, currency }: { buckets: UsageBucket[]; from: Date; to: Date; currency: string }) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const byDay = new Map(buckets.map((b) => [b.key, b]));
    const days: number[] = [];
    const spend: number[] = [];
    const tokens: number[] = [];
    for (let day = Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate()); day < to.getTime(); day += 86_400_000) {
      const bucket = byDay.get(new Date(day).toISOString().slice(0, 10));
      days.push(day / 1000);
      spend.push((bucket?.amount ?? 0) / 1_000_000);
      tokens.push(bucket ? bucket.promptTokens + bucket.completionTokens : 0);
    }
    const plot = new uPlot(
      {
        width: Math.max(280, element.clientWidth),
        height: 220,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
        series: [
          {},
          { label: `Spend (${currency})`, stroke: '#2563eb', fill: 'rgba(37,99,235,0.15)', value: (_u, v) => (v == null ? '–' : formatMicros(Math.round(v * 1_000_000), currency)) },
          { label: 'Tokens', stroke: '#b45309', scale: 'tokens', value: (_u, v) => (v == null ? '–' : formatCount(v)) },
        ],
        axes: [
          {},
          // Spend is often a few millionths of a dollar: the axis shows it as money, never rounded to 0.
          { label: currency, size: 90, values: (_u, splits) => splits.map((v) => formatMicros(Math.round(v * 1_000_000), currency)) },
          { side: 1, scale: 'tokens', grid: { show: false }, label: 'tokens', values: (_u, splits) => splits.map((v) => formatCount(v)) },
        ],
      },
      [days, spend, tokens],
      element,
    );
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(280, element.clientWidth), height: 220 }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [buckets, from, to, currency]);
  return <div ref={host} className="chart" role="img" aria-label="Spend and tokens per day over the last 30 days (the table below has the figures)" />;
}

/** Spend per model as proportional bars (a list, so it reads as well as it looks). */
export function UsageByModel({ buckets, currency }: { buckets: UsageBucket[]; currency: string }) {
  const largest = Math.max(1, ...buckets.map((b) => b.amount));
  return (
    <ul className="bars">
      {buckets.map((b) => (
        <li key={b.key}>
          <span className="bar-label">{b.key}</span>
          <span className="bar" style={{ width: `${Math.max(1, (b.amount / largest) * 100)}%` }} aria-hidden="true" />
          <span className="bar-value">
            {formatMicros(b.amount, currency)} · {formatCount(b.requests)} {b.requests === 1 ? 'request' : 'requests'} · {formatCount(b.promptTokens + b.completionTokens)} tokens
          </span>
        </li>
      ))}
    </ul>
  );
}
