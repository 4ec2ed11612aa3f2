/**
 * The unsanctioned-model policy's pure parts: the verdict per request (catalog policies, owners,
 * allowlists), the no-policy fast path, and the 403 in each provider's error format.
 */
import { describe, expect, it, vi } from 'vitest';
import { Catalog, EMPTY_DEFINITIONS, type CatalogDefinitions } from '../../src/catalog/catalog.js';
import type { SanctionPolicy } from '../../src/catalog/types.js';
import type { ApiKind } from '../../src/domain.js';
import { sanctionRejection } from '../../src/governance/rejection.js';
import { judge, policyBlocker, SanctionCheck } from '../../src/governance/sanction.js';

const policy = (id: string, mode: SanctionPolicy['mode'], allow: string[] = []): SanctionPolicy => ({ id, mode, allow, source: 'config' });

function catalog(d: Partial<CatalogDefinitions>): Catalog {
  return new Catalog({ ...EMPTY_DEFINITIONS, ...d });
}

const governed = catalog({
  owners: [{ id: 'research', name: 'Research', source: 'api' }],
  consumers: [{ id: 'lab', status: 'added', owner: 'research', source: 'api' }],
  resources: [{ id: 'openai/gpt-4o', provider: 'openai', model: 'gpt-4o', sanctioned: true, source: 'config' }],
  policies: [policy('global', 'enforce'), policy('research', 'monitor', ['anthropic/claude-*'])],
});

describe('judge', () => {
  it('passes sanctioned resources and flags the others under the policy that applies', () => {
    expect(judge(governed, 'app', 'openai', 'gpt-4o')).toBeNull();
    expect(judge(governed, 'app', 'openai', 'gpt-4o-mini')).toEqual({ policy: 'global', mode: 'enforce', resource: 'openai/gpt-4o-mini' });
    // An unidentified consumer ('') follows the global policy.
    expect(judge(governed, '', 'openai', 'gpt-4o-mini')).toMatchObject({ policy: 'global', mode: 'enforce' });
  });

  it("uses the owner's policy and allowlist instead of the global ones", () => {
    expect(judge(governed, 'lab', 'openai', 'gpt-4o-mini')).toEqual({ policy: 'research', mode: 'monitor', resource: 'openai/gpt-4o-mini' });
    expect(judge(governed, 'lab', 'anthropic', 'claude-sonnet-4-5')).toBeNull();
    expect(judge(governed, 'app', 'anthropic', 'claude-sonnet-4-5')).toMatchObject({ policy: 'global' });
  });

  it('passes everything when the policy that applies is off', () => {
    const off = catalog({ policies: [policy('global', 'off')] });
    expect(judge(off, 'app', 'openai', 'gpt-4o-mini')).toBeNull();
  });
});

describe('SanctionCheck', () => {
  it('does not ask a catalog without a policy that can flag', () => {
    for (const view of [catalog({}), catalog({ policies: [policy('global', 'off'), policy('research', 'off')] })]) {
      expect(view.policiesActive).toBe(false);
      const asked = vi.spyOn(view, 'sanction');
      expect(new SanctionCheck(() => view).check('app', 'openai', 'gpt-4o-mini')).toBeNull();
      expect(asked).not.toHaveBeenCalled();
    }
  });

  it('follows the catalog in force from one request to the next', () => {
    let current = catalog({});
    const check = new SanctionCheck(() => current);
    expect(check.check('app', 'openai', 'gpt-4o-mini')).toBeNull();
    current = governed;
    expect(check.check('app', 'openai', 'gpt-4o-mini')).toMatchObject({ policy: 'global', mode: 'enforce' });
    current = catalog({});
    expect(check.check('app', 'openai', 'gpt-4o-mini')).toBeNull();
  });

  it('does not judge a request whose model is unknown', () => {
    expect(new SanctionCheck(() => governed).check('app', 'openai', '')).toBeNull();
  });

  it('names a refusing policy in blockedBy apart from budget ids', () => {
    expect(policyBlocker('research')).toBe('policy:research');
  });
});

describe('the 403 for an unsanctioned model', () => {
  const cases: { api: ApiKind; provider: string; check(body: any, headers: Record<string, string>): void }[] = [
    {
      api: 'chat_completions',
      provider: 'openai',
      check: (b) => expect(b.error).toMatchObject({ type: 'request_forbidden', code: 'model_not_sanctioned', param: null }),
    },
    { api: 'messages', provider: 'anthropic', check: (b) => expect(b).toMatchObject({ type: 'error', error: { type: 'permission_error' } }) },
    { api: 'generate_content', provider: 'gcp_gemini', check: (b) => expect(b.error).toMatchObject({ code: 403, status: 'PERMISSION_DENIED' }) },
    {
      api: 'converse',
      provider: 'aws_bedrock',
      check: (b, h) => {
        // botocore reads the error code from x-amzn-errortype and the text from `message`.
        expect(h['x-amzn-errortype']).toBe('AccessDeniedException');
        expect(typeof b.message).toBe('string');
      },
    },
    { api: 'cohere_chat', provider: 'cohere', check: (b) => expect(typeof b.message).toBe('string') },
    { api: 'ollama_chat', provider: 'ollama', check: (b) => expect(typeof b.error).toBe('string') },
  ];

  for (const c of cases) {
    it(`${c.api}: the ${c.provider} client's error shape, naming the model and the policy`, () => {
      const r = sanctionRejection(c.api, c.provider, 'big-model', 'research');
      expect(r.status).toBe(403);
      expect(r.headers).toMatchObject({
        'content-type': 'application/json',
        'x-tokenwarden-unsanctioned': `${c.provider}/big-model`,
        'x-tokenwarden-policy': 'research',
      });
      const body = JSON.parse(r.body);
      c.check(body, r.headers);
      const text = JSON.stringify(body);
      expect(text).toContain('\\"big-model\\"');
      expect(text).toContain('not sanctioned');
      expect(text).toContain('\\"research\\"');
    });
  }

  it('keeps header values printable whatever the model name', () => {
    const r = sanctionRejection('chat_completions', 'openai', 'gpt\r\nx-injected: 1', 'global');
    expect(r.headers['x-tokenwarden-unsanctioned']).toBe('openai/gpt__x-injected:_1');
    expect(JSON.parse(r.body).error.message).toContain('"gpt\\r\\nx-injected: 1"');
  });
});
