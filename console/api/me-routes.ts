/**
 * `GET /api/v1/me/hosts`: the Defender hosts the caller can reach and what they may do on each — what the
 * companion turns into one docker context per host.
 *
 * - Any logged-in role (API session or OAuth access token); always about the caller, with their current groups.
 * - Decisions come from the engine Defenders enforce with (shared/policy/evaluate-policy.ts), over the Console's
 *   current rules; `version` is the policy version they belong to.
 * - A host is reachable when the rules allow the caller at least one Docker action there (`unknown` aside).
 * - For each host: the decision for a fixed list of headline actions, and a one-line summary of capabilities
 *   ("can run containers, list containers; cannot exec"); a capability needs all of its actions.
 * - `dockerHost` is what DOCKER_HOST must be: `tcp://<address>:<port>` with the listener's port and its bind
 *   address, or the address the Defender enrolled from when it binds a wildcard (0.0.0.0, ::); `unix://<path>` for
 *   a socket listener (usable on that machine only); null when no address is known.
 * - `connected`: the Defender has sent a heartbeat since it enrolled and the Console heard from it within the last
 *   30 s (Defenders send one every 10 s). An approximation: whether its policy stream is open right now is known
 *   only to the push hub of the defenders route group.
 */
import { ACTIONS } from '../../shared/docker/route-table.js';
import { compilePolicy, explain, UNKNOWN_ACTION, type Policy } from '../../shared/policy/evaluate-policy.js';
import type { Identity } from '../../shared/identity/certificate-identity.js';
import type { ActionDecision, MyHost } from '../../shared/wire/console-companion.js';
import type { ConsoleContext } from '../context.js';
import { DefenderStore, type DefenderRecord } from '../defenders/defender-store.js';
import { consoleErrors } from '../errors.js';
import { plainRule, RuleStore } from '../rules/rule-store.js';
import { ROLES, route } from './route.js';

export type { ActionDecision, MyHost };

export const CONNECTED_WINDOW_MS = 30_000;

/** Headline capabilities, in summary order, and the actions each needs. */
export const CAPABILITIES: readonly { readonly name: string; readonly actions: readonly string[] }[] = [
  { name: 'run containers', actions: ['container_create', 'container_start'] },
  { name: 'list containers', actions: ['container_list'] },
  { name: 'exec', actions: ['container_exec_create', 'container_exec_start'] },
  { name: 'build images', actions: ['image_build'] },
  { name: 'pull images', actions: ['image_create'] },
  { name: 'push images', actions: ['image_push'] },
];
export const HEADLINE_ACTIONS: readonly string[] = [...new Set(CAPABILITIES.flatMap((c) => c.actions))];

/** "can run containers, list containers; cannot exec, build images" from the headline decisions. */
export function summarisePermissions(permissions: Readonly<Record<string, ActionDecision>>): string {
  const can: string[] = [];
  const cannot: string[] = [];
  for (const c of CAPABILITIES) (c.actions.every((a) => permissions[a]?.allowed) ? can : cannot).push(c.name);
  if (cannot.length === 0) return `can ${can.join(', ')}`;
  if (can.length === 0) return `cannot ${cannot.join(', ')} (other actions only)`;
  return `can ${can.join(', ')}; cannot ${cannot.join(', ')}`;
}

const WILDCARD_BIND = new Set(['', '0.0.0.0', '::', '[::]', '*']);

export function dockerHostOf(d: Pick<DefenderRecord, 'address' | 'listener'>): string | null {
  if (d.listener.type === 'unix') return `unix://${d.listener.path}`;
  const i = d.listener.address.lastIndexOf(':');
  const bind = d.listener.address.slice(0, i);
  const port = d.listener.address.slice(i + 1);
  const host = WILDCARD_BIND.has(bind) ? d.address : bind.replace(/^\[|\]$/g, '');
  if (!host) return null;
  return `tcp://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

function reachable(policy: Policy, identity: Identity, host: string): boolean {
  return ACTIONS.some((a) => a !== UNKNOWN_ACTION && explain(policy, identity, host, a).allowed);
}

export function meRoutes(ctx: ConsoleContext) {
  const rules = new RuleStore(ctx.db, ctx.policy);
  const defenders = new DefenderStore(ctx.db, ctx.policy);
  return [
    route({
      method: 'GET', path: '/api/v1/me/hosts', tag: 'me', access: ROLES,
      summary: 'The Defender hosts you can reach: DOCKER_HOST, listener type, connected, and what you may do there (headline actions and a one-line summary)',
      handler({ principal }) {
        if (principal.kind !== 'user') throw consoleErrors.forbidden('not a user session');
        const identity: Identity = { user: principal.name, groups: [...principal.groups] };
        const { rules: all, version } = rules.snapshot();
        const policy = compilePolicy(all.map(plainRule));
        const now = Date.now();
        const items: MyHost[] = [];
        for (let after: string | null = null, batch: DefenderRecord[]; (batch = defenders.list(500, after)).length > 0; after = batch[batch.length - 1]!.hostName) {
          for (const d of batch) {
            if (!reachable(policy, identity, d.hostName)) continue;
            const permissions = Object.fromEntries(
              HEADLINE_ACTIONS.map((a) => {
                const decision = explain(policy, identity, d.hostName, a);
                return [a, { allowed: decision.allowed, rule: decision.rule }];
              }),
            );
            items.push({
              hostName: d.hostName,
              dockerHost: dockerHostOf(d),
              listener: d.listener.type,
              connected: d.activeListener !== null && d.lastSeen !== null && now - Date.parse(d.lastSeen) < CONNECTED_WINDOW_MS,
              lastSeen: d.lastSeen,
              permissions,
              summary: summarisePermissions(permissions),
            });
          }
        }
        return { identity, version, items };
      },
    }),
  ];
}
