import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Window } from '../../src/governance/types.js';
import { canonicalTimeZone, counterKey, isValidTimeZone, rollingBucket, windowBounds } from '../../src/governance/windows.js';
import { rollingBuckets } from '../../src/ledger/rules.js';

const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number): string => new Date(ms).toISOString();
const HOUR = 3_600_000;

type CalendarKind = 'minute' | 'hour' | 'day' | 'week' | 'month';
const cal = (kind: CalendarKind, timezone = 'UTC', weekStart = 1): Window => ({ kind, timezone, weekStart });

function bounds(window: Window, when: string): { start: string; end: string; hours: number } {
  const b = windowBounds(window, at(when));
  return { start: iso(b.start), end: iso(b.end), hours: (b.end - b.start) / HOUR };
}

describe('calendar months', () => {
  it('ends a month in New York at local midnight of the 1st, in daylight time and in standard time', () => {
    // 23:59 on 31 October in New York is 03:59 UTC on 1 November: still October there.
    expect(bounds(cal('month', 'America/New_York'), '2024-11-01T03:59:59.999Z')).toEqual({
      start: '2024-10-01T04:00:00.000Z',
      end: '2024-11-01T04:00:00.000Z',
      hours: 31 * 24,
    });
    // November spans the end of DST (3 November): it ends at 05:00 UTC and lasts an hour longer.
    expect(bounds(cal('month', 'America/New_York'), '2024-11-01T04:00:00Z')).toEqual({
      start: '2024-11-01T04:00:00.000Z',
      end: '2024-12-01T05:00:00.000Z',
      hours: 30 * 24 + 1,
    });
  });

  it('starts and ends Berlin months at local midnight across the spring change', () => {
    expect(bounds(cal('month', 'Europe/Berlin'), '2024-03-31T21:59:59Z')).toEqual({
      start: '2024-02-29T23:00:00.000Z',
      end: '2024-03-31T22:00:00.000Z',
      hours: 31 * 24 - 1,
    });
    expect(bounds(cal('month', 'Europe/Berlin'), '2024-03-31T22:00:00Z').start).toBe('2024-03-31T22:00:00.000Z');
  });

  it('handles December to January (year change)', () => {
    expect(bounds(cal('month', 'Asia/Tokyo'), '2024-12-31T15:00:00Z')).toMatchObject({ start: '2024-12-31T15:00:00.000Z', end: '2025-01-31T15:00:00.000Z' });
  });
});

describe('days across DST changes', () => {
  it('makes the spring day 23 hours and the autumn day 25 hours long', () => {
    expect(bounds(cal('day', 'America/New_York'), '2024-03-10T12:00:00Z')).toEqual({
      start: '2024-03-10T05:00:00.000Z',
      end: '2024-03-11T04:00:00.000Z',
      hours: 23,
    });
    expect(bounds(cal('day', 'America/New_York'), '2024-11-03T12:00:00Z')).toEqual({
      start: '2024-11-03T04:00:00.000Z',
      end: '2024-11-04T05:00:00.000Z',
      hours: 25,
    });
  });

  it('starts a day whose midnight the clock skips at the transition (Santiago jumps 00:00 -> 01:00)', () => {
    expect(bounds(cal('day', 'America/Santiago'), '2024-09-08T12:00:00Z')).toEqual({
      start: '2024-09-08T04:00:00.000Z',
      end: '2024-09-09T03:00:00.000Z',
      hours: 23,
    });
  });

  it('starts a day whose midnight the clock shows twice at the first one (Havana goes back 01:00 -> 00:00)', () => {
    expect(bounds(cal('day', 'America/Havana'), '2024-11-03T05:30:00Z')).toEqual({
      start: '2024-11-03T04:00:00.000Z',
      end: '2024-11-04T05:00:00.000Z',
      hours: 25,
    });
  });

  it('never goes back to a day that has ended (St. John\'s went back from Sunday 00:01 to Saturday 23:01 in 2010)', () => {
    // 03:00 UTC reads Saturday 23:30 on the clock, but Sunday's window had already begun at 02:30.
    expect(bounds(cal('day', 'America/St_Johns'), '2010-11-07T03:00:00Z')).toEqual({
      start: '2010-11-07T02:30:00.000Z',
      end: '2010-11-08T03:30:00.000Z',
      hours: 25,
    });
  });

  it('follows half-hour DST shifts (Lord Howe)', () => {
    expect(bounds(cal('day', 'Australia/Lord_Howe'), '2024-04-06T15:00:00Z').hours).toBe(24.5);
  });
});

