// Rules in the Console through the real binary and HTTP stack: roles, validation, ordering, the default rule,
// the policy version, YAML export/import, and an exported file enforced by a real Defender in front of dockerd.
import { request } from 'node:https';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseRulesFile } from '../../shared/policy/access-rules.js';
import { startConsoleProcess, type ConsoleProcess } from '../support/console-process.js';
import { startDefenderProcess } from '../support/defender-process.js';
import type {} from '../support/global-setup.js'; // the ProvidedContext keys

const DEFAULT = 'Default - deny all';
const PASSWORD = 'a-long-enough-password';

let cp: ConsoleProcess;
let admin: string;
let operator: string;
let auditor: string;
let bruce: string; // access user, groups devs + oncall

beforeAll(async () => {
  cp = await startConsoleProcess();
  admin = await cp.adminToken();
  for (const [name, role, groups] of [['olivia', 'operator', []], ['audrey', 'auditor', []], ['bruce', 'user', ['devs', 'oncall']]] as const) {
    const r = await cp.call('POST', '/api/v1/users', { token: admin, json: { name, password: PASSWORD, role, groups } });
    expect(r.status, r.text).toBe(201);
  }
  [operator, auditor, bruce] = (await Promise.all(['olivia', 'audrey', 'bruce'].map((n) => cp.login(n, PASSWORD)))) as [string, string, string];
});
afterAll(async () => {
  await cp?.stop({ remove: true });
});

const list = async (token = auditor) => {
  const r = await cp.call<{ items: { name: string; position: number; default: boolean }[]; version: number }>('GET', '/api/v1/rules', { token });
  expect(r.status, r.text).toBe(200);
  return r.body;
};
const names = async () => (await list()).items.map((r) => r.name);
const add = (rule: unknown, token = operator) => cp.call('POST', '/api/v1/rules', { token, json: rule });
const explainAs = (token: string, q: { user: string; groups?: string[]; host: string; action: string }) => cp.call('POST', '/api/v1/explain', { token, json: q });
const enc = encodeURIComponent;

async function replaceAll(text: string): Promise<void> {
  const r = await cp.call('PUT', '/api/v1/rules/import', { token: operator, text });
  expect(r.status, r.text).toBe(200);
}

describe('roles', () => {
  beforeAll(() => replaceAll('rules:\n  - {name: devs-ping, effect: allow, groups: [devs], actions: [docker_ping]}\n'));

  it('lets admin and operator edit, the auditor only read', async () => {
    expect((await add({ name: 'by-admin', effect: 'deny', actions: ['image_push'] }, admin)).status).toBe(201);
    expect((await add({ name: 'by-operator', effect: 'deny', actions: ['image_push'] }, operator)).status).toBe(201);
    const r = await add({ name: 'by-auditor', effect: 'deny' }, auditor);
    expect(r.status).toBe(403);
    for (const [method, path] of [['PUT', '/api/v1/rules/by-admin'], ['DELETE', '/api/v1/rules/by-admin'], ['POST', '/api/v1/rules/by-admin/move'], ['PUT', '/api/v1/rules/import']] as const) {
      const denied = await cp.call(method, path, { token: auditor, ...(method === 'DELETE' ? {} : { json: { to: 0 } }) });
      expect(denied.status, `${method} ${path}: ${denied.text}`).toBe(403);
    }
    expect((await cp.call('GET', '/api/v1/rules/by-admin', { token: auditor })).body).toMatchObject({ name: 'by-admin', position: 1, effect: 'deny' });
    expect((await cp.call('GET', '/api/v1/rules/export', { token: auditor })).status).toBe(200);
    expect(await names()).toEqual(['devs-ping', 'by-admin', 'by-operator', DEFAULT]);
  });

  it('never shows rules to access users, or to anyone without a session', async () => {
    for (const path of ['/api/v1/rules', '/api/v1/rules/devs-ping', '/api/v1/rules/export']) {
      const r = await cp.call('GET', path, { token: bruce });
      expect(r.status, path).toBe(403);
      expect(r.text).not.toContain('devs-ping');
      expect((await cp.call('GET', path)).status, path).toBe(401);
    }
  });

  it('lets an access user explain only themselves', async () => {
    const mine = await explainAs(bruce, { user: 'bruce', host: 'dev-a', action: 'docker_ping' });
    expect(mine.status, mine.text).toBe(200);
    expect(mine.body).toMatchObject({ allowed: true, rule: 'devs-ping', index: 0, identity: { user: 'bruce', groups: ['devs', 'oncall'] } });
    // Asked in another case, it is answered for the name the certificates carry (what the Defender decides on).
    const upper = await explainAs(bruce, { user: 'BRUCE', groups: ['oncall', 'Devs'], host: 'dev-a', action: 'docker_ping' });
    expect([upper.status, upper.body.identity?.user]).toEqual([200, 'bruce']);
    for (const q of [{ user: 'alice', host: 'dev-a', action: 'docker_ping' }, { user: 'bruce', groups: ['devs', 'oncall', 'ops'], host: 'dev-a', action: 'docker_ping' }, { user: 'bruce', groups: [], host: 'dev-a', action: 'docker_ping' }]) {
      const r = await explainAs(bruce, q);
      expect(r.status, JSON.stringify(q)).toBe(403);
      expect(r.body.error.message).toMatch(/only ask about (themselves|their own groups)/);
    }
  });

  it('lets staff explain anyone, with the groups the Console knows by default', async () => {
    const r = await explainAs(auditor, { user: 'bruce', host: 'dev-a', action: 'docker_ping' });
    expect(r.body).toMatchObject({ allowed: true, rule: 'devs-ping', identity: { groups: ['devs', 'oncall'] } });
    const stranger = await explainAs(operator, { user: 'someone', host: 'dev-a', action: 'docker_ping' });
    expect(stranger.body).toMatchObject({ allowed: false, rule: null, index: null, identity: { groups: [] } });
    expect(stranger.body.reason).toContain('default deny-all rule applies');
  });
});

