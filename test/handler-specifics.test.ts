/**
 * The API-specific parts that live on the handlers (issue 15): the top-level keys each reads from a
 * large JSON body, the include_usage injection, the refusal error format.
 */
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config/types.js';
import { INVALID, parseJsonBody } from '../src/traffic/json-body.js';
import { HANDLERS, RESPONSE_KEYS } from '../src/traffic/providers/index.js';
import { recognize } from '../src/traffic/recognize.js';
import { headerValue, loadFixtures } from './support/fixtures.js';

const DISCOVERY = defaultConfig().discovery;

describe('handler-owned API specifics', () => {
  it('reads every JSON fixture the same from its declared response keys alone as from the whole body', () => {
    let checked = 0;
    for (const fx of loadFixtures()) {
      const h = new Map(fx.request.headers);
      const route = recognize(
        { method: h.get(':method') ?? '', authority: h.get(':authority') ?? '', path: h.get(':path') ?? '', headers: h },
        DISCOVERY,
      );
      if (route === null || fx.expected.status < 200 || fx.expected.status > 299) continue;
      if (route.handler.framing(fx.expected.stream, headerValue(fx.response, 'content-type')) !== 'json') continue;
      let body = Buffer.concat(fx.response.body_chunks);
      if (headerValue(fx.response, 'content-encoding') === 'gzip') body = gunzipSync(body);
      const whole = parseJsonBody(body, [], Infinity);
      if (whole === INVALID) continue;
      // A full-parse limit of 0 forces the scan: only the handler's own keys are read.
      const scanned = parseJsonBody(body, route.handler.responseKeys, 0);
      const read = (value: unknown) => {
        const acc = route.handler.newResponse();
        acc.onJson(value);
        const r = acc.result();
        return { model: r.responseModel, usage: r.usage };
      };
      expect(read(scanned), fx.name).toEqual(read(whole));
      checked++;
    }
    expect(checked).toBeGreaterThan(5);
  });

  it('scans large bodies for the union of the handlers’ keys', () => {
    const union = new Set(Object.values(HANDLERS).flatMap((h) => h.responseKeys));
    expect([...RESPONSE_KEYS].sort()).toEqual([...union].sort());
  });

  it('injects include_usage only for OpenAI chat, and recognises only the usage-only chunk', () => {
    const injecting = Object.values(HANDLERS).filter((h) => h.usageInjection !== undefined).map((h) => h.api);
    expect(injecting).toEqual(['chat_completions']);
    const inj = HANDLERS.chat_completions.usageInjection!;
    expect(inj.providers.has('openai')).toBe(true);
    expect(inj.providers.has('mistral')).toBe(false);
    const body = Buffer.from('{"model":"m","stream":true}');
    expect(inj.rewrite(body, JSON.parse(body.toString()))!.toString()).toBe('{"stream_options":{"include_usage":true},"model":"m","stream":true}');
    expect(inj.rewrite(Buffer.from('[]'), [])).toBeNull();
    expect(inj.isInjectedEvent({ event: undefined, data: '{"choices":[],"usage":{"prompt_tokens":1}}' })).toBe(true);
    expect(inj.isInjectedEvent({ event: undefined, data: '{"choices":[{"delta":{}}],"usage":{"prompt_tokens":1}}' })).toBe(false);
  });

  it('gives every API an error format', () => {
    for (const h of Object.values(HANDLERS)) {
      expect(h.errors.body('quota', 'no')).toBeTruthy();
      expect(h.errors.body('forbidden', 'no')).toBeTruthy();
    }
  });
});
