/**
 * tokenwarden's provider and API ids as the OpenTelemetry GenAI semantic conventions spell them
 * (gen_ai.provider.name, gen_ai.operation.name), so that metrics and spans drop into dashboards
 * built for any GenAI instrumentation. tokenwarden's own ids stay in the inventory, the API and the
 * dynamic metadata; only telemetry speaks the conventions' vocabulary.
 */
import type { ApiKind, ProviderName } from '../domain.js';

/**
 * The conventions' well-known gen_ai.provider.name values. Providers without one (self-hosted
 * engines, unrecognised OpenAI-compatible endpoints) keep tokenwarden's id, which is already a
 * clear, stable lowercase name.
 */
export const GEN_AI_PROVIDER_NAMES: Readonly<Record<ProviderName, string>> = {
  openai: 'openai',
  azure_openai: 'azure.ai.openai',
  anthropic: 'anthropic',
  aws_bedrock: 'aws.bedrock',
  gcp_gemini: 'gcp.gemini',
  gcp_vertex: 'gcp.vertex_ai',
  mistral: 'mistral_ai',
  groq: 'groq',
  cohere: 'cohere',
  ollama: 'ollama',
  vllm: 'vllm',
  openai_compatible: 'openai_compatible',
  unknown: 'unknown',
};

/** Takes any provider id (policy events carry plain strings); ids without a mapping pass unchanged. */
export function genAiProviderName(provider: string): string {
  return Object.hasOwn(GEN_AI_PROVIDER_NAMES, provider) ? GEN_AI_PROVIDER_NAMES[provider as ProviderName] : provider;
}

/** gen_ai.operation.name by API; `invoke` depends on the model (see genAiOperationName). */
export const GEN_AI_OPERATION_NAMES: Readonly<Record<ApiKind, string>> = {
  chat_completions: 'chat',
  responses: 'chat',
  embeddings: 'embeddings',
  messages: 'chat',
  converse: 'chat',
  converse_stream: 'chat',
  invoke: 'chat',
  invoke_with_response_stream: 'chat',
  generate_content: 'generate_content',
  stream_generate_content: 'generate_content',
  ollama_chat: 'chat',
  cohere_chat: 'chat',
};

/** Bedrock InvokeModel serves embedding models (Titan, Cohere Embed) on the same path as chat. */
const EMBEDDING_MODEL = /embed/i;

export function genAiOperationName(api: ApiKind, model: string | null): string {
  if ((api === 'invoke' || api === 'invoke_with_response_stream') && model !== null && EMBEDDING_MODEL.test(model)) return 'embeddings';
  return GEN_AI_OPERATION_NAMES[api];
}
