import { BufferedResponse, ResponseHeaders } from './buffered-response';

const body = Buffer.from(JSON.stringify({ data: { ok: true } }));
const response = () => new BufferedResponse(200, 'OK', ResponseHeaders.from({ 'Content-Type': 'application/json', 'set-cookie': ['a=1', 'b=2'] }), body, 'http://s/graphql');

describe('BufferedResponse', () => {
  it('reads headers case-insensitively, joining repeated ones as Fetch does', () => {
    const { headers } = response();
    expect(headers.get('content-type')).toBe('application/json');
    expect(headers.get('CONTENT-TYPE')).toBe('application/json');
    expect(headers.get('set-cookie')).toBe('a=1, b=2');
    expect(headers.get('cache-control')).toBeNull();
    expect([...headers]).toEqual([
      ['content-type', 'application/json'],
      ['set-cookie', 'a=1, b=2'],
    ]);
  });

  it('says ok for 2xx only and keeps the URL it was fetched from', () => {
    expect(response().ok).toBe(true);
    const failed = new BufferedResponse(503, 'Service Unavailable', new ResponseHeaders(), Buffer.alloc(0), 'http://s/graphql');
    expect(failed.ok).toBe(false);
    expect(failed.url).toBe('http://s/graphql');
  });

  it('reads its body once, like a fetch response; clones read their own', async () => {
    const first = response();
    const clone = first.clone();
    expect(await first.json()).toEqual({ data: { ok: true } });
    expect(first.bodyUsed).toBe(true);
    await expect(first.text()).rejects.toThrow('Body is unusable: the body has already been read');
    expect(() => first.clone()).toThrow('the body has already been read');
    expect(clone.bodyUsed).toBe(false);
    expect(await clone.text()).toBe(body.toString());
  });

  it('hands out a copy of its bytes, so a caller writing into them changes no clone', async () => {
    const first = response();
    const clone = first.clone();
    new Uint8Array(await first.arrayBuffer()).fill(0);
    expect(await clone.json()).toEqual({ data: { ok: true } });
  });
});
