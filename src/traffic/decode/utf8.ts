import { isUtf8 } from 'node:buffer';

// ignoreBOM keeps a U+FEFF that is part of the content; callers strip a stream BOM themselves.
const lossy = new TextDecoder('utf-8', { ignoreBOM: true });

/** Decodes UTF-8, replacing invalid sequences with U+FFFD (WHATWG rules). */
export function decodeUtf8(bytes: Uint8Array): string {
  return bytes.length === 0 ? '' : lossy.decode(bytes);
}

/** True when every byte sequence is valid UTF-8. */
export function isValidUtf8(bytes: Uint8Array): boolean {
  return bytes.length === 0 || isUtf8(bytes);
}
