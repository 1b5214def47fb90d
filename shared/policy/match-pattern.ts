/**
 * Pattern lists as access rules use them (Prisma Cloud's semantics).
 *
 * - A pattern matches case-insensitively; `*` matches any run of characters, nothing else is special.
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

export function compilePattern(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`, 'is');
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
  for (const value of values) {
    if (list.excludes.some((re) => re.test(value))) return null;
  }
  if (list.includes.length > 0) {
    for (const value of values) {
      if (list.includes.some((re) => re.test(value))) return value;
    }
  }
  if (list.includesAll) return values[0] ?? '';
  return null;
}
