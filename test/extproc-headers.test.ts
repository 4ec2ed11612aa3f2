/** The header view of an ext_proc message: what recognition reads, decoded only when asked. */
import { describe, expect, it } from 'vitest';
import { headerMap } from '../src/extproc/messages.js';

const raw = (key: string, value: string | Buffer) => ({ key, raw_value: Buffer.isBuffer(value) ? value : Buffer.from(value) });

describe('headerMap', () => {
  const headers = headerMap({
    headers: [
      raw(':authority', 'api.openai.com'),
      raw('X-Consumer-Id', 'team-a'),
      raw('x-consumer-id', 'second'),
      { key: 'legacy', value: 'from value' },
      raw('empty', ''),
      raw('big', Buffer.alloc(20_000, 0x61)),
    ],
  });

  it('finds names case-insensitively, the first occurrence winning, from raw_value or the legacy value', () => {
    expect(headers.get(':authority')).toBe('api.openai.com');
    expect(headers.get('x-consumer-id')).toBe('team-a');
    expect(headers.get('legacy')).toBe('from value');
    expect(headers.get('empty')).toBe('');
    expect(headers.has('empty')).toBe(true);
    expect(headers.get('absent')).toBeUndefined();
    expect(headers.has('absent')).toBe(false);
    expect(headers.get('big')).toHaveLength(16 * 1024);
  });

  it('iterates as a Map of lower-case names, once each', () => {
    expect([...headers.keys()]).toEqual([':authority', 'x-consumer-id', 'legacy', 'empty', 'big']);
    expect(headers.size).toBe(5);
    expect(new Map(headers).get('x-consumer-id')).toBe('team-a');
    const seen: string[] = [];
    headers.forEach((v, k) => seen.push(`${k}=${v.slice(0, 8)}`));
    expect(seen).toEqual([':authority=api.open', 'x-consumer-id=team-a', 'legacy=from val', 'empty=', 'big=aaaaaaaa']);
    // Reads after iterating answer the same.
    expect(headers.get('x-consumer-id')).toBe('team-a');
    expect(headerMap(undefined).size).toBe(0);
  });
});