describe('validation', () => {
  beforeAll(() => replaceAll('rules:\n  - {name: existing, effect: allow}\n'));

  it.each([
    [{ name: 'x', effect: 'permit' }, 'body.effect', 'must be "allow" or "deny"'],
    [{ name: 'x', effect: 'deny', group: ['devs'] }, 'body', 'unknown field(s): group'],
    [{ name: 'x', effect: 'deny', actions: ['container_create', 'contaner_exec_*'] }, 'body.actions.1', "'contaner_exec_*' matches no Docker action"],
    [{ name: 'x', effect: 'deny', users: [] }, 'body.users', 'must list at least one pattern'],
    [{ effect: 'deny' }, 'body.name', 'expected string'],
    [{ name: 'EXISTING', effect: 'deny' }, 'body.name', 'duplicates the name of rule #1'],
    [{ name: 'x', effect: 'deny', position: 2 }, 'body.position', 'must be between 0 and 1'],
    [{ name: 'x', effect: 'deny', position: -1 }, 'body.position', ''],
    // patterns that could never match what their author meant
    [{ name: 'x', effect: 'deny', users: 'alice, bob' }, 'body.users.0', "'alice, bob' holds a comma"],
    [{ name: 'x', effect: 'deny', groups: ['ops -leads'] }, 'body.groups.0', 'looks like a list written without brackets'],
    [{ name: 'x', effect: 'allow', users: ['- bob'] }, 'body.users.0', 'is not an exclusion'],
    [{ name: 'x', effect: 'deny', hosts: ['prod a'] }, 'body.hosts.0', 'cannot match a host name'],
    [{ name: 'default-deny-all', effect: 'allow' }, 'body.name', "is the default deny-all rule's name"],
  ])('rejects %j naming %s', async (rule, field, message) => {
    const r = await add(rule);
    expect(r.status, r.text).toBe(400);
    expect(r.body.error).toMatchObject({ code: 'invalid_request', field });
    expect(r.body.error.message).toContain(message);
  });

  it('lists every problem of a rule', async () => {
    const r = await add({ name: 'x', effect: 'maybe', hosts: [''] });
    expect(new Set(r.body.error.problems.map((p: { field: string }) => p.field))).toEqual(new Set(['effect', 'hosts.0']));
    expect(await names()).toEqual(['existing', DEFAULT]);
  });

  it('checks explain input', async () => {
    const r = await explainAs(auditor, { user: 'bruce', host: 'dev-a', action: 'container_launch' });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ field: 'body.action' });
    expect((await explainAs(auditor, { user: '', host: 'dev-a', action: 'docker_ping' })).body.error.field).toBe('body.user');
    expect((await explainAs(auditor, { user: 'bruce', host: 'dev-a', action: 'unknown' })).status).toBe(200);
  });

  it('checks move input', async () => {
    for (const [body, field] of [[{}, 'body'], [{ to: 0, direction: 'up' }, 'body'], [{ direction: 'sideways' }, 'body.direction'], [{ to: 1 }, 'body.to']] as const) {
      const r = await cp.call('POST', '/api/v1/rules/existing/move', { token: operator, json: body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.field).toBe(field);
    }
    expect((await cp.call('POST', '/api/v1/rules/nope/move', { token: operator, json: { to: 0 } })).status).toBe(404);
  });
});

