import { describe, expect, test } from 'vitest';
import { decideRenewal, nextCheckDelay, renewalDueAt, retryDelay, type RenewalInput } from './renewal-schedule.js';

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const SKEW = 5 * 60_000; // what the Console back-dates notBefore by
const T0 = Date.parse('2026-01-01T00:00:00Z');

/** Both certificates issued at T0 for `lifetime` (notBefore back-dated), received at T0. */
const issued = (lifetime: number, overrides: Partial<RenewalInput> = {}): RenewalInput => ({
  server: { notBefore: T0 - SKEW, notAfter: T0 + lifetime },
  client: { notBefore: T0 - SKEW, notAfter: T0 + lifetime },
  receivedAt: T0,
  ...overrides,
});

describe('decideRenewal', () => {
  test.each([
    ['a year-long certificate, just issued', issued(365 * DAY), T0, { action: 'wait', dueAt: T0 + (365 * DAY * 2) / 3 }],
    ['a year-long certificate, a moment before two thirds', issued(365 * DAY), T0 + (365 * DAY * 2) / 3 - 1, { action: 'wait', dueAt: T0 + (365 * DAY * 2) / 3 }],
    ['a year-long certificate at two thirds', issued(365 * DAY), T0 + (365 * DAY * 2) / 3, { action: 'renew' }],
    ['30 s certificates, just issued: the back-dated notBefore does not count', issued(30_000), T0, { action: 'wait', dueAt: T0 + 20_000 }],
    ['30 s certificates after 19 s', issued(30_000), T0 + 19_000, { action: 'wait', dueAt: T0 + 20_000 }],
    ['30 s certificates after 20 s', issued(30_000), T0 + 20_000, { action: 'renew' }],
    ['unknown arrival: counted from notBefore (back-dating included)', issued(30_000, { receivedAt: null }), T0, { action: 'renew' }],
    ['arrival before notBefore: counted from notBefore', issued(30 * DAY, { receivedAt: T0 - DAY }), T0, { action: 'wait', dueAt: T0 - SKEW + ((30 * DAY + SKEW) * 2) / 3 }],
    [
      'the server certificate due first decides',
      issued(30 * DAY, { server: { notBefore: T0 - SKEW, notAfter: T0 + 3 * DAY } }),
      T0 + 2 * DAY + 1,
      { action: 'renew' },
    ],
    ['an expired server certificate with a valid client certificate: renew', issued(30 * DAY, { server: { notBefore: T0 - 2 * DAY, notAfter: T0 - DAY } }), T0, { action: 'renew' }],
    ['an expired client certificate: only a new enrolment helps', issued(30_000), T0 + 30_000, { action: 're-enrol' }],
    ['long expired', issued(DAY), T0 + 10 * DAY, { action: 're-enrol' }],
  ])('%s', (_name, input, now, expected) => {
    expect(decideRenewal(input, now)).toEqual(expected);
  });

  test('renewalDueAt never lies beyond notAfter, even when received after it', () => {
    expect(renewalDueAt({ notBefore: T0, notAfter: T0 + 1000 }, T0 + 5000)).toBe(T0 + 1000);
  });
});

describe('nextCheckDelay', () => {
  test.each([
    ['due: now', { action: 'renew' } as const, 0, 0],
    ['due in 10 s, no jitter', { action: 'wait', dueAt: T0 + 10_000 } as const, 0, 10_000],
    ['due in 10 s, most jitter: at most a tenth later', { action: 'wait', dueAt: T0 + 10_000 } as const, 0.999999, 11_000],
    ['due in a month: look again in an hour', { action: 'wait', dueAt: T0 + 30 * DAY } as const, 0, HOUR],
    ['due in a month, jittered', { action: 'wait', dueAt: T0 + 30 * DAY } as const, 0.5, HOUR * 1.05],
    ['re-enrolment needed: say so again in an hour', { action: 're-enrol' } as const, 0, HOUR],
  ])('%s', (_name, decision, random, expected) => {
    expect(nextCheckDelay(decision, T0, random)).toBe(expected);
  });
});

describe('retryDelay', () => {
  test.each([
    ['the backoff when there is plenty of time', 30_000, T0 + 300 * DAY, 30_000],
    ['a tenth of what is left when that is shorter', 30_000, T0 + 60_000, 6_000],
    ['at least a second', 30_000, T0 + 2_000, 1_000],
    ['at least a second, also when already expired', 30_000, T0 - 1, 1_000],
  ])('%s', (_name, backoff, notAfter, expected) => {
    expect(retryDelay(backoff, notAfter, T0)).toBe(expected);
  });
});
