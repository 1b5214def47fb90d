/**
 * The Console's access rules, stored in order in the `rules` table; `list()` is what Defenders enforce.
 *
 * - Positions are 0-based and dense (0..n-1), the same numbering as `explain()`'s `index`; every change
 *   renumbers inside its transaction, so readers never see gaps or ties.
 * - Every change runs in one transaction that validates, writes, and bumps the policy version last (the clock's
 *   listeners fire after commit, so a change that fails validation never announces a version).
 * - Validation is the shared schema's (`validateRules`): the list as it would be after the change must be a
 *   rules file a Defender loads. Problems come back as `RulesError`, naming rule, field and reason.
 * - The default deny-all rule is not stored: it is implied after the last rule (the engine denies when nothing
 *   matches). Its name is reserved, so it cannot be created, renamed to, edited, moved or deleted.
 * - Import replaces every rule at once, or nothing when the file has any problem.
 */
import { isNode, LineCounter, parseDocument } from 'yaml';
import { formatRulesFile, parseRulesFile, RulesError, validateRules, type AccessRule, type RuleProblem } from '../../shared/policy/access-rules.js';
import type { DrawbridgeError } from '../../shared/errors/drawbridge-error.js';
import type { Db } from '../db/database.js';
import { consoleErrors } from '../errors.js';
import type { PolicyClock } from '../policy/policy-clock.js';

export const DEFAULT_RULE_NAME = 'Default - deny all';

export interface StoredRule extends AccessRule {
  readonly id: number;
  readonly position: number;
}

export type RuleMove = { readonly to: number } | { readonly direction: 'up' | 'down' };

interface RuleRow {
  id: number;
  position: number;
  name: string;
  effect: 'allow' | 'deny';
  users_json: string;
  groups_json: string;
  hosts_json: string;
  actions_json: string;
}

function toRule(r: RuleRow, position: number): StoredRule {
  return {
    id: r.id,
    position,
    name: r.name,
    effect: r.effect,
    users: JSON.parse(r.users_json) as string[],
    groups: JSON.parse(r.groups_json) as string[],
    hosts: JSON.parse(r.hosts_json) as string[],
    actions: JSON.parse(r.actions_json) as string[],
  };
}

/** The rule as the shared schema has it (no id, no position), e.g. for the push hub and the engine. */
export function plainRule(r: AccessRule): AccessRule {
  return { name: r.name, effect: r.effect, users: r.users, groups: r.groups, hosts: r.hosts, actions: r.actions };
}

export function isDefaultRuleName(name: string): boolean {
  return name.trim().toLowerCase() === DEFAULT_RULE_NAME.toLowerCase();
}

function defaultRuleImmutable(what: string): DrawbridgeError {
  return consoleErrors.conflict(`'${DEFAULT_RULE_NAME}' is the built-in default rule: it always comes last and cannot be ${what}`);
}

function reservedNameProblems(rules: readonly AccessRule[], locate: (index: number) => number | null): RuleProblem[] {
  return rules.flatMap((r, index) =>
    isDefaultRuleName(r.name) ? [{ rule: r.name, index, field: 'name', line: locate(index), message: 'is reserved for the built-in default deny-all rule' }] : [],
  );
}

export class RuleStore {
  constructor(
    private readonly db: Db,
    private readonly clock: PolicyClock,
  ) {}

  /** The rules in evaluation order, in the shared schema (what a Defender enforces). */
  list(): AccessRule[] {
    return this.entries().map(plainRule);
  }

  /** The rules in order with their ids and positions. */
  entries(): StoredRule[] {
    const rows = this.db.prepare('SELECT * FROM rules ORDER BY position, id').all() as RuleRow[];
    return rows.map((r, i) => toRule(r, i));
  }

  /** The rules and the policy version they belong to, read together. */
  snapshot(): { rules: StoredRule[]; version: number } {
    return this.db.transaction(() => ({ rules: this.entries(), version: this.clock.current() }))();
  }

  get(name: string): StoredRule | null {
    return this.entries().find((r) => r.name.toLowerCase() === name.toLowerCase()) ?? null;
  }

