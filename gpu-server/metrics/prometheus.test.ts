/** The Prometheus text format writer: HELP/TYPE lines, samples, and the three escapes. */
import { escapeLabelValue, formatPrometheus } from './prometheus';

describe('formatPrometheus', () => {
  it('writes HELP and TYPE once per family, then one line per sample', () => {
    const text = formatPrometheus([
      {
        name: 'nv_inference_count',
        help: 'Number of inferences',
        type: 'counter',
        samples: [
          { labels: { model: 'a', version: '1' }, value: 3 },
          { labels: { model: 'b', version: '2' }, value: 0 },
        ],
      },
      { name: 'up', help: 'Up', type: 'gauge', samples: [{ labels: {}, value: 1 }] },
      { name: 'empty_total', help: 'No samples yet', type: 'counter', samples: [] },
    ]);
    expect(text).toBe(
      [
        '# HELP nv_inference_count Number of inferences',
        '# TYPE nv_inference_count counter',
        'nv_inference_count{model="a",version="1"} 3',
        'nv_inference_count{model="b",version="2"} 0',
        '# HELP up Up',
        '# TYPE up gauge',
        'up 1',
        '# HELP empty_total No samples yet',
        '# TYPE empty_total counter',
        '',
      ].join('\n'),
    );
  });

  it('escapes backslash, double quote and newline in label values, and backslash and newline in HELP', () => {
    expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
    const text = formatPrometheus([{ name: 'm', help: 'line one\nback\\slash "quoted"', type: 'gauge', samples: [{ labels: { model: 'x"y\\z\nw' }, value: 1.5 }] }]);
    expect(text).toBe('# HELP m line one\\nback\\\\slash "quoted"\n# TYPE m gauge\nm{model="x\\"y\\\\z\\nw"} 1.5\n');
  });

  it('writes special values as Prometheus spells them', () => {
    const text = formatPrometheus([{ name: 'm', help: 'h', type: 'gauge', samples: [NaN, Infinity, -Infinity].map((value) => ({ labels: {}, value })) }]);
    expect(text.split('\n').slice(2, 5)).toEqual(['m NaN', 'm +Inf', 'm -Inf']);
  });

  it('refuses names that would break the scrape', () => {
    expect(() => formatPrometheus([{ name: 'bad-name', help: 'h', type: 'gauge', samples: [] }])).toThrow(
      "metric name 'bad-name' is not a valid Prometheus name (expected /^[a-zA-Z_:][a-zA-Z0-9_:]*$/)",
    );
    expect(() => formatPrometheus([{ name: 'm', help: 'h', type: 'gauge', samples: [{ labels: { 'model-name': 'x' }, value: 1 }] }])).toThrow(
      "label name 'model-name' of metric 'm' is not a valid Prometheus label name (expected /^[a-zA-Z_][a-zA-Z0-9_]*$/)",
    );
  });
});
