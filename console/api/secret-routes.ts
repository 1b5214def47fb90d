/**
 * Secrets: stores, the built-in store's values, secret rules, sync status and refresh — the `secrets` route group.
 *
 * - Stores and their values are admin only (they hold credentials and secrets). Secret rules: admin edits,
 *   operator and auditor read. Status (never a value) for admin, operator, auditor.
 * - No endpoint ever answers a secret value or a store credential; credentials read back as "<set>".
 * - A rule created or changed answers with the outcome of fetching its values (`sync.failed`): the rule is kept
 *   either way, and a Defender refuses to create a container whose secret it does not have.
 * - `POST /secret-stores/{name}/test` answers 200 with `{ok:false,error:{code,message}}` when the store fails:
 *   the call worked, the store did not.
 */
import { z } from 'zod';
import { RulesError } from '../../shared/policy/access-rules.js';
import type { ConsoleContext } from '../context.js';
import { consoleErrors } from '../errors.js';
import { storeName } from '../secrets/store-registry.js';
import { StoreError } from '../secrets/stores/secret-provider.js';
import { created, noContent, route, type Reply, type Role } from './route.js';

const ADMIN: readonly Role[] = ['admin'];
const READERS: readonly Role[] = ['admin', 'operator', 'auditor'];

const storeBody = z.strictObject({
  name: storeName,
  kind: z.string().describe('builtin | vault | aws-secrets-manager | aws-ssm | azure-key-vault | gcp-secret-manager | cyberark'),
  config: z.record(z.string(), z.unknown()).default({}).describe('the kind\'s settings; credentials are write-only'),
});
const storeUpdate = z.strictObject({ config: z.record(z.string(), z.unknown()).describe('the new settings; credentials left out (or "<set>") are kept') });
const valueBody = z.strictObject({ path: z.string().trim().min(1).max(1024), value: z.string().max(64 * 1024) });
const pathQuery = z.strictObject({ path: z.string().trim().min(1).max(1024) });
const field = (description: string) => z.unknown().optional().describe(description);
const ruleBody = z.looseObject({
  name: field('required: unique (case-insensitive); letters, digits, . _ -'),
  mode: field('required: env | file'),
  fileAccess: field('file mode: root (default) | all'),
  secrets: field('required: [{name, store, path, key?}]'),
  scope: field("{images, labels, containers, hosts}: patterns, each default ['*']"),
  allow: field('leak paths allowed anyway: commit, export, copy (default none)'),
});
const createRuleBody = ruleBody.extend({ position: z.number().int().min(0).optional().describe('0-based place; default last') });

function ruleProblems(e: RulesError): Reply {
  const problems = e.problems.map((p) => ({ rule: p.rule, field: p.field, message: p.message }));
  const fieldOf = (f: string | null): string => (f ? `body.${f}` : 'body');
  return { status: 400, json: { error: { code: 'invalid_request', message: e.problems.map((p) => `${fieldOf(p.field)}: ${p.message}`).join('; '), field: fieldOf(e.problems[0]?.field ?? null), problems } } };
}

async function catchRules<T>(run: () => Promise<T> | T): Promise<T | Reply> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof RulesError) return ruleProblems(e);
    throw e;
  }
}

const sameSecret = (store: string, path: string) => (ref: { store: string; path: string }) => ref.store.toLowerCase() === store.toLowerCase() && ref.path === path;