describe('ordering', () => {
  beforeAll(() => replaceAll('rules:\n  - {name: devs-on-dev, effect: allow, groups: [devs], hosts: [dev-*]}\n'));
  const exec = { user: 'bruce', groups: ['devs'], host: 'dev-a', action: 'container_exec_create' };

  it('inserts at a position, and the first matching rule decides', async () => {
    expect((await explainAs(auditor, exec)).body).toMatchObject({ allowed: true, rule: 'devs-on-dev', index: 0 });
    const r = await add({ name: 'no-exec-for-bruce', effect: 'deny', users: ['bruce'], actions: ['container_exec_*'], position: 0 });
    expect(r.status, r.text).toBe(201);
    expect(r.body.rule).toMatchObject({ name: 'no-exec-for-bruce', position: 0, default: false, groups: ['*'] });
    expect((await explainAs(auditor, exec)).body).toMatchObject({ allowed: false, rule: 'no-exec-for-bruce', index: 0 });
    expect((await add({ name: 'last', effect: 'allow', actions: ['docker_ping'] })).body.rule.position).toBe(2);
    const { items } = await list();
    expect(items.map((i) => [i.position, i.name, i.default])).toEqual([[0, 'no-exec-for-bruce', false], [1, 'devs-on-dev', false], [2, 'last', false], [3, DEFAULT, true]]);
  });

  it('moves rules up and down', async () => {
    const down = await cp.call('POST', '/api/v1/rules/no-exec-for-bruce/move', { token: operator, json: { direction: 'down' } });
    expect(down.status, down.text).toBe(200);
    expect(down.body.items.map((i: { name: string }) => i.name)).toEqual(['devs-on-dev', 'no-exec-for-bruce', 'last', DEFAULT]);
    expect((await explainAs(auditor, exec)).body).toMatchObject({ allowed: true, rule: 'devs-on-dev', index: 0 });
    await cp.call('POST', '/api/v1/rules/last/move', { token: operator, json: { to: 0 } });
    await cp.call('POST', '/api/v1/rules/no-exec-for-bruce/move', { token: operator, json: { direction: 'up' } });
    expect(await names()).toEqual(['last', 'no-exec-for-bruce', 'devs-on-dev', DEFAULT]);
    expect((await explainAs(auditor, exec)).body).toMatchObject({ allowed: false, rule: 'no-exec-for-bruce', index: 1 });
    const r = await cp.call('POST', '/api/v1/rules/devs-on-dev/move', { token: operator, json: { direction: 'down' } });
    expect(r.status).toBe(409);
    expect(r.body.error.message).toContain(`'${DEFAULT}' always stays below it`);
  });

  it('edits in place (renaming too) and deletes', async () => {
    const r = await cp.call('PUT', '/api/v1/rules/NO-EXEC-FOR-BRUCE', { token: operator, json: { name: 'no-exec', effect: 'deny', groups: ['devs'], actions: ['container_exec_*'] } });
    expect(r.status, r.text).toBe(200);
    expect(r.body.rule).toMatchObject({ name: 'no-exec', position: 1, users: ['*'] });
    expect((await cp.call('GET', '/api/v1/rules/no-exec-for-bruce', { token: auditor })).status).toBe(404);
    expect((await cp.call('DELETE', '/api/v1/rules/last', { token: operator })).status).toBe(204);
    expect(await names()).toEqual(['no-exec', 'devs-on-dev', DEFAULT]);
  });

  it('reaches rules named like the export and import endpoints by percent-encoding them', async () => {
    expect((await add({ name: 'export', effect: 'deny', actions: ['image_push'] })).status).toBe(201);
    expect((await cp.call('GET', '/api/v1/rules/%65xport', { token: auditor })).body).toMatchObject({ name: 'export', actions: ['image_push'] });
    expect((await cp.call('DELETE', '/api/v1/rules/export', { token: operator })).status).toBe(204);
  });
});

