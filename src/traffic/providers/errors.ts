/**
 * The error formats of the APIs, for tokenwarden's own refusals (governance/rejection.ts writes the
 * message and headers and decides when to refuse; the handler of the API the client called says how
 * the error looks, so the client's SDK raises its usual error).
 */
import type { ErrorFormat } from '../types.js';

/** The OpenAI error code of a 403 for a model that no sanction policy allows. */
export const NOT_SANCTIONED_CODE = 'model_not_sanctioned';

export const OPENAI_ERRORS: ErrorFormat = {
  name: 'openai',
  body: (kind, message) =>
    kind === 'forbidden'
      ? // What OpenAI itself answers with a 403 (the SDKs raise PermissionDeniedError).
        { error: { message, type: 'request_forbidden', param: null, code: NOT_SANCTIONED_CODE } }
      : { error: { message, type: kind === 'rate_limit' ? 'rate_limit_exceeded' : 'insufficient_quota', param: null, code: 'budget_exceeded' } },
};

export const ANTHROPIC_ERRORS: ErrorFormat = {
  name: 'anthropic',
  body: (kind, message) => ({ type: 'error', error: { type: kind === 'forbidden' ? 'permission_error' : 'rate_limit_error', message } }),
};

export const GOOGLE_ERRORS: ErrorFormat = {
  name: 'google',
  body: (kind, message) =>
    kind === 'forbidden'
      ? { error: { code: 403, message, status: 'PERMISSION_DENIED' } }
      : { error: { code: 429, message, status: 'RESOURCE_EXHAUSTED' } },
};

export const BEDROCK_ERRORS: ErrorFormat = {
  name: 'bedrock',
  body: (_kind, message) => ({ message }),
  typeHeader: (kind) => ['x-amzn-errortype', kind === 'forbidden' ? 'AccessDeniedException' : 'ThrottlingException'],
};

export const COHERE_ERRORS: ErrorFormat = {
  name: 'cohere',
  body: (_kind, message) => ({ message }),
};

export const OLLAMA_ERRORS: ErrorFormat = {
  name: 'ollama',
  body: (_kind, message) => ({ error: message }),
};
