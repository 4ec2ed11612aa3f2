import { describe, expect, it } from 'vitest';
import { verdicts, type Sample } from '../bench/soak.js';

const MB = 1024 * 1024;

/** 40 samples 5 s apart; the first quarter is warm-up and not judged. */
function run(rss: (i: number) => number, lagP99: (i: number) => number = () => 0.012): Sample[] {
  return Array.from({ length: 40 }, (_, i) => ({ atSeconds: i * 5, rss: rss(i), heapUsed: 50 * MB, streams: 10, exchanges: i * 1000, lagP50: 0.01, lagP99: lagP99(i), lagMax: 0.05 }));
}

const verdict = (samples: Sample[], measure: string) => verdicts(samples).find((v) => v.measure === measure)?.verdict;

describe('bench: soak verdicts', () => {
  it('calls flat or noisy memory and lag stable, and ignores growth during the warm-up', () => {
    const samples = run((i) => (i < 10 ? 100 * MB + i * 20 * MB : 300 * MB + (i % 2) * 8 * MB), (i) => (i % 3 === 0 ? 0.03 : 0.012));
    expect(verdict(samples, 'RSS')).toBe('stable');
    expect(verdict(samples, 'event-loop lag p99')).toBe('stable');
  });

  it('calls RSS growing past max(16 MiB, 10 % of the median) over the judged window', () => {
    // 2 MiB per sample over the 29 judged intervals: ~58 MiB on ~330 MiB, more than 10 %.
    expect(verdict(run((i) => 300 * MB + i * 2 * MB), 'RSS')).toBe('growing');
    // 0.5 MiB per sample: ~15 MiB, under the 16 MiB floor.
    expect(verdict(run((i) => 100 * MB + i * 0.5 * MB), 'RSS')).toBe('stable');
  });

  it('calls lag growing when the last third is over 5 ms and twice the first third', () => {
    expect(verdict(run(() => 200 * MB, (i) => 0.001 + i * 0.002), 'event-loop lag p99')).toBe('growing');
    // Doubling under the 5 ms floor is noise.
    expect(verdict(run(() => 200 * MB, (i) => (i < 25 ? 0.001 : 0.004)), 'event-loop lag p99')).toBe('stable');
  });

  it('says too short with fewer than 6 samples after the warm-up', () => {
    expect(verdicts(run(() => 200 * MB).slice(0, 6)).map((v) => v.verdict)).toEqual(['too short', 'too short']);
  });
});
