import { describe, expect, test } from 'vitest';
import { ADDRESS_FAILURES, FREE_FAILURES, LoginThrottle, MAX_WAIT_S, WINDOW_S } from './login-throttle.js';

function throttle(): { t: LoginThrottle; advance(s: number): void } {
  let now = 1_000_000;
  return { t: new LoginThrottle(() => now), advance: (s) => void (now += s * 1000) };
}

const waits = (t: LoginThrottle, name: string, address: string | null = '10.0.0.1'): string | null => {
  try {
    t.check(name, address);
    return null;
  } catch (e) {
    expect((e as { status: number }).status).toBe(429);
    return (e as Error).message;
  }
};

describe('login throttle', () => {
  test(`${FREE_FAILURES} failures in a row are free; then 1 s, 2 s, 4 s… after the last failure, for the name in any case`, () => {
    const { t, advance } = throttle();
    for (let i = 0; i < FREE_FAILURES; i++) {
      expect(waits(t, 'bruce')).toBeNull();
      t.failed('bruce', '10.0.0.1');
    }
    expect(waits(t, 'BRUCE', '10.0.0.2')).toBe("too many failed logins for 'BRUCE': try again in 1 s");
    expect(waits(t, 'alice')).toBeNull(); // another name
    advance(1);
    expect(waits(t, 'bruce')).toBeNull();
    t.failed('bruce', '10.0.0.1');
    expect(waits(t, 'bruce')).toBe("too many failed logins for 'bruce': try again in 2 s");
    advance(2);
    t.failed('bruce', '10.0.0.1');
    expect(waits(t, 'bruce')).toMatch(/try again in 4 s/);
    t.succeeded('Bruce');
    expect(waits(t, 'bruce')).toBeNull();
  });

  test('the wait stops growing at the cap, and a name quiet long enough is forgotten', () => {
    const { t, advance } = throttle();
    for (let i = 0; i < FREE_FAILURES + 30; i++) t.failed('x', null);
    expect(waits(t, 'x', null)).toBe(`too many failed logins for 'x': try again in ${MAX_WAIT_S} s`);
    advance(MAX_WAIT_S);
    expect(waits(t, 'x', null)).toBeNull();
    t.failed('x', null);
    advance(WINDOW_S + MAX_WAIT_S + 1);
    expect(waits(t, 'x', null)).toBeNull();
    t.failed('x', null);
    expect(waits(t, 'x', null)).toBeNull(); // counting starts again
  });

  test('one address trying many names waits out its window', () => {
    const { t, advance } = throttle();
    for (let i = 0; i < ADDRESS_FAILURES; i++) t.failed(`user${i}`, '10.0.0.9');
    expect(waits(t, 'someone-new', '10.0.0.9')).toBe(`too many failed logins from this address: try again in ${WINDOW_S} s`);
    expect(waits(t, 'someone-new', '10.0.0.10')).toBeNull();
    advance(WINDOW_S + 1);
    expect(waits(t, 'someone-new', '10.0.0.9')).toBeNull();
  });
});
