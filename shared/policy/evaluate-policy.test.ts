import { describe, expect, it } from 'vitest';
import { parseRulesFile } from './access-rules.js';
import { compilePolicy, denialMessage, explain } from './evaluate-policy.js';

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
    [alice, 'prod-a', 'unknown', false, null], // '*' never matches unknown
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

describe('denialMessage', () => {
  it.each([
    ['container_create', 'bruce', 'prod-lockdown', "[Drawbridge] The command 'container_create' denied for user 'bruce' by rule 'prod-lockdown'"],
    ['image_create', 'bruce', null, "[Drawbridge] The command 'image_create' denied for user 'bruce' by the default deny-all rule"],
  ] as const)('%s/%s/%s', (action, user, rule, text) => {
    expect(denialMessage(action, user, { allowed: false, rule, index: rule ? 0 : null, reason: '' })).toBe(text);
  });
});