export function secretRoutes(ctx: ConsoleContext) {
  const { stores, builtin, rules, values, sync } = ctx.secrets;
  const builtinStore = (name: string): string => {
    const info = stores.get(name);
    if (info.kind !== 'builtin') throw consoleErrors.invalid_request(`'${info.name}' is a ${info.kind} store: its values live in that store, not in the Console`);
    return info.name;
  };
  return [
    route({
      method: 'GET', path: '/api/v1/secret-stores', tag: 'secrets', access: ADMIN,
      summary: 'The secret stores (credentials shown as "<set>")',
      handler: () => ({ items: stores.list() }),
    }),
    route({
      method: 'POST', path: '/api/v1/secret-stores', tag: 'secrets', access: ADMIN,
      summary: 'Add a secret store',
      body: storeBody,
      handler({ body }) {
        const info = stores.create(body.name, body.kind, body.config);
        ctx.log.info('secret store created', { store: info.name, kind: info.kind });
        return created(info);
      },
    }),
    route({
      method: 'GET', path: '/api/v1/secret-stores/{name}', tag: 'secrets', access: ADMIN,
      summary: 'One secret store',
      handler: ({ params }) => stores.get(params.name!),
    }),
    route({
      method: 'PUT', path: '/api/v1/secret-stores/{name}', tag: 'secrets', access: ADMIN,
      summary: 'Change a store\'s settings (the kind stays; credentials left out are kept, unless where they are sent changes: 400); then re-fetch its secrets',
      body: storeUpdate,
      async handler({ params, body }) {
        const info = stores.update(params.name!, body.config);
        ctx.log.info('secret store changed', { store: info.name });
        const report = await sync.syncAll(`store ${info.name} changed`);
        return { store: info, sync: report };
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/secret-stores/{name}', tag: 'secrets', access: ADMIN,
      summary: 'Delete a store no secret rule uses',
      handler({ params }) {
        stores.delete(params.name!, rules.rulesUsingStore(params.name!));
        return noContent();
      },
    }),
    route({
      method: 'POST', path: '/api/v1/secret-stores/{name}/test', tag: 'secrets', access: ADMIN,
      summary: 'Check that the store answers and accepts its credentials',
      async handler({ params }) {
        let provider;
        try {
          provider = ctx.secrets.providerFor(params.name!);
          await provider.testConnection();
          return { ok: true };
        } catch (e) {
          if (e instanceof StoreError) return { ok: false, error: { code: e.code, message: e.message } };
          throw e;
        } finally {
          provider?.close();
        }
      },
    }),
    route({
      method: 'GET', path: '/api/v1/secret-stores/{name}/values', tag: 'secrets', access: ADMIN,
      summary: 'The paths held by a built-in store (never the values)',
      handler: ({ params }) => ({ items: builtin.paths(builtinStore(params.name!)) }),
    }),
    route({
      method: 'PUT', path: '/api/v1/secret-stores/{name}/values', tag: 'secrets', access: ADMIN,
      summary: 'Set a value in a built-in store; the rules that use it get the new value',
      body: valueBody,
      async handler({ params, body }) {
        const store = builtinStore(params.name!);
        try {
          builtin.put(store, body.path, body.value);
        } catch (e) {
          if (e instanceof StoreError) throw consoleErrors.invalid_request(`body.value: ${e.message}`);
          throw e;
        }
        ctx.log.info('built-in secret set', { store, path: body.path });
        return { sync: await sync.syncSome(sameSecret(store, body.path), `built-in secret ${store}:${body.path} set`) };
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/secret-stores/{name}/values', tag: 'secrets', access: ADMIN,
      summary: 'Remove a value from a built-in store (rules that use it keep the last value, with an error)',
      query: pathQuery,
      async handler({ params, query }) {
        const store = builtinStore(params.name!);
        if (!builtin.delete(store, query.path)) throw consoleErrors.not_found(`the built-in store '${store}' has no secret '${query.path}'`);
        await sync.syncSome(sameSecret(store, query.path), `built-in secret ${store}:${query.path} removed`);
        return noContent();
      },
    }),
    route({
      method: 'GET', path: '/api/v1/secret-rules', tag: 'secrets', access: READERS,
      summary: 'The secret rules in order, with the policy version',
      handler: () => ({ items: rules.entries().map((e) => ({ position: e.position, ...e.rule })), version: ctx.policy.current() }),
    }),
    route({
      method: 'POST', path: '/api/v1/secret-rules', tag: 'secrets', access: ADMIN,
      summary: 'Add a secret rule; its values are fetched first (failures come back in `sync.failed`)',
      body: createRuleBody,
      handler({ body }) {
        const { position, ...rule } = body;
        return catchRules(async () => {
          const r = await ctx.secrets.createRule(rule, position);
          ctx.log.info('secret rule created', { rule: r.rule.name, version: r.version });
          return created(r);
        });
      },
    }),
    route({
      method: 'GET', path: '/api/v1/secret-rules/{name}', tag: 'secrets', access: READERS,
      summary: 'One secret rule',
      handler({ params }) {
        const e = rules.get(params.name!);
        if (!e) throw consoleErrors.not_found(`no secret rule named '${params.name}'`);
        return { position: e.position, ...e.rule };
      },
    }),
    route({
      method: 'PUT', path: '/api/v1/secret-rules/{name}', tag: 'secrets', access: ADMIN,
      summary: 'Replace a secret rule (it may be renamed; its place stays); its values are fetched first',
      body: ruleBody,
      handler({ params, body }) {
        return catchRules(async () => {
          const r = await ctx.secrets.replaceRule(params.name!, body);
          ctx.log.info('secret rule changed', { rule: r.rule.name, version: r.version });
          return r;
        });
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/secret-rules/{name}', tag: 'secrets', access: ADMIN,
      summary: 'Delete a secret rule (values no other rule uses leave the Console)',
      handler({ params }) {
        ctx.secrets.deleteRule(params.name!);
        return noContent();
      },
    }),
    route({
      method: 'GET', path: '/api/v1/secrets/status', tag: 'secrets', access: READERS,
      summary: 'Every secret the rules use: whether a value is held, when it was fetched, the latest error',
      handler: () => ({ items: values.status() }),
    }),
    route({
      method: 'POST', path: '/api/v1/secrets/refresh', tag: 'secrets', access: ADMIN,
      summary: 'Fetch every secret from its store now; Defenders get changed values at once',
      handler: async () => ({ sync: await sync.syncAll('refresh') }),
    }),
  ];
}
