import { describe, expect, it } from 'vitest';
import { parseRulesFile } from './access-rules.js';
import { compilePolicy, denialMessage, explain } from './evaluate-policy.js';
import { foldName } from './match-pattern.js';

const policy = compilePolicy(
  parseRulesFile(`
rules:
  - name: block-bruce-exec
    effect: deny
    users: [bruce]
    actions: [container_exec_*]
  - name: ops-everything-prod
    effect: allow
    groups: [ops]
    hosts: [prod-*]
  - name: devs-on-dev
    effect: allow
    groups: [devs, -contractors]
    hosts: [dev-*]
    actions: ['container_*', 'image_*', docker_ping, docker_version, -container_commit]
  - name: everyone-reads
    effect: allow
    actions: [docker_ping, docker_version, container_list]
  - name: break-glass-unknown
    effect: allow
    users: [root-admin]
    actions: [unknown]
`),
);

const bruce = { user: 'bruce', groups: ['devs'] };
const alice = { user: 'alice', groups: ['ops'] };
const carol = { user: 'carol', groups: ['devs', 'contractors'] };
const nobody = { user: 'nobody', groups: [] };
const admin = { user: 'root-admin', groups: [] };

describe('explain', () => {
  it.each([
    // who, host, action, allowed, deciding rule
    [bruce, 'dev-a', 'container_create', true, 'devs-on-dev'],
    [bruce, 'dev-a', 'container_exec_create', false, 'block-bruce-exec'], // order: the deny above wins
    [bruce, 'DEV-A', 'container_create', true, 'devs-on-dev'], // hosts are case-insensitive
    [{ user: 'BRUCE', groups: ['DEVS'] }, 'dev-a', 'container_exec_start', false, 'block-bruce-exec'], // users too
    [bruce, 'dev-a', 'container_commit', false, null], // excluded action falls through to the default
    [bruce, 'prod-a', 'container_create', false, null], // no rule for devs on prod
    [bruce, 'prod-a', 'container_list', true, 'everyone-reads'],
    [alice, 'prod-a', 'container_exec_create', true, 'ops-everything-prod'],
    [alice, 'prod-a', 'volume_create', true, 'ops-everything-prod'],
    [alice, 'dev-a', 'volume_create', false, null],
    [carol, 'dev-a', 'container_create', false, null], // excluded group
    [carol, 'dev-a', 'docker_ping', true, 'everyone-reads'],
    [nobody, 'dev-a', 'docker_version', true, 'everyone-reads'], // no groups still matches groups: [*]
    [nobody, 'dev-a', 'image_list', false, null],
    [alice, 'prod-a', 'unknown', false, null], // an allow rule's '*' never matches unknown
    [admin, 'prod-a', 'unknown', true, 'break-glass-unknown'],
    [admin, 'prod-a', 'container_create', false, null],
  ] as const)('%o on %s: %s → allowed=%s by %s', (who, host, action, allowed, rule) => {
    const d = explain(policy, who, host, action);
    expect(d.allowed).toBe(allowed);
    expect(d.rule).toBe(rule);
    expect(d.reason).toContain(rule === null ? 'default deny-all' : `rule '${rule}'`);
  });

  it('denies everything with no rules', () => {
    const d = explain(compilePolicy([]), alice, 'prod-a', 'docker_ping');
    expect(d).toMatchObject({ allowed: false, rule: null, index: null });
  });

  it('names the deciding rule and its position', () => {
    expect(explain(policy, alice, 'prod-a', 'image_push')).toMatchObject({ rule: 'ops-everything-prod', index: 1 });
  });
});

describe('unknown and deny rules', () => {
  const rules = compilePolicy(
    parseRulesFile(`
rules:
  - {name: no-contractors, effect: deny, groups: [contractors]}
  - {name: nothing-but-ping, effect: deny, users: [eve], actions: [-docker_ping]}
  - {name: no-exec, effect: deny, users: [dan], actions: ['container_exec_*']}
  - {name: unknown-ok, effect: allow, actions: [unknown]}
`),
  );
  it.each([
    // a deny rule written for everything also denies what the route table does not know
    [{ user: 'carol', groups: ['contractors'] }, false, 'no-contractors'],
    [{ user: 'eve', groups: [] }, false, 'nothing-but-ping'],
    // a deny rule for named actions leaves it to the rules below
    [{ user: 'dan', groups: [] }, true, 'unknown-ok'],
  ] as const)('%o', (who, allowed, rule) => {
    expect(explain(rules, who, 'dev-a', 'unknown')).toMatchObject({ allowed, rule });
  });
});

describe('names in any letter case', () => {
  // The rule names one spelling, the certificate carries another: one fold (foldName) for the engine and the Console.
  it.each([
    ['straße', 'STRAẞE'],
    ['kate', '\u212Aate'], // Kelvin sign
    ['ångström', '\u212Bngström'], // Ångström sign
    ['𐐨x', '𐐀x'],
    ['ασ', 'ΑΣ'], // final sigma
    ['µx', 'μx'], // micro sign, Greek mu
    ['ϐx', 'βx'],
    ['émile', 'ÉMILE'],
  ])('a rule for %s decides for %s, and the reverse', (a, b) => {
    for (const [rule, cn] of [[a, b], [b, a]] as const) {
      const p = compilePolicy([{ name: 'deny-them', effect: 'deny', users: [rule], groups: ['*'], hosts: ['*'], actions: ['*'] }, { name: 'rest', effect: 'allow', users: ['*'], groups: ['*'], hosts: ['*'], actions: ['*'] }]);
      expect(explain(p, { user: cn, groups: [] }, 'dev-a', 'docker_ping').rule).toBe('deny-them');
      expect(foldName(rule)).toBe(foldName(cn));
    }
  });

  it('keeps names apart that differ by more than case', () => {
    const p = compilePolicy([{ name: 'deny-i', effect: 'deny', users: ['i'], groups: ['*'], hosts: ['*'], actions: ['*'] }]);
    expect(explain(p, { user: 'İ', groups: [] }, 'dev-a', 'docker_ping').rule).toBeNull(); // Turkish dotted capital I folds to i + dot
    expect(explain(p, { user: 'ı', groups: [] }, 'dev-a', 'docker_ping').rule).toBeNull(); // dotless i
    expect(foldName('ss')).not.toBe(foldName('ß'));
  });

  it('a fullwidth asterisk is a letter, not a wildcard', () => {
    const p = compilePolicy([{ name: 'deny-star', effect: 'deny', users: ['a\uFF0Ab'], groups: ['*'], hosts: ['*'], actions: ['*'] }]);
    expect(explain(p, { user: 'axxb', groups: [] }, 'dev-a', 'docker_ping').rule).toBeNull();
    expect(explain(p, { user: 'a*b', groups: [] }, 'dev-a', 'docker_ping').rule).toBe('deny-star');
  });
});

describe('denialMessage', () => {
  it.each([
    ['container_create', 'bruce', 'prod-lockdown', "[Drawbridge] The command 'container_create' denied for user 'bruce' by rule 'prod-lockdown'"],
    ['image_create', 'bruce', null, "[Drawbridge] The command 'image_create' denied for user 'bruce' by the default deny-all rule"],
  ] as const)('%s/%s/%s', (action, user, rule, text) => {
    expect(denialMessage(action, user, { allowed: false, rule, index: rule ? 0 : null, reason: '' })).toBe(text);
  });
});
