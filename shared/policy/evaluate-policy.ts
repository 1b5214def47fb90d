/**
 * The one policy engine: the Defender enforces with it, the Console and the companion explain with it.
 *
 * - Rules are evaluated top to bottom; the first rule whose users, groups, hosts and actions all match decides.
 * - No rule matches → denied by the default deny-all rule.
 * - The action `unknown` (a request the route table does not know) is allowed only by an allow rule naming
 *   `unknown` literally: wildcards in allow rules never match it. Deny rules match it like any action (`*`, or
 *   a list of only exclusions), so a deny rule written for "everything" also denies what is not known.
 */
import type { Identity } from '../identity/certificate-identity.js';
import type { AccessRule } from './access-rules.js';
import { compilePatternList, foldName, matchPatternList, type PatternList } from './match-pattern.js';

export const UNKNOWN_ACTION = 'unknown';
export const DEFAULT_DENY_RULE = 'the default deny-all rule';

interface CompiledRule {
  readonly rule: AccessRule;
  readonly users: PatternList;
  readonly groups: PatternList;
  readonly hosts: PatternList;
  readonly actions: PatternList;
  readonly namesUnknown: boolean;
}

export interface Policy {
  readonly rules: readonly AccessRule[];
  readonly compiled: readonly CompiledRule[];
}

export interface Decision {
  readonly allowed: boolean;
  /** The deciding rule's name, or null for the default deny-all rule. */
  readonly rule: string | null;
  /** 0-based position of the deciding rule, or null for the default deny-all rule. */
  readonly index: number | null;
  /** Why, in one sentence for people (logs, `drawbridge can`, the Console's explain). */
  readonly reason: string;
}

export function compilePolicy(rules: readonly AccessRule[]): Policy {
  return {
    rules,
    compiled: rules.map((rule) => ({
      rule,
      users: compilePatternList(rule.users),
      groups: compilePatternList(rule.groups),
      hosts: compilePatternList(rule.hosts),
      actions: compilePatternList(rule.actions),
      namesUnknown: rule.actions.some((a) => foldName(a) === UNKNOWN_ACTION),
    })),
  };
}

function describe(what: string, matched: string): string {
  return matched === '' ? `any ${what}` : `${what} '${matched}'`;
}

/** May `identity` run `action` on `host`, and which rule decides. */
export function explain(policy: Policy, identity: Identity, host: string, action: string): Decision {
  const isUnknown = action === UNKNOWN_ACTION;
  for (const [index, c] of policy.compiled.entries()) {
    if (isUnknown && !c.namesUnknown && c.rule.effect === 'allow') continue;
    const user = matchPatternList(c.users, [identity.user]);
    if (user === null) continue;
    const group = matchPatternList(c.groups, identity.groups);
    if (group === null) continue;
    const h = matchPatternList(c.hosts, [host]);
    if (h === null) continue;
    if (matchPatternList(c.actions, [action]) === null) continue;
    const allowed = c.rule.effect === 'allow';
    return {
      allowed,
      rule: c.rule.name,
      index,
      reason: `rule '${c.rule.name}' (${c.rule.effect}) matches ${describe('user', user)}, ${describe('group', group)}, ${describe('host', h)} and action '${action}'`,
    };
  }
  return { allowed: false, rule: null, index: null, reason: `no rule matches user '${identity.user}' with action '${action}' on host '${host}'; ${DEFAULT_DENY_RULE} applies` };
}

/** What the docker CLI prints after "Error response from daemon: " when a request is denied (Prisma's shape). */
export function denialMessage(action: string, user: string, decision: Decision): string {
  const by = decision.rule === null ? DEFAULT_DENY_RULE : `rule '${decision.rule}'`;
  return `[Drawbridge] The command '${action}' denied for user '${user}' by ${by}`;
}
