/**
 * Recognition of inference traffic from the request line alone: provider from `:authority`, API
 * (and sometimes model and stream) from the path. Runs for every request Envoy sees, so the
 * common "not LLM" answer costs a few string comparisons and no regular expressions.
 */
import type { DiscoveryConfig, SelfHostedProvider } from '../config/types.js';
import { HANDLERS } from './providers/index.js';
import type { ApiKind, ProviderName } from '../domain.js';
import type { RequestHead, Route } from './types.js';
import { compileGlob, type Glob } from '../glob.js';


// ---------------------------------------------------------------------------------------------
// Declared self-hosted endpoints (compiled once per config object)

interface DeclaredEndpoint {
  glob: Glob;
  /** Patterns naming a port match `host:port`; others match the host alone. */
  withPort: boolean;
  provider: SelfHostedProvider;
}

const compiled = new WeakMap<DiscoveryConfig, DeclaredEndpoint[]>();

function declaredEndpoints(discovery: DiscoveryConfig): DeclaredEndpoint[] {
  let endpoints = compiled.get(discovery);
  if (endpoints === undefined) {
    endpoints = discovery.self_hosted.map((e) => ({
      glob: compileGlob(e.host),
      withPort: e.host.includes(':'),
      provider: e.provider,
    }));
    compiled.set(discovery, endpoints);
  }
  return endpoints;
}

// ---------------------------------------------------------------------------------------------
// Hosts

const EXACT_HOSTS: ReadonlyMap<string, ProviderName> = new Map<string, ProviderName>([
  ['api.openai.com', 'openai'],
  ['api.anthropic.com', 'anthropic'],
  ['generativelanguage.googleapis.com', 'gcp_gemini'],
  ['aiplatform.googleapis.com', 'gcp_vertex'],
  ['api.mistral.ai', 'mistral'],
  ['api.groq.com', 'groq'],
  ['api.cohere.com', 'cohere'],
  ['api.cohere.ai', 'cohere'],
]);

/** Provider of a well-known public endpoint (host lower-case, without port). */
function knownProvider(host: string): ProviderName | undefined {
  const exact = EXACT_HOSTS.get(host);
  if (exact !== undefined) return exact;
  if (host.endsWith('.openai.azure.com') || host.endsWith('.cognitiveservices.azure.com')) return 'azure_openai';
  if (host.endsWith('-aiplatform.googleapis.com')) return 'gcp_vertex';
  if (
    (host.startsWith('bedrock-runtime.') || host.startsWith('bedrock-runtime-fips.')) &&
    (host.endsWith('.amazonaws.com') || host.endsWith('.amazonaws.com.cn'))
  ) {
    return 'aws_bedrock';
  }
  return undefined;
}

interface Authority {
  /** The whole authority, lower-case. */
  full: string;
  host: string;
  port: string;
}

function splitAuthority(authority: string): Authority {
  const full = authority.toLowerCase();
  if (full.startsWith('[')) {
    const close = full.indexOf(']');
    if (close > 0) {
      const rest = full.slice(close + 1);
      return { full, host: full.slice(1, close), port: rest.startsWith(':') ? rest.slice(1) : '' };
    }
    return { full, host: full, port: '' };
  }
  const colon = full.lastIndexOf(':');
  // More than one colon without brackets is a bare IPv6 address: no port.
  if (colon < 0 || full.indexOf(':') !== colon) return { full, host: full, port: '' };
  return { full, host: full.slice(0, colon), port: full.slice(colon + 1) };
}

// ---------------------------------------------------------------------------------------------
// Paths

interface PathMatch {
  api: ApiKind;
  pathModel: string | null;
  pathStream: boolean | undefined;
  streamDefault: boolean;
}

function match(api: ApiKind, pathModel: string | null = null, pathStream?: boolean): PathMatch {
  return { api, pathModel, pathStream, streamDefault: false };
}

/**
 * OpenAI-shaped APIs on any host: `.../chat/completions`, and `/responses` or `/embeddings`
 * directly under a `v1` or `openai` segment (`/v1/...`, `/openai/v1/...`, Azure `/openai/...`).
 */
function openAiPath(path: string): PathMatch | null {
  if (path.endsWith('/chat/completions')) return match('chat_completions');
  if (path.endsWith('/v1/responses') || path.endsWith('/openai/responses')) return match('responses');
  if (path.endsWith('/v1/embeddings') || path.endsWith('/openai/embeddings')) return match('embeddings');
  return null;
}

function withoutQuery(rawPath: string): string {
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath.charCodeAt(i);
    if (c === 63 /* ? */ || c === 35 /* # */) return rawPath.slice(0, i);
  }
  return rawPath;
}