it('documents the rules API in the OpenAPI document', async () => {
  const doc = (await cp.call('GET', '/api/v1/openapi.json')).body;
  expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/api/v1/rules', '/api/v1/rules/export', '/api/v1/rules/import', '/api/v1/rules/{name}', '/api/v1/rules/{name}/move', '/api/v1/explain']));
  expect(doc.paths['/api/v1/rules'].post.requestBody.content['application/json'].schema.properties).toHaveProperty('position');
  expect(doc.paths['/api/v1/rules'].get['x-roles']).toEqual(['admin', 'operator', 'auditor']);
});

describe('the default rule', () => {
  it('is listed last, read-only, and cannot be changed', async () => {
    await replaceAll('rules:\n  - {name: a, effect: allow}\n');
    const { items } = await list();
    expect(items.at(-1)).toEqual({ id: null, position: 1, name: DEFAULT, default: true, effect: 'deny', users: ['*'], groups: ['*'], hosts: ['*'], actions: ['*'] });
    expect((await cp.call('GET', `/api/v1/rules/${enc(DEFAULT)}`, { token: auditor })).body).toMatchObject({ default: true, position: 1 });
    const attempts = [
      await add({ name: 'default - deny ALL', effect: 'deny' }),
      await cp.call('PUT', `/api/v1/rules/${enc(DEFAULT)}`, { token: operator, json: { name: DEFAULT, effect: 'allow' } }),
      await cp.call('PUT', '/api/v1/rules/a', { token: operator, json: { name: DEFAULT, effect: 'deny' } }),
      await cp.call('POST', `/api/v1/rules/${enc(DEFAULT)}/move`, { token: operator, json: { direction: 'up' } }),
      await cp.call('DELETE', `/api/v1/rules/${enc(DEFAULT)}`, { token: admin }),
    ];
    for (const r of attempts) {
      expect(r.status, r.text).toBe(409);
      expect(r.body.error.message).toMatch(/built-in default rule: it always comes last and cannot be (created|edited|moved|deleted)/);
    }
    const imported = await cp.call('PUT', '/api/v1/rules/import', { token: operator, text: `rules:\n  - name: ${DEFAULT}\n    effect: allow\n` });
    expect(imported.status).toBe(400);
    expect(imported.body.error.problems[0]).toMatchObject({ field: 'name', line: 2 });
    expect((await list()).items).toEqual(items);
  });
});

describe('policy version', () => {
  it('moves on each change and not on reads or failed changes', async () => {
    let v = (await list()).version;
    const step = async (what: string, r: Promise<{ status: number; text: string }>, changes: boolean) => {
      const res = await r;
      const now = (await list()).version;
      expect(now, `${what}: ${res.status} ${res.text}`).toBe(changes ? v + 1 : v);
      v = now;
    };
    await step('list', cp.call('GET', '/api/v1/rules', { token: admin }), false);
    await step('export', cp.call('GET', '/api/v1/rules/export', { token: admin }), false);
    await step('explain', explainAs(admin, { user: 'x', host: 'h', action: 'docker_ping' }), false);
    await step('create', add({ name: 'v1', effect: 'allow' }), true);
    await step('bad create', add({ name: 'v1', effect: 'allow' }), false);
    await step('update', cp.call('PUT', '/api/v1/rules/v1', { token: operator, json: { name: 'v1', effect: 'deny' } }), true);
    await step('move', cp.call('POST', '/api/v1/rules/v1/move', { token: operator, json: { to: 0 } }), true);
    await step('bad move', cp.call('POST', '/api/v1/rules/v1/move', { token: operator, json: { direction: 'up' } }), false);
    await step('delete', cp.call('DELETE', '/api/v1/rules/v1', { token: operator }), true);
    await step('import', cp.call('PUT', '/api/v1/rules/import', { token: operator, text: 'rules: []\n' }), true);
    await step('bad import', cp.call('PUT', '/api/v1/rules/import', { token: operator, text: 'rules: [\n' }), false);
    const created = await add({ name: 'answers', effect: 'allow' });
    expect(created.body.version).toBe(v + 1);
    expect((await explainAs(admin, { user: 'x', host: 'h', action: 'docker_ping' })).body.version).toBe(v + 1);
  });
});

