import { describe, expect, it } from 'vitest';
import { compilePattern, compilePatternList, foldName, matchPatternList } from './match-pattern.js';

/** Every string of `alphabet` up to `max` characters. */
function allStrings(alphabet: readonly string[], max: number): string[] {
  let level = [''];
  const out = [''];
  for (let n = 1; n <= max; n++) {
    level = level.flatMap((s) => alphabet.map((c) => s + c));
    out.push(...level);
  }
  return out;
}

describe('compilePattern', () => {
  it('matches exactly what the glob means (every pattern over a, b, * up to 6 characters against every a/b value up to 7)', () => {
    const values = allStrings(['a', 'b'], 7);
    for (const pattern of allStrings(['a', 'b', '*'], 6)) {
      const reference = new RegExp(`^${pattern.replaceAll('*', '.*')}$`);
      const compiled = compilePattern(pattern);
      const wrong = values.filter((v) => compiled.test(v) !== reference.test(v));
      expect(wrong, pattern).toEqual([]);
    }
  });

  it('treats nothing but * as special, and folds both sides', () => {
    expect(compilePattern('a.b').test('axb')).toBe(false);
    expect(compilePattern('a.b').test('a.b')).toBe(true);
    expect(compilePattern('(x|y)?').test('(x|y)?')).toBe(true);
    expect(compilePattern('DEV-*').test(foldName('dev-a'))).toBe(true);
    expect(compilePattern('*\n*').test('a\nb')).toBe(true); // any character, line breaks too
  });

  it('matches long values against many wildcards in one pass', () => {
    const host = 'a'.repeat(256);
    expect(compilePattern('*a*a*a*a*a*a*a*a*a*a*a*a*b').test(host)).toBe(false);
    expect(compilePattern('*a*a*a*a*a*a*a*a*a*a*a*a*a').test(host)).toBe(true);
  });
});

describe('matchPatternList', () => {
  it('gives back the value as it came, not folded', () => {
    expect(matchPatternList(compilePatternList(['émile']), ['ÉMILE'])).toBe('ÉMILE');
  });
});