function decodeSegment(segment: string): string {
  if (!segment.includes('%')) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

const AZURE_DEPLOYMENTS = '/openai/deployments/';

function azurePath(path: string): PathMatch | null {
  if (path.startsWith(AZURE_DEPLOYMENTS)) {
    const slash = path.indexOf('/', AZURE_DEPLOYMENTS.length);
    if (slash > AZURE_DEPLOYMENTS.length) {
      const found = openAiPath(`/openai${path.slice(slash)}`);
      if (found !== null) found.pathModel = decodeSegment(path.slice(AZURE_DEPLOYMENTS.length, slash));
      return found;
    }
    return null;
  }
  return openAiPath(path);
}

const BEDROCK_OPERATIONS: ReadonlyMap<string, [ApiKind, boolean]> = new Map<string, [ApiKind, boolean]>([
  ['converse', ['converse', false]],
  ['converse-stream', ['converse_stream', true]],
  ['invoke', ['invoke', false]],
  ['invoke-with-response-stream', ['invoke_with_response_stream', true]],
]);

/** `/model/{modelId}/{operation}`; the id may be an ARN, percent-encoded or with raw `:` and `/`. */
function bedrockPath(path: string): PathMatch | null {
  if (!path.startsWith('/model/')) return openAiPath(path);
  const slash = path.lastIndexOf('/');
  const operation = BEDROCK_OPERATIONS.get(path.slice(slash + 1));
  if (operation === undefined || slash <= '/model/'.length) return null;
  return match(operation[0], decodeSegment(path.slice('/model/'.length, slash)), operation[1]);
}

/** Vertex partner models whose `:rawPredict` body is another provider's API. */
const RAW_PREDICT_PUBLISHERS: ReadonlyMap<string, ApiKind> = new Map<string, ApiKind>([
  ['anthropic', 'messages'],
  ['mistralai', 'chat_completions'],
]);

/**
 * `.../models/{model}:generateContent` (Gemini API and Vertex publisher models), and Vertex
 * `publishers/{anthropic|mistralai}/models/{model}:rawPredict|streamRawPredict`.
 */
function googlePath(path: string): PathMatch | null {
  const colon = path.lastIndexOf(':');
  if (colon < 0) return openAiPath(path);
  const slash = path.lastIndexOf('/', colon);
  const decoded = decodeSegment(path.slice(slash + 1, colon));
  const model = decoded.length > 0 ? decoded : null;
  switch (path.slice(colon + 1)) {
    case 'generateContent':
      return match('generate_content', model, false);
    case 'streamGenerateContent':
      return match('stream_generate_content', model, true);
    case 'rawPredict':
    case 'streamRawPredict': {
      const api = RAW_PREDICT_PUBLISHERS.get(publisherOf(path, slash));
      // The body's `stream` flag decides, as with the provider's own endpoint.
      return api === undefined ? null : match(api, model);
    }
    default:
      return null;
  }
}

/** `publisher` of `.../publishers/{publisher}/models/{model}:...` ('' when absent). */
function publisherOf(path: string, modelSlash: number): string {
  const models = path.lastIndexOf('/models', modelSlash);
  const publishers = path.lastIndexOf('/publishers/', models);
  if (models < 0 || publishers < 0) return '';
  return path.slice(publishers + '/publishers/'.length, models);
}

function ollamaPath(path: string): PathMatch | null {
  if (path === '/api/chat') return { api: 'ollama_chat', pathModel: null, pathStream: undefined, streamDefault: true };
  return openAiPath(path);
}

function pathFor(provider: ProviderName, path: string): PathMatch | null {
  switch (provider) {
    case 'azure_openai':
      return azurePath(path);
    case 'aws_bedrock':
      return bedrockPath(path);
    case 'gcp_gemini':
    case 'gcp_vertex':
      return googlePath(path);
    case 'anthropic':
      return path === '/v1/messages' ? match('messages') : openAiPath(path);
    case 'cohere':
      return path === '/v2/chat' ? match('cohere_chat') : openAiPath(path);
    case 'ollama':
      return ollamaPath(path);
    default:
      return openAiPath(path);
  }
}

// ---------------------------------------------------------------------------------------------
// Recognition

function route(provider: ProviderName, path: string): Route | null {
  const m = pathFor(provider, path);
  if (m === null) return null;
  return {
    provider,
    api: m.api,
    handler: HANDLERS[m.api],
    pathModel: m.pathModel,
    pathStream: m.pathStream,
    streamDefault: m.streamDefault,
  };
}

/** `recognize` bound to one discovery configuration (compiled now, not on first request). */
export function createRecognizer(discovery: DiscoveryConfig): (head: RequestHead) => Route | null {
  declaredEndpoints(discovery);
  return (head) => recognize(head, discovery);
}

/**
 * The provider and API of an inference request, or null when it is not one (only POST requests
 * to a known API path are). Declared self-hosted endpoints win over the built-in host table, then
 * the host-name conventions (when enabled), then any OpenAI-shaped path (openai_compatible).
 * `discovery` is compiled on first use and cached per object: treat it as immutable.
 */
export function recognize(head: RequestHead, discovery: DiscoveryConfig): Route | null {
  if (head.method !== 'POST') return null;
  const path = withoutQuery(head.path);
  const authority = splitAuthority(head.authority);

  for (const endpoint of declaredEndpoints(discovery)) {
    if (endpoint.glob.matches(endpoint.withPort ? authority.full : authority.host)) {
      return route(endpoint.provider, path);
    }
  }
  const known = knownProvider(authority.host);
  if (known !== undefined) return route(known, path);
  if (discovery.host_name_conventions) {
    if (authority.host.includes('vllm')) return route('vllm', path);
    if (authority.host.includes('ollama') || authority.port === '11434') return route('ollama', path);
  }
  return route('openai_compatible', path);
}
