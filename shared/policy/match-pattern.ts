/**
 * Pattern lists as access rules use them (Prisma Cloud's semantics).
 *
 * - A pattern matches in any letter case, as folded by `foldName` (patterns and values alike); `*` matches any run
 *   of characters, nothing else is special.
 * - A pattern starting with `-` excludes: a value matching any exclusion makes the whole list fail.
 * - A list with no inclusions includes everything (`[-bruce]` = everyone but bruce).
 * - The lone `*` inclusion matches even when there is no value (a user without groups matches `groups: [*]`).
 * - Otherwise at least one value must match one inclusion.
 */

/** A compiled pattern; `test` takes a folded value (foldName). */
export interface Pattern {
  test(folded: string): boolean;
}

export interface PatternList {
  readonly source: readonly string[];
  readonly includesAll: boolean;
  readonly includes: readonly Pattern[];
  readonly excludes: readonly Pattern[];
}

/**
 * The one way names are compared in any letter case, by the policy engine and by the Console (user names, groups):
 * compatibility forms made one (NFKC: the micro sign is μ, the Kelvin sign is K), then lower case, with the final
 * sigma as σ. Two names that fold alike are the same name everywhere; a regex `i` flag or toLowerCase alone each
 * fold a different set of letters (ß and ẞ, Σ and ς, µ and μ), so a rule could skip a user the Console calls the
 * same, or the reverse.
 */
export function foldName(name: string): string {
  return name.normalize('NFKC').toLowerCase().replace(/ς/g, 'σ');
}

/**
 * A pattern over folded text (test it with `foldName(value)`); `*` is split off before folding. Matched without
 * regexes, in one pass: the first piece is a prefix, the last a suffix, and each piece between is found leftmost
 * after the one before (leftmost is never wrong when `*` is the only special character). A regex would backtrack:
 * `*a*a*a*a*a*a*b` against a long host name took half a second per rule.
 */
export function compilePattern(pattern: string): Pattern {
  const pieces = pattern.split('*').map(foldName);
  const first = pieces[0]!;
  if (pieces.length === 1) return { test: (value) => value === first };
  const last = pieces.at(-1)!;
  const middle = pieces.slice(1, -1).filter((p) => p !== '');
  const least = first.length + last.length + middle.reduce((n, p) => n + p.length, 0);
  return {
    test(value) {
      if (value.length < least || !value.startsWith(first) || !value.endsWith(last)) return false;
      const end = value.length - last.length;
      let at = first.length;
      for (const piece of middle) {
        const i = value.indexOf(piece, at);
        if (i < 0 || i + piece.length > end) return false;
        at = i + piece.length;
      }
      return true;
    },
  };
}

export function isExclusion(pattern: string): boolean {
  return pattern.startsWith('-');
}

export function compilePatternList(patterns: readonly string[]): PatternList {
  const includes: Pattern[] = [];
  const excludes: Pattern[] = [];
  let includesAll = false;
  for (const pattern of patterns) {
    if (isExclusion(pattern)) excludes.push(compilePattern(pattern.slice(1)));
    else if (pattern === '*') includesAll = true;
    else includes.push(compilePattern(pattern));
  }
  if (includes.length === 0) includesAll = true;
  return { source: patterns, includesAll, includes, excludes };
}

/** The first value that matches the list, `''` when the list matches with no value, or null when it does not match. */
export function matchPatternList(list: PatternList, values: readonly string[]): string | null {
  const folded = values.map(foldName);
  for (const value of folded) {
    if (list.excludes.some((p) => p.test(value))) return null;
  }
  if (list.includes.length > 0) {
    for (const [i, value] of folded.entries()) {
      if (list.includes.some((p) => p.test(value))) return values[i]!;
    }
  }
  if (list.includesAll) return values[0] ?? '';
  return null;
}
