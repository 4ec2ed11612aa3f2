/**
 * Exact token counts from pre-tokenizer pieces (pure; the byte-pair encoder is passed in).
 * Prose repeats its words: each short piece is encoded once and its count remembered, so most of a
 * prompt costs one regex match and one map lookup per word instead of a trip through tiktoken's wasm.
 */
import { forEachPiece, type Pretokenizer } from './pretokenize.js';
import { countInSlices, MAX_SLICE } from './slicing.js';
import { detached } from '../strings.js';

/** Pieces up to this many code units are remembered (words, numbers, punctuation runs). */
const CACHED_PIECE_LENGTH = 32;
/** Remembered pieces per encoding before the memory is cleared and starts over (a few MB at most). */
export const DEFAULT_PIECE_CACHE_SIZE = 50_000;

export class PieceCounter {
  private readonly cache = new Map<string, number>();

  constructor(
    private readonly pre: Pretokenizer,
    /** Token count of one piece (tiktoken's encode_ordinary). */
    private readonly encode: (piece: string) => number,
    private readonly maxCached: number = DEFAULT_PIECE_CACHE_SIZE,
  ) {}

  /** Pieces remembered now. */
  get cached(): number {
    return this.cache.size;
  }

  /**
   * Token count of `text`, or null once `expired()` says the caller no longer waits (checked every
   * 256 pieces and between the slices of a long piece). A piece longer than MAX_SLICE (a run of
   * letters or whitespace without a break) is counted in slices: tiktoken is quadratic in piece length.
   */
  count(text: string, expired: () => boolean): number | null {
    let tokens = 0;
    let pieces = 0;
    let gaveUp = false;
    forEachPiece(text, this.pre, (piece) => {
      if ((++pieces & 0xff) === 0 && expired()) {
        gaveUp = true;
        return false;
      }
      if (piece.length > MAX_SLICE) {
        const n = countInSlices(piece, this.encode, expired);
        if (n === null) gaveUp = true;
        else tokens += n;
        return !gaveUp;
      }
      tokens += this.pieceTokens(piece);
      return true;
    });
    return gaveUp ? null : tokens;
  }

  private pieceTokens(piece: string): number {
    if (piece.length > CACHED_PIECE_LENGTH) return this.encode(piece);
    let n = this.cache.get(piece);
    if (n === undefined) {
      n = this.encode(piece);
      // Clearing beats LRU bookkeeping here: the common pieces come straight back.
      if (this.cache.size >= this.maxCached) this.cache.clear();
      // A piece is a view of the whole prompt: remember a copy of its own, not the prompt.
      this.cache.set(detached(piece), n);
    }
    return n;
  }
}