  /** Adds a rule at `position` (0 = first; default: last, just above the default rule). */
  create(input: unknown, position?: number): { rule: StoredRule; version: number } {
    return this.db.transaction(() => {
      const current = this.entries();
      const rule = this.validateOne(input, current, null);
      if (isDefaultRuleName(rule.name)) throw defaultRuleImmutable('created');
      const at = position ?? current.length;
      if (!Number.isInteger(at) || at < 0 || at > current.length) throw new RulesError([{ rule: rule.name, index: null, field: 'position', line: null, message: `must be between 0 and ${current.length} (the number of rules)` }]);
      const { lastInsertRowid } = this.db
        .prepare('INSERT INTO rules (position, name, effect, users_json, groups_json, hosts_json, actions_json) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(at, ...columns(rule));
      const ids = current.map((r) => r.id);
      ids.splice(at, 0, Number(lastInsertRowid));
      this.renumber(ids);
      const version = this.clock.bump('rules');
      return { rule: this.get(rule.name)!, version };
    })();
  }

  /** Replaces the rule named `name` with `input` (which may rename it); its position stays. */
  replace(name: string, input: unknown): { rule: StoredRule; version: number } {
    return this.db.transaction(() => {
      if (isDefaultRuleName(name)) throw defaultRuleImmutable('edited');
      const current = this.entries();
      const old = this.mustFind(current, name);
      const rule = this.validateOne(input, current, old);
      if (isDefaultRuleName(rule.name)) throw defaultRuleImmutable('created (renaming a rule to its name)');
      this.db
        .prepare('UPDATE rules SET name = ?, effect = ?, users_json = ?, groups_json = ?, hosts_json = ?, actions_json = ? WHERE id = ?')
        .run(...columns(rule), old.id);
      const version = this.clock.bump('rules');
      return { rule: this.get(rule.name)!, version };
    })();
  }

  delete(name: string): number {
    return this.db.transaction(() => {
      if (isDefaultRuleName(name)) throw defaultRuleImmutable('deleted');
      const current = this.entries();
      const old = this.mustFind(current, name);
      this.db.prepare('DELETE FROM rules WHERE id = ?').run(old.id);
      this.renumber(current.filter((r) => r.id !== old.id).map((r) => r.id));
      return this.clock.bump('rules');
    })();
  }

  /** Moves a rule to a 0-based position, or one step up/down. The default rule stays below every rule. */
  move(name: string, how: RuleMove): { rules: StoredRule[]; version: number } {
    return this.db.transaction(() => {
      if (isDefaultRuleName(name)) throw defaultRuleImmutable('moved');
      const current = this.entries();
      const rule = this.mustFind(current, name);
      const last = current.length - 1;
      let to: number;
      if ('to' in how) {
        if (!Number.isInteger(how.to) || how.to < 0 || how.to > last) {
          throw new RulesError([{ rule: rule.name, index: rule.position, field: 'to', line: null, message: `must be between 0 and ${last} (the default rule stays last)` }]);
        }
        to = how.to;
      } else if (how.direction === 'up') {
        if (rule.position === 0) throw consoleErrors.conflict(`rule '${rule.name}' is already first`);
        to = rule.position - 1;
      } else {
        if (rule.position === last) throw consoleErrors.conflict(`rule '${rule.name}' is already the last rule; '${DEFAULT_RULE_NAME}' always stays below it`);
        to = rule.position + 1;
      }
      const ids = current.map((r) => r.id).filter((id) => id !== rule.id);
      ids.splice(to, 0, rule.id);
      this.renumber(ids);
      const version = this.clock.bump('rules');
      return { rules: this.entries(), version };
    })();
  }

  /** Replaces every rule with those of a rules file, or changes nothing when it has any problem (RulesError). */
  importFile(text: string): { rules: StoredRule[]; version: number } {
    const rules = parseRulesFile(text);
    const reserved = reservedNameProblems(rules, (index) => lineOfRuleName(text, index));
    if (reserved.length) throw new RulesError(reserved);
    return this.db.transaction(() => {
      this.db.prepare('DELETE FROM rules').run();
      const insert = this.db.prepare('INSERT INTO rules (position, name, effect, users_json, groups_json, hosts_json, actions_json) VALUES (?, ?, ?, ?, ?, ?, ?)');
      rules.forEach((r, i) => insert.run(i, ...columns(r)));
      const version = this.clock.bump('rules');
      return { rules: this.entries(), version };
    })();
  }

  /** The rules as a Defender's rules file (parseRulesFile reads it back to the same rules), with their version. */
  exportFile(): { text: string; version: number } {
    const { rules, version } = this.snapshot();
    return { text: formatRulesFile(rules.map(plainRule)), version };
  }

  private mustFind(current: readonly StoredRule[], name: string): StoredRule {
    const rule = current.find((r) => r.name.toLowerCase() === name.toLowerCase());
    if (!rule) throw consoleErrors.not_found(`no rule named '${name}'`);
    return rule;
  }

  /**
   * Checks one rule through the shared schema: alone (its own fields), then after the other rules in their
   * current order (names unique; "#N" in the message is the other rule's current position + 1). `replacing`
   * keeping its name (in any case) is left out, since a rule does not clash with itself.
   */
  private validateOne(input: unknown, current: readonly StoredRule[], replacing: StoredRule | null): AccessRule {
    const [rule] = validateRules({ rules: [input] });
    const others = current.filter((r) => !(replacing && r.id === replacing.id && r.name.toLowerCase() === rule!.name.toLowerCase())).map(plainRule);
    try {
      validateRules({ rules: [...others, rule] });
    } catch (e) {
      if (!(e instanceof RulesError)) throw e;
      // Stored rules that no longer validate (e.g. an action this version dropped) are not this change's fault.
      const mine = e.problems.filter((p) => p.index === others.length).map((p) => ({ ...p, index: 0 }));
      if (mine.length) throw new RulesError(mine);
    }
    return rule!;
  }

  private renumber(ids: readonly number[]): void {
    const set = this.db.prepare('UPDATE rules SET position = ? WHERE id = ? AND position <> ?');
    ids.forEach((id, i) => set.run(i, id, i));
  }
}

function columns(r: AccessRule): [string, string, string, string, string, string] {
  return [r.name, r.effect, JSON.stringify(r.users), JSON.stringify(r.groups), JSON.stringify(r.hosts), JSON.stringify(r.actions)];
}

/** The line of the `index`th rule's name in a rules file that parsed (for the reserved-name problem). */
function lineOfRuleName(text: string, index: number): number | null {
  const lineCounter = new LineCounter();
  const node = parseDocument(text, { lineCounter }).getIn(['rules', index, 'name'], true);
  return isNode(node) && node.range ? lineCounter.linePos(node.range[0]).line : null;
}
