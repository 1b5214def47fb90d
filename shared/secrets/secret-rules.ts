/**
 * Secret rules: which secrets go into which containers, and how. Shared by the Console (storage, API, push) and
 * the Defender (injection); one schema, one matcher.
 *
 *   - name: db-credentials
 *     mode: env                  # env | file
 *     fileAccess: root           # file mode: root (0400, root only) | all (0444); default root
 *     secrets:
 *       - { name: DB_PASSWORD, store: vault-prod, path: apps/db, key: password }
 *     scope:                     # globs as access rules use them (`*`, `-x` excludes); each defaults to ['*']
 *       images: ['registry.example.com/billing/*']
 *       labels: ['team=billing']   # matched against the container's `key=value` labels
 *       containers: ['*']          # the name given at create (`docker run --name`); none → only `*` matches
 *       hosts: ['prod-*']          # the Defender's host name
 *     allow: []                  # leak paths this rule permits anyway: commit, export, copy (default none)
 *
 * - Unknown fields are errors; a file with any error is rejected whole, each problem naming rule, field, reason.
 * - Rule names are unique (case-insensitive). Secret names are unique within a rule: env names are shell
 *   variable names; file names are single path components (no `/`, no leading `.`) — they become
 *   `/run/secrets/<NAME>`.
 * - Every rule whose scope matches a container applies, in order; when two rules give the same name (same mode),
 *   the earlier rule wins, as first-match does for access rules.
 * - A secret is identified by (store, path, key); the key selects one field of a structured secret (a Vault KV
 *   entry, a JSON secret) and is omitted for a plain value.
 */
import { z } from 'zod';
import { RulesError, type RuleProblem } from '../policy/access-rules.js';
import { compilePatternList, matchPatternList, type PatternList } from '../policy/match-pattern.js';

export const SECRET_MODES = ['env', 'file'] as const;
export const LEAK_PATHS = ['commit', 'export', 'copy'] as const;
export type LeakPath = (typeof LEAK_PATHS)[number];

// eslint-disable-next-line no-control-regex
const PRINTABLE = /^[^\u0000-\u001f\u007f]+$/;
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
export const FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
export const STORE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export const secretRef = z.strictObject({
  /** The variable name (env) or the file name under /run/secrets (file). */
  name: z.string().trim().min(1, 'is required'),
  store: z.string().trim().regex(STORE_NAME, 'must name a secret store (letters, digits, . _ -)'),
  path: z.string().trim().min(1, 'is required').max(1024).regex(PRINTABLE, 'must be printable'),
  key: z.string().trim().min(1).max(256).regex(PRINTABLE, 'must be printable').optional(),
});
export type SecretRef = z.infer<typeof secretRef>;

const pattern = z.string().trim().min(1, 'must not be empty').max(256).regex(PRINTABLE, 'must be printable');
const patternList = z
  .union([pattern.transform((p) => [p]), z.array(pattern).min(1, 'must list at least one pattern (omit it to mean *)')])
  .optional()
  .transform((v) => v ?? ['*']);

export const secretScope = z
  .strictObject({ images: patternList, labels: patternList, containers: patternList, hosts: patternList })
  .optional()
  .transform((v) => v ?? { images: ['*'], labels: ['*'], containers: ['*'], hosts: ['*'] });

export const secretRuleSchema = z
  .strictObject({
    name: z.string().trim().min(1, 'is required').max(100, 'is longer than 100 characters').regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must be letters, digits, . _ - (it becomes a label value)'),
    mode: z.enum(SECRET_MODES, { error: 'must be "env" or "file"' }),
    fileAccess: z.enum(['root', 'all'], { error: 'must be "root" or "all"' }).optional(),
    secrets: z.array(secretRef).min(1, 'must list at least one secret').max(100),
    scope: secretScope,
    allow: z.array(z.enum(LEAK_PATHS, { error: `must be one of ${LEAK_PATHS.join(', ')}` })).optional().transform((v) => v ?? []),
  })
  .superRefine((rule, ctx) => {
    if (rule.mode === 'env' && rule.fileAccess !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['fileAccess'], message: 'only applies to mode "file"' });
    }
    const names = new Set<string>();
    rule.secrets.forEach((s, i) => {
      const ok = rule.mode === 'env' ? ENV_NAME.test(s.name) : FILE_NAME.test(s.name);
      if (!ok) {
        const what = rule.mode === 'env' ? 'an environment variable name (letters, digits, _; not starting with a digit)' : 'a file name (letters, digits, . _ -; no / and no leading .)';
        ctx.addIssue({ code: 'custom', path: ['secrets', i, 'name'], message: `must be ${what}` });
      }
      if (names.has(s.name)) ctx.addIssue({ code: 'custom', path: ['secrets', i, 'name'], message: `'${s.name}' is given twice in this rule` });
      names.add(s.name);
    });
  })
  .transform((r) => ({ ...r, fileAccess: r.mode === 'file' ? (r.fileAccess ?? 'root') : undefined }));

