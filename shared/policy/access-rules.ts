/**
 * Access rules: the schema and the rules file, shared by the Defender (file) and the Console (database, YAML
 * import/export). One format everywhere:
 *
 *   rules:
 *     - name: devs-on-dev
 *       effect: allow            # allow | deny (required)
 *       users: ['*']             # default ['*']
 *       groups: [devs, -interns] # default ['*']
 *       hosts: ['dev-*']         # default ['*']
 *       actions: ['container_*', -container_exec_create]   # default ['*'] (an allow rule's never match 'unknown')
 *
 * - Unknown fields are errors (a typo such as `group:` must not silently widen a rule).
 * - Names are required, unique (case-insensitive) and printable; they appear in denial messages.
 * - Every action pattern must match at least one action the route table knows, so a misspelt deny rule is
 *   rejected instead of never matching. For the same reason a user, group or host pattern may not hold a comma
 *   or a space and a dash before a name (`users: alice, bob` is one pattern, "alice, bob", that matches nobody;
 *   `groups: ops -leads` is one too: a list is `[ops, -leads]`), an
 *   exclusion is `-name` with nothing between the dash and the name, and a host pattern holds only what host
 *   names hold (letters, digits, `.`, `-`, `_`) and `*`.
 * - A file with any error is rejected whole; each problem names the rule, the field, the line and the reason.
 */
import { LineCounter, isNode, parseDocument, stringify } from 'yaml';
import { z } from 'zod';
import { ACTIONS } from '../docker/route-table.js';
import { compilePattern, foldName, isExclusion } from './match-pattern.js';

export interface AccessRule {
  readonly name: string;
  readonly effect: 'allow' | 'deny';
  readonly users: readonly string[];
  readonly groups: readonly string[];
  readonly hosts: readonly string[];
  readonly actions: readonly string[];
}

export interface RuleProblem {
  readonly rule: string | null;   // the rule's name, when it has one
  readonly index: number | null;  // 0-based position in the list
  readonly field: string | null;
  readonly line: number | null;   // 1-based line in the YAML text, when known
  readonly message: string;
}

export class RulesError extends Error {
  override readonly name = 'RulesError';
  constructor(readonly problems: readonly RuleProblem[]) {
    super(problems.map(formatRuleProblem).join('\n'));
  }
}

export function formatRuleProblem(p: RuleProblem): string {
  const where: string[] = [];
  if (p.line !== null) where.push(`line ${p.line}`);
  if (p.index !== null) where.push(p.rule ? `rule '${p.rule}' (#${p.index + 1})` : `rule #${p.index + 1}`);
  if (p.field !== null) where.push(`field '${p.field}'`);
  return `${where.length ? `${where.join(', ')}: ` : ''}${p.message}`;
}

// eslint-disable-next-line no-control-regex
const PRINTABLE = /^[^\u0000-\u001f\u007f]+$/;
const pattern = z.string().trim().min(1, 'must not be empty').max(256).regex(PRINTABLE, 'must be printable');
const patternList = z
  .union([pattern.transform((p) => [p]), z.array(pattern).min(1, 'must list at least one pattern (omit it to mean *)')])
  .optional()
  .transform((v) => v ?? ['*']);

const HOST_PATTERN = /^[A-Za-z0-9._*-]+$/;

/** User, group and host patterns that could never match what the rule's author meant (see the top of this file). */
const checkedNames = (what: 'name' | 'host') =>
  patternList.superRefine((patterns, ctx) => {
    for (const [i, p] of patterns.entries()) {
      const bare = isExclusion(p) ? p.slice(1) : p;
      let problem: string | null = null;
      if (p.includes(',')) problem = `'${p}' holds a comma: write a list with one pattern per item, such as [a, b]`;
      else if (/\s-\S/.test(p)) problem = `'${p}' looks like a list written without brackets: write [a, -b], one pattern per item`;
      else if (bare === '' || bare.trim() !== bare) problem = `'${p}' is not an exclusion: write -name, with nothing between the dash and the name`;
      else if (what === 'host' && !HOST_PATTERN.test(bare)) problem = `'${p}' cannot match a host name (letters, digits, '.', '-', '_' and the wildcard '*')`;
      if (problem !== null) ctx.addIssue({ code: 'custom', path: [i], message: problem });
    }
  });

