import { describe, expect, it } from 'vitest';
import { defaultConfig, type DiscoveryConfig } from '../src/config/types.js';
import { createRecognizer, recognize } from '../src/traffic/recognize.js';
import type { RequestHead } from '../src/traffic/types.js';
import { loadFixtures, type Fixture } from './support/fixtures.js';

const DISCOVERY = defaultConfig().discovery;

function headOf(fx: Fixture): RequestHead {
  const headers = new Map(fx.request.headers);
  return {
    method: headers.get(':method') ?? '',
    authority: headers.get(':authority') ?? '',
    path: headers.get(':path') ?? '',
    headers,
  };
}

function head(method: string, authority: string, path: string): RequestHead {
  return { method, authority, path, headers: new Map() };
}

/** The request body as the pipeline would parse it (lossy UTF-8), or undefined when it is not JSON. */
function requestJson(fx: Fixture): unknown {
  try {
    return JSON.parse(Buffer.concat(fx.request.body_chunks).toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

describe('recognize: every fixture', () => {
  for (const fx of loadFixtures()) {
    it(fx.name, () => {
      const route = recognize(headOf(fx), DISCOVERY);
      if (fx.expected.provider === 'unknown') {
        expect(route).toBeNull();
        return;
      }
      expect(route).not.toBeNull();
      const r = route!;
      expect(r.provider).toBe(fx.expected.provider);
      expect(r.api).toBe(fx.expected.api);
      expect(r.handler.api).toBe(r.api);
      const body = requestJson(fx);
      const facts = body === undefined ? null : r.handler.parseRequest(body);
      // The path's model wins (Azure deployment, Bedrock id, Gemini/Vertex models/{m}).
      expect(r.pathModel ?? facts?.model ?? null).toBe(fx.expected.model);
      expect(r.pathStream ?? facts?.stream ?? r.streamDefault).toBe(fx.expected.stream);
    });
  }
});

describe('recognize: paths and hosts', () => {
  it('only POST is inference traffic', () => {
    expect(recognize(head('GET', 'api.openai.com', '/v1/chat/completions'), DISCOVERY)).toBeNull();
    expect(recognize(head('OPTIONS', 'api.anthropic.com', '/v1/messages'), DISCOVERY)).toBeNull();
  });

  it('returns null for non-inference endpoints of known providers', () => {
    expect(recognize(head('POST', 'api.openai.com', '/v1/files'), DISCOVERY)).toBeNull();
    expect(recognize(head('POST', 'api.anthropic.com', '/v1/messages/count_tokens'), DISCOVERY)).toBeNull();
    expect(
      recognize(head('POST', 'generativelanguage.googleapis.com', '/v1beta/models/gemini-2.5-flash:countTokens'), DISCOVERY),
    ).toBeNull();
    expect(recognize(head('POST', 'bedrock-runtime.us-east-1.amazonaws.com', '/model/x/apply-guardrail'), DISCOVERY)).toBeNull();
  });

  it('returns null for unknown hosts on non-OpenAI paths', () => {
    expect(recognize(head('POST', 'orders.shop.internal', '/api/v2/orders'), DISCOVERY)).toBeNull();
    expect(recognize(head('POST', 'search.internal', '/responses'), DISCOVERY)).toBeNull();
    expect(recognize(head('POST', 'search.internal', '/search/embeddings'), DISCOVERY)).toBeNull();
  });

  it('ignores the query string and host case, and strips the port', () => {
    const r = recognize(head('POST', 'API.OpenAI.com:443', '/v1/responses?foo=bar'), DISCOVERY);
    expect(r?.provider).toBe('openai');
    expect(r?.api).toBe('responses');
  });

  it('recognises OpenAI-shaped paths under any prefix on unknown hosts', () => {
    expect(recognize(head('POST', 'gw.corp', '/chat/completions'), DISCOVERY)?.api).toBe('chat_completions');
    expect(recognize(head('POST', 'gw.corp', '/api/openai/v1/chat/completions'), DISCOVERY)?.provider).toBe('openai_compatible');
    expect(recognize(head('POST', 'gw.corp', '/v1/embeddings'), DISCOVERY)?.api).toBe('embeddings');
  });

  it('reads the Azure deployment from the path for every deployment API', () => {
    const r = recognize(head('POST', 'x.openai.azure.com', '/openai/deployments/emb%2D3/embeddings?api-version=1'), DISCOVERY);
    expect(r).toMatchObject({ provider: 'azure_openai', api: 'embeddings', pathModel: 'emb-3' });
    const v1 = recognize(head('POST', 'x.openai.azure.com', '/openai/v1/responses'), DISCOVERY);
    expect(v1).toMatchObject({ api: 'responses', pathModel: null });
    expect(recognize(head('POST', 'x.openai.azure.com', '/openai/deployments/d/images/generations'), DISCOVERY)).toBeNull();
  });

  it('accepts Bedrock model ids with raw colons and raw ARN slashes', () => {
    const raw = recognize(head('POST', 'bedrock-runtime.eu-west-1.amazonaws.com', '/model/anthropic.claude-v2:1/invoke'), DISCOVERY);
    expect(raw).toMatchObject({ api: 'invoke', pathModel: 'anthropic.claude-v2:1', pathStream: false });
    const arn = 'arn:aws:bedrock:us-west-2:111122223333:inference-profile/us.amazon.nova-pro-v1:0';
    const r = recognize(head('POST', 'bedrock-runtime.us-west-2.amazonaws.com', `/model/${arn}/converse-stream`), DISCOVERY);
    expect(r).toMatchObject({ api: 'converse_stream', pathModel: arn, pathStream: true });
  });

  it('keeps a malformed percent-encoding as sent', () => {
    const r = recognize(head('POST', 'bedrock-runtime.us-east-1.amazonaws.com', '/model/bad%E0%A4%A/converse'), DISCOVERY);
    expect(r?.pathModel).toBe('bad%E0%A4%A');
  });

  it('routes Gemini and Vertex OpenAI-compatible endpoints as chat completions', () => {
    const g = recognize(head('POST', 'generativelanguage.googleapis.com', '/v1beta/openai/chat/completions'), DISCOVERY);
    expect(g).toMatchObject({ provider: 'gcp_gemini', api: 'chat_completions', pathModel: null });
    const v = recognize(head('POST', 'aiplatform.googleapis.com', '/v1/projects/p/locations/global/publishers/google/models/gemini-2.5-pro:streamGenerateContent'), DISCOVERY);
    expect(v).toMatchObject({ provider: 'gcp_vertex', api: 'stream_generate_content', pathModel: 'gemini-2.5-pro', pathStream: true });
  });

  it('routes Vertex partner models by publisher', () => {
    const base = '/v1/projects/p/locations/us-east5/publishers';
    const claude = recognize(head('POST', 'us-east5-aiplatform.googleapis.com', `${base}/anthropic/models/claude-sonnet-4@20250514:streamRawPredict`), DISCOVERY);
    expect(claude).toMatchObject({ provider: 'gcp_vertex', api: 'messages', pathModel: 'claude-sonnet-4@20250514', pathStream: undefined });
    const mistral = recognize(head('POST', 'us-east5-aiplatform.googleapis.com', `${base}/mistralai/models/mistral-large:rawPredict`), DISCOVERY);
    expect(mistral).toMatchObject({ api: 'chat_completions', pathModel: 'mistral-large' });
    expect(recognize(head('POST', 'us-east5-aiplatform.googleapis.com', `${base}/google/models/x:rawPredict`), DISCOVERY)).toBeNull();
  });

  it('treats Ollama /api/chat as streaming by default, and port 11434 as Ollama', () => {
    const r = recognize(head('POST', '10.1.2.3:11434', '/api/chat'), DISCOVERY);
    expect(r).toMatchObject({ provider: 'ollama', api: 'ollama_chat', streamDefault: true, pathStream: undefined });
    expect(recognize(head('POST', '10.1.2.3:11434', '/v1/chat/completions'), DISCOVERY)).toMatchObject({
      provider: 'ollama',
      api: 'chat_completions',
      streamDefault: false,
    });
    expect(recognize(head('POST', '10.1.2.3:11434', '/api/tags'), DISCOVERY)).toBeNull();
  });

  it('parses bracketed IPv6 authorities', () => {
    expect(recognize(head('POST', '[fd00::1]:11434', '/api/chat'), DISCOVERY)?.provider).toBe('ollama');
    expect(recognize(head('POST', '[fd00::1]:8000', '/v1/chat/completions'), DISCOVERY)?.provider).toBe('openai_compatible');
  });
});

describe('recognize: configuration', () => {
  const vllmHost = 'vllm.ml.svc.cluster.local:8000';

  it('applies the host-name conventions only when enabled', () => {
    const off: DiscoveryConfig = { self_hosted: [], host_name_conventions: false };
    expect(recognize(head('POST', vllmHost, '/v1/chat/completions'), DISCOVERY)?.provider).toBe('vllm');
    expect(recognize(head('POST', vllmHost, '/v1/chat/completions'), off)?.provider).toBe('openai_compatible');
    expect(recognize(head('POST', 'ollama.svc:11434', '/api/chat'), off)).toBeNull();
  });

  it('lets declared self-hosted endpoints win over conventions and defaults', () => {
    const cfg: DiscoveryConfig = {
      host_name_conventions: true,
      self_hosted: [
        { host: 'vllm.ml.*', provider: 'ollama' },
        { host: 'llm-?.corp:9000', provider: 'vllm' },
        { host: 'api.openai.com', provider: 'openai_compatible' },
      ],
    };
    expect(recognize(head('POST', vllmHost, '/api/chat'), cfg)?.provider).toBe('ollama');
    expect(recognize(head('POST', 'LLM-7.corp:9000', '/v1/chat/completions'), cfg)?.provider).toBe('vllm');
    // A pattern with a port only matches that port; one without matches any port.
    expect(recognize(head('POST', 'llm-7.corp:9001', '/v1/chat/completions'), cfg)?.provider).toBe('openai_compatible');
    expect(recognize(head('POST', 'api.openai.com', '/v1/chat/completions'), cfg)?.provider).toBe('openai_compatible');
  });

  it('binds a configuration with createRecognizer', () => {
    const recognizeIn = createRecognizer({ host_name_conventions: false, self_hosted: [{ host: 'gpu-*', provider: 'vllm' }] });
    expect(recognizeIn(head('POST', 'gpu-01:8000', '/v1/chat/completions'))?.provider).toBe('vllm');
    expect(recognizeIn(head('POST', 'vllm.local', '/v1/chat/completions'))?.provider).toBe('openai_compatible');
  });

  it('returns null for declared hosts on paths that are not an API', () => {
    const cfg: DiscoveryConfig = { host_name_conventions: false, self_hosted: [{ host: '*.inference.corp', provider: 'vllm' }] };
    expect(recognize(head('POST', 'a.inference.corp', '/metrics'), cfg)).toBeNull();
    expect(recognize(head('POST', 'a.inference.corp', '/v1/chat/completions'), cfg)?.provider).toBe('vllm');
  });
});
