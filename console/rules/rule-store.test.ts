import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseRulesFile, RulesError, type RuleProblem } from '../../shared/policy/access-rules.js';
import { migrate, type Db } from '../db/database.js';
import { PolicyClock } from '../policy/policy-clock.js';
import { DEFAULT_RULE_NAME, RuleStore } from './rule-store.js';

let db: Db;
let clock: PolicyClock;
let store: RuleStore;

beforeEach(() => {
  db = new Database(':memory:');
  migrate(db);
  clock = new PolicyClock(db);
  store = new RuleStore(db, clock);
});
afterEach(() => db.close());

const names = () => store.list().map((r) => r.name);
const positions = () => (db.prepare('SELECT name, position FROM rules ORDER BY position').all() as { name: string; position: number }[]).map((r) => `${r.position}:${r.name}`);

function problems(run: () => unknown): RuleProblem[] {
  try {
    run();
  } catch (e) {
    expect(e).toBeInstanceOf(RulesError);
    return [...(e as RulesError).problems];
  }
  throw new Error('expected a RulesError');
}

function seed(...ns: string[]): void {
  for (const name of ns) store.create({ name, effect: 'allow' });
}

describe('RuleStore', () => {
  it('fills the schema defaults and lists in the shared shape', () => {
    store.create({ name: 'a', effect: 'deny', users: 'bruce' });
    expect(store.list()).toEqual([{ name: 'a', effect: 'deny', users: ['bruce'], groups: ['*'], hosts: ['*'], actions: ['*'] }]);
    expect(store.entries()[0]).toMatchObject({ position: 0, name: 'a' });
  });

  it('inserts last by default and at a position when given, keeping positions dense', () => {
    seed('a', 'b');
    store.create({ name: 'first', effect: 'deny' }, 0);
    store.create({ name: 'middle', effect: 'deny' }, 2);
    store.create({ name: 'end', effect: 'deny' }, 4);
    expect(positions()).toEqual(['0:first', '1:a', '2:middle', '3:b', '4:end']);
    expect(problems(() => store.create({ name: 'x', effect: 'deny' }, 6))[0]).toMatchObject({ field: 'position', message: 'must be between 0 and 5 (the number of rules)' });
  });

  it.each([
    [{ direction: 'up' }, 'b', ['b', 'a', 'c', 'd']],
    [{ direction: 'down' }, 'b', ['a', 'c', 'b', 'd']],
    [{ to: 0 }, 'd', ['d', 'a', 'b', 'c']],
    [{ to: 3 }, 'a', ['b', 'c', 'd', 'a']],
    [{ to: 1 }, 'B', ['a', 'b', 'c', 'd']], // names are case-insensitive; moving in place is fine
  ] as const)('moves %o of %s', (how, name, order) => {
    seed('a', 'b', 'c', 'd');
    store.move(name, how);
    expect(names()).toEqual(order);
    expect(positions().map((p) => Number(p.split(':')[0]))).toEqual([0, 1, 2, 3]);
  });

  it('refuses moves past either end', () => {
    seed('a', 'b');
    expect(() => store.move('a', { direction: 'up' })).toThrow('already first');
    expect(() => store.move('b', { direction: 'down' })).toThrow(`'${DEFAULT_RULE_NAME}' always stays below it`);
    expect(problems(() => store.move('a', { to: 2 }))[0]).toMatchObject({ field: 'to' });
    expect(names()).toEqual(['a', 'b']);
  });

  it('validates through the shared schema, naming the field', () => {
    expect(problems(() => store.create({ name: 'a', effect: 'permit' }))[0]).toMatchObject({ field: 'effect', message: 'must be "allow" or "deny"' });
    expect(problems(() => store.create({ name: 'a', effect: 'deny', actions: ['contaner_*'] }))[0]).toMatchObject({ field: 'actions.0' });
    expect(problems(() => store.create({ name: 'a', effect: 'deny', group: ['x'] }))[0]).toMatchObject({ field: null, message: 'unknown field(s): group' });
  });

  it('reports a duplicate name with the other rule\'s current number', () => {
    seed('a', 'b', 'c');
    expect(problems(() => store.create({ name: 'B', effect: 'deny' }, 0))[0]).toMatchObject({ field: 'name', message: 'duplicates the name of rule #2' });
    expect(problems(() => store.replace('a', { name: 'C', effect: 'deny' }))[0]).toMatchObject({ field: 'name', message: 'duplicates the name of rule #3' });
    store.replace('b', { name: 'B', effect: 'deny' }); // a rule does not clash with itself
    expect(names()).toEqual(['a', 'B', 'c']);
  });

  it('keeps the position on replace and closes the gap on delete', () => {
    seed('a', 'b', 'c');
    store.replace('b', { name: 'b2', effect: 'deny', hosts: ['prod-*'] });
    expect(store.get('b2')).toMatchObject({ position: 1, effect: 'deny', hosts: ['prod-*'] });
    store.delete('a');
    expect(positions()).toEqual(['0:b2', '1:c']);
    expect(() => store.delete('a')).toThrow("no rule named 'a'");
  });

  it('protects the default rule', () => {
    seed('a');
    expect(() => store.create({ name: 'default - DENY all', effect: 'deny' })).toThrow('cannot be created');
    expect(() => store.replace('a', { name: DEFAULT_RULE_NAME, effect: 'deny' })).toThrow('cannot be created');
    expect(() => store.replace(DEFAULT_RULE_NAME, { name: 'x', effect: 'allow' })).toThrow('cannot be edited');
    expect(() => store.move(DEFAULT_RULE_NAME, { direction: 'up' })).toThrow('cannot be moved');
    expect(() => store.delete(DEFAULT_RULE_NAME)).toThrow('cannot be deleted');
    expect(problems(() => store.importFile(`rules:\n  - name: a\n    effect: allow\n  - name: ${DEFAULT_RULE_NAME}\n    effect: deny\n`))[0]).toMatchObject({ index: 1, field: 'name', line: 4 });
  });

  it('bumps the version once per change, never on a failed change', () => {
    const v0 = clock.current();
    seed('a', 'b');
    store.move('a', { direction: 'down' });
    store.replace('a', { name: 'a', effect: 'deny' });
    store.delete('a');
    expect(clock.current()).toBe(v0 + 5);
    expect(() => store.create({ name: 'b', effect: 'deny' })).toThrow(RulesError);
    expect(() => store.move('b', { direction: 'up' })).toThrow();
    store.list();
    store.exportFile();
    expect(clock.current()).toBe(v0 + 5);
  });

  it('imports all or nothing, and round-trips through the rules file', () => {
    seed('keep-me');
    const version = clock.current();
    const bad = problems(() => store.importFile('rules:\n  - name: x\n    effect: allow\n  - name: y\n    effect: nope\n'));
    expect(bad[0]).toMatchObject({ rule: 'y', field: 'effect', line: 5 });
    expect(names()).toEqual(['keep-me']);
    expect(clock.current()).toBe(version);

    const text = 'rules:\n  - {name: "a: b", effect: deny, groups: [-x, "*"], actions: [unknown]}\n  - {name: c, effect: allow, hosts: dev-*}\n';
    store.importFile(text);
    expect(store.list()).toEqual(parseRulesFile(text));
    const exported = store.exportFile();
    expect(exported.version).toBe(version + 1);
    expect(parseRulesFile(exported.text)).toEqual(parseRulesFile(text));
    store.importFile(exported.text);
    expect(store.list()).toEqual(parseRulesFile(text));
  });
});
