import { describe, expect, it } from 'vitest';
import { parsePhaseBuckets, quantileBound } from '../bench/server-phases.js';

const scrape = (counts: number[]): string =>
  ['0.00005', '0.0001', '0.00025', '0.001', '+Inf']
    .map((le, i) => `tokenwarden_extproc_phase_duration_seconds_bucket{le="${le}",phase="response_body"} ${counts[i]}`)
    .concat('tokenwarden_extproc_phase_duration_seconds_count{phase="response_body"} 0', '# HELP other')
    .join('\n');

describe('bench: server-side phase quantiles', () => {
  it('reads the p99 of the messages between two scrapes as a bucket upper bound', () => {
    const before = parsePhaseBuckets(scrape([100, 100, 100, 100, 100]));
    // 1000 new messages: 980 under 50 µs, 15 more under 100 µs, 5 under 250 µs.
    const after = parsePhaseBuckets(scrape([1080, 1095, 1100, 1100, 1100]));
    expect(quantileBound(before, after, 'response_body', 0.5)).toBe(0.00005);
    expect(quantileBound(before, after, 'response_body', 0.99)).toBe(0.0001);
    expect(quantileBound(before, after, 'response_body', 0.999)).toBe(0.00025);
  });

  it('says Infinity past the last finite bucket and null for a phase without messages', () => {
    const before = parsePhaseBuckets(scrape([0, 0, 0, 0, 0]));
    const after = parsePhaseBuckets(scrape([0, 0, 0, 0, 10]));
    expect(quantileBound(before, after, 'response_body', 0.99)).toBe(Infinity);
    expect(quantileBound(before, before, 'response_body', 0.99)).toBeNull();
    expect(quantileBound(before, after, 'request_body', 0.99)).toBeNull();
  });
});
