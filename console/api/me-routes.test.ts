import { describe, expect, it } from 'vitest';
import { ACTIONS } from '../../shared/docker/route-table.js';
import { CAPABILITIES, dockerHostOf, HEADLINE_ACTIONS, summarisePermissions, type ActionDecision } from './me-routes.js';

const decisions = (allowed: readonly string[]): Record<string, ActionDecision> =>
  Object.fromEntries(HEADLINE_ACTIONS.map((a) => [a, { allowed: allowed.includes(a), rule: null }]));

describe('headline actions', () => {
  it('are all actions of the route table', () => {
    for (const a of HEADLINE_ACTIONS) expect(ACTIONS).toContain(a);
    expect(CAPABILITIES[0]!.name).toBe('run containers');
  });
});

describe('summarisePermissions', () => {
  it.each([
    ['everything', HEADLINE_ACTIONS, 'can run containers, list containers, exec, build images, pull images, push images'],
    ['all but exec', HEADLINE_ACTIONS.filter((a) => !a.startsWith('container_exec')), 'can run containers, list containers, build images, pull images, push images; cannot exec'],
    ['create without start is not running', ['container_create', 'container_list'], 'can list containers; cannot run containers, exec, build images, pull images, push images'],
    ['exec needs create and start of the exec', ['container_exec_create', 'container_create', 'container_start'], 'can run containers; cannot list containers, exec, build images, pull images, push images'],
    ['nothing of these', [], 'cannot run containers, list containers, exec, build images, pull images, push images (other actions only)'],
  ])('%s', (_name, allowed, summary) => expect(summarisePermissions(decisions(allowed))).toBe(summary));
});

describe('dockerHostOf', () => {
  it.each([
    ['wildcard IPv4 bind → the enrolment address', '10.0.0.5', { type: 'tcp', address: '0.0.0.0:9998' }, 'tcp://10.0.0.5:9998'],
    ['wildcard IPv6 bind → the enrolment address', '10.0.0.5', { type: 'tcp', address: '[::]:9998' }, 'tcp://10.0.0.5:9998'],
    ['empty bind host', 'fd00::5', { type: 'tcp', address: ':2376' }, 'tcp://[fd00::5]:2376'],
    ['a specific bind address wins', '10.0.0.5', { type: 'tcp', address: '127.0.0.1:9998' }, 'tcp://127.0.0.1:9998'],
    ['a specific IPv6 bind', null, { type: 'tcp', address: '[fd00::7]:9998' }, 'tcp://[fd00::7]:9998'],
    ['a DNS name bind', null, { type: 'tcp', address: 'dev-a.example:9998' }, 'tcp://dev-a.example:9998'],
    ['wildcard and no known address', null, { type: 'tcp', address: '0.0.0.0:9998' }, null],
    ['a socket listener', '10.0.0.5', { type: 'unix', path: '/run/drawbridge.sock' }, 'unix:///run/drawbridge.sock'],
  ] as const)('%s', (_name, address, listener, want) => expect(dockerHostOf({ address, listener })).toBe(want));
});
