import { describe, expect, it } from 'vitest';
import { Backoff } from './backoff.js';

describe('Backoff', () => {
  it.each([
    // random, expected delays for the first 9 attempts
    [0, [250, 500, 1000, 2000, 4000, 8000, 15_000, 15_000, 15_000]],
    [0.999999, [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]],
  ])('with random() = %s grows from 0.5 s and is capped at 30 s', (r, expected) => {
    const b = new Backoff({ random: () => r });
    expect(Array.from({ length: expected.length }, () => b.next())).toEqual(expected);
  });

  it('stays within [half, all] of the nominal delay with real jitter', () => {
    const b = new Backoff();
    for (let i = 0; i < 50; i++) {
      const nominal = Math.min(30_000, 500 * 2 ** i);
      const d = b.next();
      expect(d).toBeGreaterThanOrEqual(nominal / 2);
      expect(d).toBeLessThanOrEqual(nominal);
    }
  });

  it('reset() starts again from the initial delay', () => {
    const b = new Backoff({ random: () => 0.999999 });
    b.next();
    b.next();
    b.next();
    expect(b.failures).toBe(3);
    b.reset();
    expect(b.failures).toBe(0);
    expect(b.next()).toBe(500);
  });
});