describe('weeks', () => {
  // Wednesday 5 June 2024, noon UTC.
  const wednesday = '2024-06-05T12:00:00Z';

  it('start on the configured weekday', () => {
    expect(bounds(cal('week', 'UTC', 1), wednesday)).toMatchObject({ start: '2024-06-03T00:00:00.000Z', end: '2024-06-10T00:00:00.000Z' });
    expect(bounds(cal('week', 'UTC', 0), wednesday)).toMatchObject({ start: '2024-06-02T00:00:00.000Z', end: '2024-06-09T00:00:00.000Z' });
    expect(bounds(cal('week', 'UTC', 3), wednesday)).toMatchObject({ start: '2024-06-05T00:00:00.000Z' });
    expect(bounds(cal('week', 'UTC', 4), wednesday)).toMatchObject({ start: '2024-05-30T00:00:00.000Z' });
  });

  it('start at local midnight of that weekday in the zone', () => {
    // Monday 3 June 00:00 in Tokyo is Sunday 2 June 15:00 UTC.
    expect(bounds(cal('week', 'Asia/Tokyo', 1), wednesday).start).toBe('2024-06-02T15:00:00.000Z');
  });
});

describe('minutes and hours', () => {
  it('follow the local clock in half-hour zones', () => {
    expect(bounds(cal('hour', 'Asia/Kolkata'), '2024-11-03T06:10:00Z')).toMatchObject({ start: '2024-11-03T05:30:00.000Z', end: '2024-11-03T06:30:00.000Z' });
    // 06:10 UTC is 11:55 in Kathmandu (+05:45): the hour began at 11:00 local.
    expect(bounds(cal('hour', 'Asia/Kathmandu'), '2024-11-03T06:10:00Z')).toMatchObject({ start: '2024-11-03T05:15:00.000Z', hours: 1 });
  });

  it('never last longer than 60 minutes: the repeated autumn hour is two windows', () => {
    const ny = cal('hour', 'America/New_York');
    expect(bounds(ny, '2024-11-03T05:30:00Z')).toMatchObject({ start: '2024-11-03T05:00:00.000Z', end: '2024-11-03T06:00:00.000Z' });
    expect(bounds(ny, '2024-11-03T06:30:00Z')).toMatchObject({ start: '2024-11-03T06:00:00.000Z', end: '2024-11-03T07:00:00.000Z' });
  });

  it('cut an hour at a half-hour offset change (Lord Howe goes back from 02:00 to 01:30)', () => {
    const lordHowe = cal('hour', 'Australia/Lord_Howe');
    expect(bounds(lordHowe, '2024-04-06T14:50:00Z')).toMatchObject({ start: '2024-04-06T14:00:00.000Z', end: '2024-04-06T15:00:00.000Z' });
    // After the change the clock reads 01:30..01:59, then 02:00 again at 15:30 UTC.
    expect(bounds(lordHowe, '2024-04-06T15:10:00Z')).toMatchObject({ start: '2024-04-06T15:00:00.000Z', end: '2024-04-06T15:30:00.000Z' });
    expect(bounds(lordHowe, '2024-04-06T15:40:00Z')).toMatchObject({ start: '2024-04-06T15:30:00.000Z', end: '2024-04-06T16:30:00.000Z' });
  });

  it('cut an hour at an offset change that is not on the hour (St. John\'s at 00:01 in 2010)', () => {
    const stJohns = cal('hour', 'America/St_Johns');
    expect(bounds(stJohns, '2010-11-07T02:30:30Z')).toMatchObject({ start: '2010-11-07T02:30:00.000Z', end: '2010-11-07T02:31:00.000Z' });
    expect(bounds(stJohns, '2010-11-07T02:40:00Z')).toMatchObject({ start: '2010-11-07T02:31:00.000Z', end: '2010-11-07T03:30:00.000Z' });
  });

  it('cut minutes at whole minutes', () => {
    expect(bounds(cal('minute', 'Europe/Berlin'), '2024-06-05T12:34:56.789Z')).toMatchObject({ start: '2024-06-05T12:34:00.000Z', end: '2024-06-05T12:35:00.000Z' });
  });
});