const RULES = `rules:
  - name: "no exec: bruce"
    effect: deny
    users: [bruce]
    actions: ['container_exec_*']
  - name: devs-on-dev
    effect: allow
    groups: [devs, -interns]
    hosts: ['dev-*']
    actions: ['container_*', docker_ping, -container_commit]
  - name: ops-everything
    effect: allow
    groups: ops
  - name: break-glass
    effect: allow
    users: [root-admin]
    actions: [unknown]
`;

describe('export and import', () => {
  it('round-trips the rules file, and a broken file changes nothing', async () => {
    await replaceAll(RULES);
    const before = await list();
    const exported = await cp.call('GET', '/api/v1/rules/export', { token: auditor });
    expect(exported.status).toBe(200);
    expect(exported.headers['content-type']).toMatch(/^text\/yaml/);
    expect(exported.headers['x-drawbridge-policy-version']).toBe(String(before.version));
    expect(parseRulesFile(exported.text)).toEqual(parseRulesFile(RULES));

    const broken = exported.text.replace('effect: allow', 'effect: permit').replace('docker_ping', 'docker_pnig');
    const r = await cp.call('PUT', '/api/v1/rules/import', { token: operator, text: broken });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('nothing changed');
    expect(r.body.error.problems).toEqual([
      expect.objectContaining({ rule: 'devs-on-dev', field: 'effect', line: expect.any(Number), message: 'must be "allow" or "deny"' }),
      expect.objectContaining({ rule: 'devs-on-dev', field: 'actions.1', line: expect.any(Number) }),
    ]);
    expect(r.body.error.problems[0].line).toBe(broken.split('\n').findIndex((l) => l.includes('permit')) + 1);
    expect(await list()).toEqual(before);

    await replaceAll(exported.text);
    const after = await list();
    expect(after.version).toBe(before.version + 1);
    const withoutId = (items: readonly object[]) => items.map((i) => ({ ...i, id: undefined }));
    expect(withoutId(after.items)).toEqual(withoutId(before.items));
    expect((await cp.call('GET', '/api/v1/rules/export', { token: auditor })).text).toBe(exported.text);
  });

  it('exports a file a real Defender enforces as explain says', async () => {
    await replaceAll(RULES);
    const exported = (await cp.call('GET', '/api/v1/rules/export', { token: auditor })).text;
    const defender = await startDefenderProcess({ dockerHost: inject('dockerHost'), rules: exported, hostName: 'dev-a' });
    try {
      const cases = [
        [{ user: 'bruce', groups: ['devs'] }, 'GET', '/_ping', 'docker_ping'],
        [{ user: 'carol', groups: ['devs'] }, 'GET', '/_ping', 'docker_ping'],
        [{ user: 'ivan', groups: ['devs', 'interns'] }, 'GET', '/_ping', 'docker_ping'],
        [{ user: 'carol', groups: ['devs'] }, 'GET', '/info', 'docker_info'],
        [{ user: 'olga', groups: ['ops'] }, 'GET', '/info', 'docker_info'],
        [{ user: 'bruce', groups: ['devs'] }, 'POST', '/containers/nope/exec', 'container_exec_create'],
      ] as const;
      const outcomes = new Set<boolean>();
      for (const [identity, method, path, action] of cases) {
        const answer = await explainAs(auditor, { user: identity.user, groups: [...identity.groups], host: 'dev-a', action });
        const cert = await defender.ca.issueClientCert(identity);
        const status = await viaDefender(defender.port, defender.ca.cert, cert, method, path);
        const label = `${identity.user} ${action}: explain ${JSON.stringify(answer.body)}, Defender ${status}`;
        outcomes.add(answer.body.allowed);
        if (answer.body.allowed) expect(status, label).not.toBe(403);
        else expect(status, label).toBe(403);
      }
      expect([...outcomes].sort()).toEqual([false, true]);
      expect(defender.log()).not.toMatch(/rules.*(error|rejected)/i);
    } finally {
      await defender.stop();
    }
  });
});

function viaDefender(port: number, ca: string, client: { cert: string; key: string }, method: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, ca, cert: client.cert, key: client.key, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume().on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(method === 'POST' ? '{"Cmd":["true"]}' : undefined);
  });
}