export type SecretRule = z.output<typeof secretRuleSchema>;
export type SecretRuleInput = z.input<typeof secretRuleSchema>;

/** Validates a list of secret rules given as data. Throws RulesError (rule, field, reason). */
export function validateSecretRules(input: unknown): SecretRule[] {
  if (!Array.isArray(input)) throw new RulesError([{ rule: null, index: null, field: null, line: null, message: 'secret rules must be a list' }]);
  const problems: RuleProblem[] = [];
  const rules: SecretRule[] = [];
  const seen = new Map<string, number>();
  input.forEach((raw, index) => {
    const name = typeof raw === 'object' && raw !== null && typeof (raw as { name?: unknown }).name === 'string' ? (raw as { name: string }).name.trim() : null;
    const parsed = secretRuleSchema.safeParse(raw);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const unknown = issue.code === 'unrecognized_keys';
        problems.push({ rule: name || null, index, field: issue.path.length ? issue.path.map(String).join('.') : null, line: null, message: unknown ? `unknown field(s): ${issue.keys.join(', ')}` : issue.message });
      }
      return;
    }
    const key = parsed.data.name.toLowerCase();
    const first = seen.get(key);
    if (first !== undefined) {
      problems.push({ rule: parsed.data.name, index, field: 'name', line: null, message: `duplicates the name of secret rule #${first + 1}` });
      return;
    }
    seen.set(key, index);
    rules.push(parsed.data);
  });
  if (problems.length) throw new RulesError(problems);
  return rules;
}

/** What a container create tells about the container, for scope matching. */
export interface ContainerTarget {
  /** `Image` of the create body, as given. */
  readonly image: string;
  /** Labels of the create body. */
  readonly labels: Readonly<Record<string, string>>;
  /** The `name` query parameter of the create, or '' when none was given. */
  readonly name: string;
  /** The Defender's host name. */
  readonly host: string;
}

export interface CompiledSecretRule {
  readonly rule: SecretRule;
  readonly images: PatternList;
  readonly labels: PatternList;
  readonly containers: PatternList;
  readonly hosts: PatternList;
}

export function compileSecretRules(rules: readonly SecretRule[]): CompiledSecretRule[] {
  return rules.map((rule) => ({
    rule,
    images: compilePatternList(rule.scope.images),
    labels: compilePatternList(rule.scope.labels),
    containers: compilePatternList(rule.scope.containers),
    hosts: compilePatternList(rule.scope.hosts),
  }));
}

/**
 * The names an image reference is matched by: as given, and with the implicit `:latest` tag docker adds when the
 * reference has neither tag nor digest (so `postgres` and `postgres:latest` match the same rules).
 */
export function imageNames(image: string): string[] {
  const lastSlash = image.lastIndexOf('/');
  const hasTag = image.includes('@') || image.indexOf(':', lastSlash + 1) >= 0;
  return hasTag || image === '' ? [image] : [image, `${image}:latest`];
}

/** The rules that apply to a container, in order. */
export function matchSecretRules(rules: readonly CompiledSecretRule[], target: ContainerTarget): SecretRule[] {
  const labelValues = Object.entries(target.labels).map(([k, v]) => `${k}=${v}`);
  const images = imageNames(target.image);
  const names = target.name === '' ? [] : [target.name.replace(/^\//, '')];
  return rules
    .filter(
      (c) =>
        matchPatternList(c.hosts, [target.host]) !== null &&
        matchPatternList(c.images, images) !== null &&
        matchPatternList(c.labels, labelValues) !== null &&
        matchPatternList(c.containers, names) !== null,
    )
    .map((c) => c.rule);
}

/** The key a secret value is known by (in the Console's cache and in what the Defender receives). */
export function secretRefKey(ref: Pick<SecretRef, 'store' | 'path' | 'key'>): string {
  return JSON.stringify([ref.store, ref.path, ref.key ?? null]);
}