describe('rolling windows', () => {
  const rpm: Window = { kind: 'rolling', seconds: 60 };

  it('use sub-buckets of a sixth of the window and count every one overlapping the last window', () => {
    const bucket = rollingBucket(rpm, 125_000);
    expect(bucket).toEqual({ sizeMs: 10_000, index: 12, start: 120_000, end: 130_000, firstCounted: 6, nextExpiry: 130_000 });
    // Capacity comes back when the oldest counted sub-bucket (60s-70s) is more than a minute old.
    expect(windowBounds(rpm, 125_000)).toEqual({ start: 60_000, end: 130_000 });
  });

  it('agree with the ledger on sub-bucket size and the oldest counted bucket', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 86_400_000 }), fc.integer({ min: 0, max: 4_102_444_800_000 }), (lengthMs, now) => {
        const ours = rollingBucket(lengthMs, now);
        const ledger = rollingBuckets(lengthMs, now);
        expect(ours.sizeMs).toBe(ledger.subMs);
        expect(ours.start).toBe(ledger.current);
        expect(ours.firstCounted * ours.sizeMs).toBe(ledger.oldest);
        const b = rollingBucket(lengthMs, now);
        expect(b.firstCounted * b.sizeMs <= now - lengthMs && now < b.nextExpiry).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('counter keys', () => {
  const berlinMonth = cal('month', 'Europe/Berlin');

  it('hold the window start, so a new window is a new counter', () => {
    const lastOfMarch = counterKey('org', 0, berlinMonth, at('2024-03-31T21:59:59Z'));
    expect(lastOfMarch).toBe(`org|0|month|${at('2024-02-29T23:00:00Z')}`);
    expect(counterKey('org', 0, berlinMonth, at('2024-03-01T00:00:00Z'))).toBe(lastOfMarch);
    expect(counterKey('org', 0, berlinMonth, at('2024-03-31T22:00:00Z'))).not.toBe(lastOfMarch);
  });

  it('differ by limit and window kind', () => {
    const now = at('2024-03-15T12:00:00Z');
    const keys = new Set([counterKey('org', 0, berlinMonth, now), counterKey('org', 1, berlinMonth, now), counterKey('org', 0, cal('day', 'Europe/Berlin'), now)]);
    expect(keys.size).toBe(3);
  });

  it('have no time in them for rolling windows (the ledger buckets those)', () => {
    const rolling: Window = { kind: 'rolling', seconds: 60 };
    expect(counterKey('tpl:alice', 2, rolling, 1)).toBe('tpl:alice|2|rolling:60');
    expect(counterKey('tpl:alice', 2, rolling, 10 ** 12)).toBe('tpl:alice|2|rolling:60');
  });
});

describe('time zones', () => {
  it('validates and canonicalises IANA names', () => {
    expect(isValidTimeZone('Europe/Berlin')).toBe(true);
    expect(isValidTimeZone('UTC')).toBe(true);
    expect(canonicalTimeZone('europe/berlin')).toBe('Europe/Berlin');
    expect(isValidTimeZone('Mars/Olympus_Mons')).toBe(false);
    expect(isValidTimeZone('')).toBe(false);
  });
});

describe('properties', () => {
  // Zones with unusual rules: half-hour shifts, skipped and repeated midnights, changes at 00:01
  // (St. John's before 2011), a skipped day (Apia 2011), Ramadan DST (Casablanca), two-hour shifts (Troll).
  const zones = [
    'UTC',
    'America/New_York',
    'Europe/Berlin',
    'Asia/Kolkata',
    'Asia/Kathmandu',
    'Australia/Lord_Howe',
    'America/Santiago',
    'America/St_Johns',
    'America/Havana',
    'Asia/Beirut',
    'Pacific/Chatham',
    'Pacific/Apia',
    'Africa/Casablanca',
    'Antarctica/Troll',
  ];
  const window = fc.record({
    kind: fc.constantFrom<CalendarKind>('minute', 'hour', 'day', 'week', 'month'),
    timezone: fc.constantFrom(...zones),
    weekStart: fc.integer({ min: 0, max: 6 }),
  });
  // 2000-01-01 .. 2040-01-01; also whole hours +-1 ms (where boundaries are) and instants within
  // a day of known transitions (spring and autumn changes, Apia's skipped 30 December 2011).
  const anyTime = fc.integer({ min: 946_684_800_000, max: 2_208_988_800_000 });
  const transitions = ['2024-03-10T07:00:00Z', '2024-11-03T06:00:00Z', '2024-03-31T01:00:00Z', '2024-04-06T15:00:00Z', '2024-09-08T04:00:00Z', '2011-12-30T10:00:00Z', '2024-04-14T02:00:00Z', '2010-11-07T02:31:00Z'];
  const instant = fc.oneof(
    anyTime,
    fc.tuple(anyTime, fc.integer({ min: -1, max: 1 })).map(([t, jitter]) => t - (t % HOUR) + jitter),
    fc.tuple(fc.constantFrom(...transitions), fc.integer({ min: -86_400_000, max: 86_400_000 })).map(([t, delta]) => at(t) + delta),
  );

  const localDate = (zone: string, kind: CalendarKind, ms: number): string => {
    const parts = new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(ms);
    return kind === 'month' ? parts.slice(0, 7) : parts;
  };

  it('every instant lies in its window, and consecutive windows tile the timeline', () => {
    fc.assert(
      fc.property(window, instant, (w, now) => {
        const { start, end } = windowBounds(w, now);
        expect(start <= now && now < end).toBe(true);
        expect(windowBounds(w, end).start).toBe(end);
        expect(windowBounds(w, start - 1).end).toBe(start);
      }),
      { numRuns: 400 },
    );
  });

  it('day and month windows are exactly the instants with that local date or month', () => {
    // Except where the clock went back across midnight (St. John's, tested above).
    const dated = window.filter((w) => (w.kind === 'day' || w.kind === 'month') && w.timezone !== 'America/St_Johns');
    fc.assert(
      fc.property(dated, instant, (w, now) => {
        const { start, end } = windowBounds(w, now);
        const label = localDate(w.timezone, w.kind, now);
        expect(localDate(w.timezone, w.kind, start)).toBe(label);
        expect(localDate(w.timezone, w.kind, end - 1)).toBe(label);
        expect(localDate(w.timezone, w.kind, start - 1)).not.toBe(label);
        expect(localDate(w.timezone, w.kind, end)).not.toBe(label);
      }),
      { numRuns: 300 },
    );
  });

  it('minutes and hours last at most their unit and start where the local clock shows :00', () => {
    fc.assert(
      fc.property(window.filter((w) => w.kind === 'minute' || w.kind === 'hour'), instant, (w, now) => {
        const unit = w.kind === 'minute' ? 60_000 : HOUR;
        const { start, end } = windowBounds(w, now);
        expect(end - start).toBeLessThanOrEqual(unit);
        expect(end - start).toBeGreaterThan(0);
      }),
      { numRuns: 300 },
    );
  });
});
