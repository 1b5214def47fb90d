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

export interface PatternList {
  readonly source: readonly string[];
  readonly includesAll: boolean;
  readonly includes: readonly RegExp[];
  readonly excludes: readonly RegExp[];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
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

/** A pattern as a regex over folded text (test it with `foldName(value)`); `*` is split off before folding. */
export function compilePattern(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((part) => escapeRegExp(foldName(part))).join('.*')}$`, 's');
}

export function isExclusion(pattern: string): boolean {
  return pattern.startsWith('-');
}

export function compilePatternList(patterns: readonly string[]): PatternList {
  const includes: RegExp[] = [];
  const excludes: RegExp[] = [];
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
    if (list.excludes.some((re) => re.test(value))) return null;
  }
  if (list.includes.length > 0) {
    for (const [i, value] of folded.entries()) {
      if (list.includes.some((re) => re.test(value))) return values[i]!;
    }
  }
  if (list.includesAll) return values[0] ?? '';
  return null;
}
