import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { ConsumerConfig } from '../src/config/types.js';
import { createConsumerResolver, MAX_CONSUMER_ID_LENGTH, resolveConsumer, stripPort, xfccUri } from '../src/traffic/consumer.js';

const SECRET = 'test-secret';
const KEY = 'sk-proj-FAKEKEY0123456789abcdef';
const NONE = new Map<string, string>();

function cfg(resolvers: ConsumerConfig['resolvers'], secret = SECRET): ConsumerConfig {
  return { resolvers, fingerprint_secret: secret };
}

const ALL = cfg([
  { type: 'header', header: 'X-Consumer-Id' },
  { type: 'xfcc' },
  { type: 'api_key', headers: ['authorization', 'api-key', 'x-api-key', 'x-goog-api-key'] },
  { type: 'attribute', attribute: 'source.address' },
]);

const fp = (key: string, secret = SECRET): string =>
  `key:${createHmac('sha256', secret).update(key).digest('hex').slice(0, 16)}`;

describe('resolveConsumer', () => {
  it('takes the first resolver that yields an identity', () => {
    const headers = new Map([
      ['x-consumer-id', 'checkout-svc'],
      ['authorization', `Bearer ${KEY}`],
      ['x-forwarded-client-cert', 'URI=spiffe://corp/ns/a/sa/b'],
    ]);
    const attrs = new Map([['source.address', '10.0.0.7:5555']]);
    expect(resolveConsumer(headers, attrs, ALL)).toEqual({ id: 'checkout-svc', resolver: 'header' });
    headers.delete('x-consumer-id');
    expect(resolveConsumer(headers, attrs, ALL)).toEqual({ id: 'spiffe://corp/ns/a/sa/b', resolver: 'xfcc' });
    headers.delete('x-forwarded-client-cert');
    expect(resolveConsumer(headers, attrs, ALL)).toEqual({ id: fp(KEY), resolver: 'api_key' });
    headers.delete('authorization');
    expect(resolveConsumer(headers, attrs, ALL)).toEqual({ id: '10.0.0.7', resolver: 'attribute' });
    expect(resolveConsumer(NONE, NONE, ALL)).toBeNull();
  });

  it('skips empty and blank values', () => {
    const headers = new Map([
      ['x-consumer-id', '   '],
      ['authorization', 'Bearer '],
      ['api-key', 'azure-key'],
    ]);
    expect(resolveConsumer(headers, NONE, ALL)).toEqual({ id: fp('azure-key'), resolver: 'api_key' });
  });

  it('caps the length of header identities', () => {
    const r = resolveConsumer(new Map([['x-consumer-id', 'x'.repeat(100_000)]]), NONE, ALL);
    expect(r?.id.length).toBe(MAX_CONSUMER_ID_LENGTH);
  });
});

describe('api_key fingerprints', () => {
  const resolve = createConsumerResolver(ALL);

  it('fingerprints the key of every configured header, never returning it', () => {
    for (const [name, value] of [
      ['authorization', `Bearer ${KEY}`],
      ['authorization', `bearer   ${KEY}  `],
      ['api-key', KEY],
      ['x-api-key', KEY],
      ['x-goog-api-key', KEY],
    ] as const) {
      const r = resolve(new Map([[name, value]]), NONE);
      expect(r).toEqual({ id: fp(KEY), resolver: 'api_key' });
      expect(JSON.stringify(r)).not.toContain(KEY);
      expect(JSON.stringify(r)).not.toContain(KEY.slice(0, 12));
    }
  });

  it('depends on the secret', () => {
    const other = createConsumerResolver({ ...ALL, fingerprint_secret: 'other' });
    const headers = new Map([['x-api-key', KEY]]);
    expect(other(headers, NONE)?.id).toBe(fp(KEY, 'other'));
    expect(other(headers, NONE)?.id).not.toBe(resolve(headers, NONE)?.id);
  });

  it('uses the access key id of an AWS SigV4 authorization and ignores other schemes', () => {
    const sigv4 =
      'AWS4-HMAC-SHA256 Credential=AKIAFAKE0000EXAMPLE/20251017/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=abc';
    expect(resolve(new Map([['authorization', sigv4]]), NONE)?.id).toBe(fp('AKIAFAKE0000EXAMPLE'));
    expect(resolve(new Map([['authorization', 'Basic dXNlcjpwYXNz']]), NONE)).toBeNull();
  });

  it('honours the configured header list and its order', () => {
    const only = createConsumerResolver(cfg([{ type: 'api_key', headers: ['X-Api-Key', 'authorization'] }]));
    const headers = new Map([
      ['authorization', 'Bearer second'],
      ['x-api-key', 'first'],
    ]);
    expect(only(headers, NONE)?.id).toBe(fp('first'));
    expect(only(new Map([['api-key', 'ignored']]), NONE)).toBeNull();
  });
});

describe('xfcc', () => {
  it('reads the URI of the first element only', () => {
    const header =
      'By=spiffe://corp/gw;Hash=abc;URI=spiffe://corp/ns/pay/sa/api,By=spiffe://corp/next;URI=spiffe://corp/ns/other/sa/x';
    expect(xfccUri(header)).toBe('spiffe://corp/ns/pay/sa/api');
  });

  it('handles quoted values holding separators and escaped quotes', () => {
    const header =
      'Hash=1;Subject="CN=svc,OU=a;b \\"q\\"";URI="spiffe://corp/ns/a,b/sa/c";DNS=x.corp,URI=spiffe://second';
    expect(xfccUri(header)).toBe('spiffe://corp/ns/a,b/sa/c');
    expect(xfccUri('uri="a\\"b"')).toBe('a"b');
  });

  it('returns null when the first element has no URI, even if a later one does', () => {
    expect(xfccUri('By=spiffe://gw;Hash=abc;DNS=svc.corp,URI=spiffe://later')).toBeNull();
    expect(xfccUri('')).toBeNull();
    expect(xfccUri('URI=')).toBeNull();
    expect(xfccUri('Subject="CN=a;URI=inside-quotes')).toBeNull();
  });

  it('falls through to the next resolver when there is no URI', () => {
    const headers = new Map([
      ['x-forwarded-client-cert', 'Hash=abc;DNS=svc.corp'],
      ['x-api-key', KEY],
    ]);
    expect(resolveConsumer(headers, NONE, ALL)?.resolver).toBe('api_key');
  });
});

describe('attribute', () => {
  it('strips the port from addresses', () => {
    expect(stripPort('10.0.0.1:34567')).toBe('10.0.0.1');
    expect(stripPort('[fd00::1]:443')).toBe('fd00::1');
    expect(stripPort('fd00::1')).toBe('fd00::1');
    expect(stripPort('10.0.0.1')).toBe('10.0.0.1');
    const r = resolveConsumer(NONE, new Map([['source.address', '[fd00::7]:9000']]), ALL);
    expect(r).toEqual({ id: 'fd00::7', resolver: 'attribute' });
  });

  it('keeps other attributes as they are', () => {
    const c = cfg([{ type: 'attribute', attribute: 'source.principal' }]);
    const r = resolveConsumer(NONE, new Map([['source.principal', 'spiffe://corp/ns/a:b']]), c);
    expect(r).toEqual({ id: 'spiffe://corp/ns/a:b', resolver: 'attribute' });
  });
});
