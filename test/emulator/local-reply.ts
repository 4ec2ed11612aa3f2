/**
 * Envoy's local reply rendering (Utility::sendLocalReply, spec §3.2): header mutation first, then
 * content-length/content-type from the body; gRPC requests get a trailers-only gRPC error instead.
 */
import { HeaderList } from './headers.js';

export interface LocalReply {
  status: number;
  headers: HeaderList;
  body: Buffer;
  /** response code details, whitespace replaced by '_' */
  details: string;
}

export interface LocalReplyInput {
  status: number;
  body?: Uint8Array;
  details?: string;
  /** applied to the reply headers before the body rules (immediate_response.headers) */
  mutate?: (h: HeaderList) => void;
  grpcStatus?: number;
  /** the downstream request is gRPC (content-type application/grpc...) */
  grpcRequest: boolean;
}

/** Envoy's Grpc::Utility::httpToGrpcStatus. */
function httpToGrpcStatus(http: number): number {
  switch (http) {
    case 400:
      return 13;
    case 401:
      return 16;
    case 403:
      return 7;
    case 404:
      return 12;
    case 429:
    case 502:
    case 503:
    case 504:
      return 14;
    default:
      return 2;
  }
}

/** grpc-message percent-encoding: bytes outside printable ASCII, and '%', become %XX. */
function percentEncode(b: Buffer): string {
  let out = '';
  for (const byte of b) {
    out += byte < 0x20 || byte > 0x7e || byte === 0x25 ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
  }
  return out;
}

export const replaceWhitespace = (s: string): string => s.replace(/\s/g, '_');

export function buildLocalReply(i: LocalReplyInput): LocalReply {
  const headers = new HeaderList([[':status', String(i.status)]]);
  let body = Buffer.from(i.body ?? []);
  i.mutate?.(headers);
  if (i.grpcRequest) {
    headers.set(':status', '200');
    headers.set('content-type', 'application/grpc');
    if (!headers.has('grpc-status')) headers.set('grpc-status', String(i.grpcStatus ?? httpToGrpcStatus(i.status)));
    if (body.length > 0) headers.set('grpc-message', percentEncode(body));
    headers.remove('content-length');
    body = Buffer.alloc(0);
  } else if (body.length > 0) {
    headers.set('content-length', String(body.length));
    if (!headers.has('content-type')) headers.set('content-type', 'text/plain');
  } else {
    headers.remove('content-length');
    headers.remove('content-type');
  }
  const status = Number(headers.get(':status'));
  return { status, headers, body, details: replaceWhitespace(i.details ?? '') };
}
