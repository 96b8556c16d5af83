import { parseTraceparent, traceContextFor } from './trace-context';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

describe('parseTraceparent', () => {
  it('reads a version 00 header', () => {
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-01`)).toEqual({ traceId: TRACE, parentId: PARENT, flags: '01' });
  });

  it('reads the first four fields of a later version, which may append more', () => {
    expect(parseTraceparent(`01-${TRACE}-${PARENT}-00-what-comes-next`)).toEqual({ traceId: TRACE, parentId: PARENT, flags: '00' });
  });

  it.each([
    ['absent', undefined],
    ['empty', ''],
    ['upper-case hex', `00-${TRACE.toUpperCase()}-${PARENT}-01`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${PARENT}-01`],
    ['an all-zero parent id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['version ff', `ff-${TRACE}-${PARENT}-01`],
    ['version 00 with a field appended', `00-${TRACE}-${PARENT}-01-extra`],
    ['a short trace id', `00-${TRACE.slice(1)}-${PARENT}-01`],
    ['two headers joined', `00-${TRACE}-${PARENT}-01,00-${TRACE}-${PARENT}-01`],
    ['not hex', `00-${TRACE.replace('4', 'g')}-${PARENT}-01`],
  ])('refuses %s', (_name, value) => {
    expect(parseTraceparent(value)).toBeUndefined();
  });
});

describe('traceContextFor', () => {
  it("continues the caller's trace under a span of the gateway's own, keeping its flags and tracestate", () => {
    const trace = traceContextFor({ headers: { traceparent: `00-${TRACE}-${PARENT}-00`, tracestate: 'vendor=abc' } });
    expect(trace).toEqual({ traceId: TRACE, parentId: PARENT, spanId: expect.stringMatching(/^[0-9a-f]{16}$/), flags: '00', traceparent: `00-${TRACE}-${trace.spanId}-00`, tracestate: 'vendor=abc' });
    expect(trace.spanId).not.toBe(PARENT);
  });

  it('starts a new sampled trace when the request has none', () => {
    const trace = traceContextFor({ headers: {} });
    expect(trace.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(trace.traceparent).toBe(`00-${trace.traceId}-${trace.spanId}-01`);
    expect(trace.parentId).toBeUndefined();
    expect(parseTraceparent(trace.traceparent)).toEqual({ traceId: trace.traceId, parentId: trace.spanId, flags: '01' });
  });

  it('starts a new trace, dropping tracestate, when traceparent is malformed', () => {
    const trace = traceContextFor({ headers: { traceparent: `00-${TRACE}-${PARENT}`, tracestate: 'vendor=abc' } });
    expect(trace.traceId).not.toBe(TRACE);
    expect(trace.tracestate).toBeUndefined();
  });

  it('gives every request its own trace and span', () => {
    const a = traceContextFor({ headers: {} });
    const b = traceContextFor({ headers: {} });
    expect(a.traceId).not.toBe(b.traceId);
    expect(a.spanId).not.toBe(b.spanId);
  });

  it('drops a tracestate longer than it passes on', () => {
    const trace = traceContextFor({ headers: { traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: `vendor=${'a'.repeat(600)}` } });
    expect(trace.traceId).toBe(TRACE);
    expect(trace.tracestate).toBeUndefined();
  });
});