/** What audit lines call the default deny-all rule: no rule may take that name, in any case (the Console reserves its own). */
const RESERVED_NAMES = new Set(['default-deny-all'].map(foldName));

const ruleSchema = z.strictObject({
  name: z
    .string()
    .trim()
    .min(1, 'is required')
    .max(100, 'is longer than 100 characters')
    .regex(PRINTABLE, 'must be printable')
    .refine((n) => !RESERVED_NAMES.has(foldName(n)), "is the default deny-all rule's name (audit lines could not tell the two apart)"),
  effect: z.enum(['allow', 'deny'], { error: 'must be "allow" or "deny"' }),
  users: checkedNames('name'),
  groups: checkedNames('name'),
  hosts: checkedNames('host'),
  actions: patternList.superRefine((actions, ctx) => {
    for (const [i, a] of actions.entries()) {
      const bare = isExclusion(a) ? a.slice(1) : a;
      const compiled = compilePattern(bare);
      if (!ACTIONS.some((known) => compiled.test(foldName(known)))) {
        ctx.addIssue({ code: 'custom', path: [i], message: `'${a}' matches no Docker action (see the action list in the docs)` });
      }
    }
  }),
});

const fileSchema = z.strictObject({ rules: z.array(z.unknown(), { error: "must be a list of rules (the file starts with 'rules:')" }) });

type YamlLocator = (path: readonly (string | number)[]) => number | null;

/** Validates rules given as data (already parsed JSON/YAML). Throws RulesError. */
export function validateRules(input: unknown, locate: YamlLocator = () => null): AccessRule[] {
  const problems: RuleProblem[] = [];
  const top = fileSchema.safeParse(input);
  if (!top.success) {
    for (const issue of top.error.issues) {
      const unknown = issue.code === 'unrecognized_keys';
      problems.push({
        rule: null,
        index: null,
        field: unknown || !issue.path.length ? null : issue.path.join('.'),
        line: locate(issue.path as (string | number)[]),
        message: unknown ? `unknown field(s): ${issue.keys.join(', ')} (a rules file has one key, 'rules')` : issue.message,
      });
    }
    throw new RulesError(problems);
  }
  const rules: AccessRule[] = [];
  const seen = new Map<string, number>();
  top.data.rules.forEach((raw, index) => {
    const name = typeof raw === 'object' && raw !== null && typeof (raw as { name?: unknown }).name === 'string' ? (raw as { name: string }).name.trim() : null;
    const parsed = ruleSchema.safeParse(raw);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const field = issue.path.length ? issue.path.map(String).join('.') : null;
        const message = issue.code === 'unrecognized_keys' ? `unknown field(s): ${issue.keys.join(', ')}` : issue.message;
        problems.push({ rule: name || null, index, field: issue.code === 'unrecognized_keys' ? null : field, line: locate(['rules', index, ...(issue.path as (string | number)[])]), message });
      }
      return;
    }
    const key = parsed.data.name.toLowerCase();
    const first = seen.get(key);
    if (first !== undefined) {
      problems.push({ rule: parsed.data.name, index, field: 'name', line: locate(['rules', index, 'name']), message: `duplicates the name of rule #${first + 1}` });
      return;
    }
    seen.set(key, index);
    rules.push(parsed.data);
  });
  if (problems.length) throw new RulesError(problems);
  return rules;
}

/** Parses a rules file (YAML or JSON text). Throws RulesError naming rule, field, line and reason. */
export function parseRulesFile(text: string): AccessRule[] {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    throw new RulesError(doc.errors.map((e) => ({ rule: null, index: null, field: null, line: lineCounter.linePos(e.pos[0]).line, message: `YAML: ${e.message.split('\n')[0]}` })));
  }
  const locate: YamlLocator = (path) => {
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
      if (isNode(node) && node.range) return lineCounter.linePos(node.range[0]).line;
    }
    return null;
  };
  return validateRules(doc.toJS() ?? {}, locate);
}

/** The rules file text for a list of rules (the Console's YAML export; parseRulesFile reads it back). */
export function formatRulesFile(rules: readonly AccessRule[]): string {
  return stringify({ rules: rules.map((r) => ({ ...r, users: [...r.users], groups: [...r.groups], hosts: [...r.hosts], actions: [...r.actions] })) }, { flowCollectionPadding: false });
}
