import { describe, expect, it } from 'vitest';
import { formatRulesFile, parseRulesFile, RulesError, type RuleProblem } from './access-rules.js';

function problems(text: string): RuleProblem[] {
  try {
    parseRulesFile(text);
  } catch (e) {
    expect(e).toBeInstanceOf(RulesError);
    return [...(e as RulesError).problems];
  }
  throw new Error('expected the rules file to be rejected');
}

describe('parseRulesFile', () => {
  it('fills defaults and accepts a single string for a list', () => {
    expect(parseRulesFile('rules:\n  - name: a\n    effect: allow\n    users: bruce\n')).toEqual([
      { name: 'a', effect: 'allow', users: ['bruce'], groups: ['*'], hosts: ['*'], actions: ['*'] },
    ]);
  });

  it('accepts an empty list (everything denied) and JSON text', () => {
    expect(parseRulesFile('rules: []')).toEqual([]);
    expect(parseRulesFile('{"rules":[{"name":"x","effect":"deny","actions":["image_*"]}]}')[0]?.actions).toEqual(['image_*']);
  });

  it.each([
    // text, rule, field, line, message fragment
    ['rules:\n  - name: a\n    effect: permit\n', 'a', 'effect', 3, 'must be "allow" or "deny"'],
    ['rules:\n  - effect: allow\n', null, 'name', 2, 'expected string'],
    ['rules:\n  - name: a\n    effect: allow\n    group: [devs]\n', 'a', null, 2, 'unknown field(s): group'],
    ['rules:\n  - name: a\n    effect: deny\n    actions: [contaner_create]\n', 'a', 'actions.0', 4, "'contaner_create' matches no Docker action"],
    ['rules:\n  - name: a\n    effect: deny\n    actions: [-cont*_nope]\n', 'a', 'actions.0', 4, 'matches no Docker action'],
    ['rules:\n  - name: a\n    effect: allow\n    users: []\n', 'a', 'users', 4, 'at least one pattern'],
    ['rules:\n  - name: a\n    effect: allow\n    users: [""]\n', 'a', 'users.0', 4, 'must not be empty'],
    ['rules:\n  - name: a\n    effect: allow\n  - name: A\n    effect: deny\n', 'A', 'name', 4, 'duplicates the name of rule #1'],
    ['rule:\n  - name: a\n', null, 'rules', 1, "must be a list of rules (the file starts with 'rules:')"],
    ['rules: {}\n', null, 'rules', 1, 'must be a list of rules'],
    ['rules:\n  - name: a\n    effect: allow\n    effect: deny\n', null, null, 4, 'YAML: Map keys must be unique'],
    ['rules: [\n', null, null, 2, 'YAML:'],
    // patterns that could never match what their author meant
    ['rules:\n  - name: a\n    effect: deny\n    users: alice, bob\n', 'a', 'users.0', 4, "'alice, bob' holds a comma: write a list with one pattern per item"],
    ['rules:\n  - name: a\n    effect: deny\n    hosts: [prod-a, "prod-b, prod-c"]\n', 'a', 'hosts.1', 4, 'holds a comma'],
    ['rules:\n  - name: a\n    effect: deny\n    groups: ops -leads\n', 'a', 'groups.0', 4, "'ops -leads' looks like a list written without brackets"],
    ['rules:\n  - name: a\n    effect: allow\n    users: ["- bob"]\n', 'a', 'users.0', 4, "'- bob' is not an exclusion: write -name"],
    ['rules:\n  - name: a\n    effect: allow\n    groups: ["-"]\n', 'a', 'groups.0', 4, 'is not an exclusion'],
    ['rules:\n  - name: a\n    effect: deny\n    hosts: [prod a]\n', 'a', 'hosts.0', 4, "'prod a' cannot match a host name"],
    ['rules:\n  - name: a\n    effect: deny\n    hosts: [prod/a]\n', 'a', 'hosts.0', 4, 'cannot match a host name'],
    ['rules:\n  - name: Default-Deny-All\n    effect: allow\n', 'Default-Deny-All', 'name', 2, "is the default deny-all rule's name"],
  ] as const)('rejects %j', (text, rule, field, line, message) => {
    const [p] = problems(text);
    expect(p?.rule ?? null).toBe(rule);
    expect(p?.field ?? null).toBe(field);
    expect(p?.line ?? null).toBe(line);
    expect(p?.message).toContain(message);
  });

  it('names unknown top-level keys', () => {
    expect(problems('rule:\n  - name: a\n').map((p) => p.message)).toContain("unknown field(s): rule (a rules file has one key, 'rules')");
  });

  it('reports every problem of a file, not only the first', () => {
    const all = problems('rules:\n  - name: a\n    effect: x\n  - name: b\n    effect: allow\n    hosts: [1]\n');
    expect(all.map((p) => p.rule)).toEqual(['a', 'b']);
  });

  it('formats problems into one readable error message', () => {
    expect(() => parseRulesFile('rules:\n  - name: a\n    effect: permit\n')).toThrow(
      `line 3, rule 'a' (#1), field 'effect': must be "allow" or "deny"`,
    );
  });

  it('round-trips through formatRulesFile', () => {
    const rules = parseRulesFile('rules:\n  - {name: "a: b", effect: deny, groups: [-x, "*"], actions: [unknown]}\n  - {name: c, effect: allow}\n');
    expect(parseRulesFile(formatRulesFile(rules))).toEqual(rules);
  });
});
