/**
 * Access rules: ordered CRUD, move, and YAML import/export in the Defender's rules file format; with the explain
 * endpoint (explain-routes.ts), the `rules` route group.
 *
 * - admin and operator edit; auditor reads; access users may not read rules at all.
 * - The list ends with the built-in default deny-all rule, read-only (`default: true`); the policy version comes
 *   with it. The list is not paginated: an ordered policy only means something whole, with its version.
 * - Validation is the shared schema's (the Defender's messages). A problem with the rule answers 400 with
 *   `field` naming it (`body.effect`, `body.actions.0`) and every problem in `problems`.
 * - `GET /rules/export` and `PUT /rules/import` are matched before `/rules/{name}`; a rule literally named
 *   `export` or `import` is still reachable with its name percent-encoded (`/rules/%65xport`).
 */
import { z } from 'zod';
import { formatRuleProblem, RulesError, type AccessRule } from '../../shared/policy/access-rules.js';
import type { ConsoleContext } from '../context.js';
import { consoleErrors } from '../errors.js';
import { DEFAULT_RULE_NAME, isDefaultRuleName, RuleStore, type StoredRule } from '../rules/rule-store.js';
import { explainRoutes } from './explain-routes.js';
import { created, noContent, route, type Reply, type Role } from './route.js';

const READERS: readonly Role[] = ['admin', 'operator', 'auditor'];
const EDITORS: readonly Role[] = ['admin', 'operator'];

export interface RuleEntry extends AccessRule {
  readonly id: number | null;
  readonly position: number;
  readonly default: boolean;
}

function entry(r: StoredRule): RuleEntry {
  return { id: r.id, position: r.position, name: r.name, effect: r.effect, users: r.users, groups: r.groups, hosts: r.hosts, actions: r.actions, default: false };
}

function defaultEntry(position: number): RuleEntry {
  return { id: null, position, name: DEFAULT_RULE_NAME, effect: 'deny', users: ['*'], groups: ['*'], hosts: ['*'], actions: ['*'], default: true };
}

function listing(rules: readonly StoredRule[], version: number): { items: RuleEntry[]; version: number } {
  return { items: [...rules.map(entry), defaultEntry(rules.length)], version };
}

/** 400 with every problem; `field` is the first problem's, under `body.` (a rule given as JSON). */
function ruleProblems(e: RulesError, asFile: boolean): Reply {
  const problems = e.problems.map((p) => ({ rule: p.rule, index: p.index, field: p.field, line: p.line, message: p.message }));
  if (asFile) {
    const message = `the rules file was not imported (nothing changed): ${e.problems.map(formatRuleProblem).join('; ')}`;
    return { status: 400, json: { error: { code: 'invalid_request', message, problems } } };
  }
  const fieldOf = (f: string | null): string => (f ? `body.${f}` : 'body');
  const message = e.problems.map((p) => `${fieldOf(p.field)}: ${p.message}`).join('; ');
  return { status: 400, json: { error: { code: 'invalid_request', message, field: fieldOf(e.problems[0]?.field ?? null), problems } } };
}

function catchRules<T>(asFile: boolean, run: () => T): T | Reply {
  try {
    return run();
  } catch (e) {
    if (e instanceof RulesError) return ruleProblems(e, asFile);
    throw e;
  }
}

// The rule itself is checked by the shared schema (validateRules: the Defender's messages, unknown fields
// rejected); these declarations only name the fields for the OpenAPI document and let every value through.
const field = (description: string) => z.unknown().optional().describe(description);
const ruleBody = z.looseObject({
  name: field('required: unique (case-insensitive), printable, at most 100 characters'),
  effect: field('required: allow | deny'),
  users: field("patterns (a string or a list); '-x' excludes; default ['*']"),
  groups: field("patterns; default ['*'], which also matches a user without groups"),
  hosts: field("patterns; default ['*']"),
  actions: field("action patterns; default ['*'], which never matches 'unknown'"),
});
const createBody = ruleBody.extend({
  position: z.number().int().min(0).optional().describe('0-based place to insert at; default: last, just above the default rule'),
});
const moveBody = z
  .strictObject({ to: z.number().int().min(0).optional(), direction: z.enum(['up', 'down']).optional() })
  .refine((b) => (b.to === undefined) !== (b.direction === undefined), { message: "give either 'to' (a 0-based position) or 'direction' ('up' or 'down')" });

export function ruleRoutes(ctx: ConsoleContext) {
  const rules = new RuleStore(ctx.db, ctx.policy);
  return [
    route({
      method: 'GET', path: '/api/v1/rules', tag: 'rules', access: READERS,
      summary: 'The rules in evaluation order, then the default deny-all rule, with the policy version',
      handler() {
        const { rules: all, version } = rules.snapshot();
        return listing(all, version);
      },
    }),
    route({
      method: 'POST', path: '/api/v1/rules', tag: 'rules', access: EDITORS,
      summary: 'Add a rule (the rules file schema) at `position`, by default last (just above the default rule)',
      body: createBody,
      handler({ body }) {
        const { position, ...rule } = body;
        return catchRules(false, () => {
          const r = rules.create(rule, position);
          return created({ rule: entry(r.rule), version: r.version });
        });
      },
    }),
    route({
      method: 'GET', path: '/api/v1/rules/export', tag: 'rules', access: READERS,
      summary: "The rules as a Defender's rules file (YAML)",
      handler(): Reply {
        const { text, version } = rules.exportFile();
        return {
          status: 200,
          text,
          contentType: 'text/yaml; charset=utf-8',
          headers: { 'Content-Disposition': 'attachment; filename="rules.yaml"', 'X-Drawbridge-Policy-Version': String(version) },
        };
      },
    }),
    route({
      method: 'PUT', path: '/api/v1/rules/import', tag: 'rules', access: EDITORS,
      summary: "Replace every rule with a Defender's rules file (YAML); a file with any problem changes nothing",
      body: 'text',
      handler({ body }) {
        return catchRules(true, () => {
          const r = rules.importFile(body);
          ctx.log.info('rules imported', { rules: r.rules.length, version: r.version });
          return listing(r.rules, r.version);
        });
      },
    }),
    route({
      method: 'GET', path: '/api/v1/rules/{name}', tag: 'rules', access: READERS,
      summary: 'One rule (the default rule included)',
      handler({ params }) {
        const name = params.name!;
        if (isDefaultRuleName(name)) return defaultEntry(rules.entries().length);
        const r = rules.get(name);
        if (!r) throw consoleErrors.not_found(`no rule named '${name}'`);
        return entry(r);
      },
    }),
    route({
      method: 'PUT', path: '/api/v1/rules/{name}', tag: 'rules', access: EDITORS,
      summary: 'Replace a rule (it may be renamed); its position stays',
      body: ruleBody,
      handler({ params, body }) {
        return catchRules(false, () => {
          const r = rules.replace(params.name!, body);
          return { rule: entry(r.rule), version: r.version };
        });
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/rules/{name}', tag: 'rules', access: EDITORS,
      summary: 'Delete a rule',
      handler({ params }) {
        rules.delete(params.name!);
        return noContent();
      },
    }),
    route({
      method: 'POST', path: '/api/v1/rules/{name}/move', tag: 'rules', access: EDITORS,
      summary: 'Move a rule to a 0-based position (`to`) or one step (`direction`: up | down); answers the new order',
      body: moveBody,
      handler({ params, body }) {
        return catchRules(false, () => {
          const r = rules.move(params.name!, body.to !== undefined ? { to: body.to } : { direction: body.direction! });
          return listing(r.rules, r.version);
        });
      },
    }),
    ...explainRoutes(ctx),
  ];
}
