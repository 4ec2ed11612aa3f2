/**
 * Builders of ProcessingResponse messages for scripted servers, and the common "answer every
 * message without changes" script.
 */
import {
  requestKind,
  type WireCommonResponse,
  type WireHeaderMutation,
  type WireProcessingRequest,
  type WireProcessingResponse,
} from '../../src/extproc/protocol.js';
import type { Script, ScriptedStream } from './scripted-server.js';

/** A HeaderMutation that sets values the way Envoy reads them (raw_value; append false = overwrite). */
export function setHeaders(pairs: Array<[string, string | Uint8Array]>, append = false, remove: string[] = []): WireHeaderMutation {
  return {
    set_headers: pairs.map(([key, v]) => ({
      header: { key, raw_value: typeof v === 'string' ? Buffer.from(v) : v },
      append: { value: append },
    })),
    remove_headers: remove,
  };
}

/**
 * The answer of the matching kind for `msg`. Headers and body answers carry `common`; trailers
 * answers carry `common.header_mutation`.
 */
export function answerFor(msg: WireProcessingRequest, common: WireCommonResponse = {}): WireProcessingResponse {
  const kind = requestKind(msg);
  switch (kind) {
    case 'request_trailers':
    case 'response_trailers':
      return { [kind]: common.header_mutation ? { header_mutation: common.header_mutation } : {} };
    case undefined:
      throw new Error('message without a kind');
    default:
      return { [kind]: { response: common } };
  }
}

/** FULL_DUPLEX_STREAMED body answer. */
export function streamedAnswer(dir: 'request' | 'response', body: string | Uint8Array, eos: boolean): WireProcessingResponse {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  return { [`${dir}_body`]: { response: { body_mutation: { streamed_response: { body: b, end_of_stream: eos } } } } };
}

export type Answerer = (msg: WireProcessingRequest, s: ScriptedStream) => WireProcessingResponse | WireProcessingResponse[] | undefined;

/**
 * Answers every message in order: with `custom(msg)` when it returns something (an array sends
 * several messages, an empty array none), else with the empty matching answer. Ends when Envoy closes.
 */
export function answerAll(custom?: Answerer): Script {
  return async (s) => {
    for (let m = await s.next(); m; m = await s.next()) {
      const out = custom?.(m, s) ?? answerFor(m);
      for (const r of Array.isArray(out) ? out : [out]) s.send(r);
    }
  };
}
