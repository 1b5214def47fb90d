/**
 * `POST /api/v1/explain`: may user U (groups G) run action A on host H, and which rule decides — answered by the
 * same engine the Defenders enforce with (shared/policy/evaluate-policy.ts), over the Console's current rules.
 *
 * - admin, operator and auditor may ask about anyone; an access user only about themselves: `user` must be
 *   their own name and `groups`, when given, exactly their own groups (in any order and case).
 * - `groups` omitted means the groups the Console has for that user (the OUs its certificates carry), or none
 *   for a name it does not know.
 * - `action` must be one the route table knows (`unknown` included), so a typo is an error, not a denial.
 */
import { z } from 'zod';
import { ACTIONS } from '../../shared/docker/route-table.js';
import { compilePolicy, explain } from '../../shared/policy/evaluate-policy.js';
import type { ConsoleContext } from '../context.js';
import { consoleErrors, FieldError } from '../errors.js';
import { RuleStore, plainRule } from '../rules/rule-store.js';
import { foldName } from '../../shared/policy/match-pattern.js';
import { ROLES, route } from './route.js';

// eslint-disable-next-line no-control-regex
const name = z.string().trim().min(1, 'must not be empty').max(256).regex(/^[^\u0000-\u001f\u007f]+$/, 'must be printable');

const sameSet = (a: readonly string[], b: readonly string[]): boolean => {
  const norm = (l: readonly string[]) => [...new Set(l.map(foldName))].sort().join('\n');
  return norm(a) === norm(b);
};

export function explainRoutes(ctx: ConsoleContext) {
  const rules = new RuleStore(ctx.db, ctx.policy);
  return [
    route({
      method: 'POST', path: '/api/v1/explain', tag: 'rules', access: ROLES,
      summary: 'May `user` (in `groups`) run `action` on `host`, and which rule decides (access users: only themselves)',
      body: z.strictObject({ user: name, groups: z.array(name).max(256).optional(), host: name, action: z.string().trim().min(1) }),
      handler({ principal, body }) {
        if (!ACTIONS.includes(body.action)) throw new FieldError('body.action', `'${body.action}' is not a Docker action (see shared/docker/route-table.ts)`);
        let groups: readonly string[] | undefined = body.groups;
        let user = body.user;
        if (principal.kind === 'user' && principal.role === 'user') {
          if (foldName(body.user) !== foldName(principal.name)) throw consoleErrors.forbidden(`an access user may only ask about themselves (user '${principal.name}')`);
          if (groups !== undefined && !sameSet(groups, principal.groups)) throw consoleErrors.forbidden('an access user may only ask about their own groups (omit groups to use them)');
          // Asked as their certificates say it: the Defender decides on the name the Console put there.
          user = principal.name;
          groups = principal.groups;
        }
        groups ??= ctx.users.get(user)?.groups ?? [];
        const { rules: all, version } = rules.snapshot();
        const identity = { user, groups: [...groups] };
        const decision = explain(compilePolicy(all.map(plainRule)), identity, body.host, body.action);
        return { allowed: decision.allowed, rule: decision.rule, index: decision.index, reason: decision.reason, identity, host: body.host, action: body.action, version };
      },
    }),
  ];
}
