/**
 * The Console's secret rules, stored in order in `secret_rules`; `list()` is what Defenders receive (filtered per
 * host by the snapshot).
 *
 * - Positions are 0-based and dense; every change renumbers inside its transaction.
 * - Validation is the shared schema's (`validateSecretRules`): the list as it would be after the change must be
 *   valid (names unique), and every store a rule names must exist. Problems come back as `RulesError`.
 * - Every change bumps the policy version in its transaction, so Defenders get the new rules (the values the
 *   rule needs are fetched by the caller before the change is committed; see secret-sync.ts).
 */
import { RulesError, type RuleProblem } from '../../shared/policy/access-rules.js';
import { validateSecretRules, type SecretRule } from '../../shared/secrets/secret-rules.js';
import type { Db } from '../db/database.js';
import { consoleErrors } from '../errors.js';
import type { PolicyClock } from '../policy/policy-clock.js';

export interface StoredSecretRule {
  readonly id: number;
  readonly position: number;
  readonly rule: SecretRule;
}

interface Row {
  id: number;
  position: number;
  name: string;
  rule_json: string;
}

export class SecretRuleStore {
  constructor(
    private readonly db: Db,
    private readonly clock: PolicyClock,
    /** Whether a store of this name exists (case-insensitive). */
    private readonly storeExists: (name: string) => boolean,
  ) {}

  /** The rules in order, in the shared schema. */
  list(): SecretRule[] {
    return this.entries().map((e) => e.rule);
  }

  entries(): StoredSecretRule[] {
    const rows = this.db.prepare('SELECT * FROM secret_rules ORDER BY position, id').all() as Row[];
    return rows.map((r, i) => ({ id: r.id, position: i, rule: JSON.parse(r.rule_json) as SecretRule }));
  }

  get(name: string): StoredSecretRule | null {
    return this.entries().find((e) => e.rule.name.toLowerCase() === name.toLowerCase()) ?? null;
  }

  /** Checks a rule as it would stand after the change (`replacing` left out), without writing anything. */
  validate(input: unknown, replacing: string | null = null): SecretRule {
    const [rule] = validateSecretRules([input]);
    const others = this.entries().filter((e) => replacing === null || e.rule.name.toLowerCase() !== replacing.toLowerCase());
    const clash = others.find((e) => e.rule.name.toLowerCase() === rule!.name.toLowerCase());
    if (clash) throw new RulesError([{ rule: rule!.name, index: null, field: 'name', line: null, message: `duplicates the name of secret rule #${clash.position + 1}` }]);
    const problems: RuleProblem[] = [];
    rule!.secrets.forEach((s, i) => {
      if (!this.storeExists(s.store)) problems.push({ rule: rule!.name, index: null, field: `secrets.${i}.store`, line: null, message: `no secret store named '${s.store}' (create it first: POST /api/v1/secret-stores)` });
    });
    if (problems.length) throw new RulesError(problems);
    return rule!;
  }

  /** Adds a validated rule at `position` (default: last) and bumps the policy version. Call inside a transaction. */
  insert(rule: SecretRule, position?: number): number {
    const current = this.entries();
    const at = position ?? current.length;
    if (!Number.isInteger(at) || at < 0 || at > current.length) {
      throw new RulesError([{ rule: rule.name, index: null, field: 'position', line: null, message: `must be between 0 and ${current.length} (the number of secret rules)` }]);
    }
    const { lastInsertRowid } = this.db.prepare('INSERT INTO secret_rules (position, name, rule_json) VALUES (?, ?, ?)').run(at, rule.name, JSON.stringify(rule));
    const ids = current.map((e) => e.id);
    ids.splice(at, 0, Number(lastInsertRowid));
    this.renumber(ids);
    return this.clock.bump('secret rules');
  }

  /** Replaces the rule named `name` with a validated rule (which may rename it); its position stays. */
  update(name: string, rule: SecretRule): number {
    const old = this.mustFind(name);
    this.db.prepare('UPDATE secret_rules SET name = ?, rule_json = ? WHERE id = ?').run(rule.name, JSON.stringify(rule), old.id);
    return this.clock.bump('secret rules');
  }

  delete(name: string): number {
    return this.db.transaction(() => {
      const old = this.mustFind(name);
      this.db.prepare('DELETE FROM secret_rules WHERE id = ?').run(old.id);
      this.renumber(this.entries().map((e) => e.id));
      return this.clock.bump('secret rules');
    })();
  }

  /** Names of the rules that take a secret from `store`. */
  rulesUsingStore(store: string): string[] {
    return this.list()
      .filter((r) => r.secrets.some((s) => s.store.toLowerCase() === store.toLowerCase()))
      .map((r) => r.name);
  }

  private mustFind(name: string): StoredSecretRule {
    const found = this.get(name);
    if (!found) throw consoleErrors.not_found(`no secret rule named '${name}'`);
    return found;
  }

  private renumber(ids: readonly number[]): void {
    const set = this.db.prepare('UPDATE secret_rules SET position = ? WHERE id = ? AND position <> ?');
    ids.forEach((id, i) => set.run(i, id, i));
  }
}
