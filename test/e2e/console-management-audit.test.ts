// The Console's own audit trail, through the real `drawbridge console` binary: every API request that can change
// something is recorded with who sent it, from where, the route, what it named and the status — refusals too — and
// admins and auditors read it; reads are not recorded, bodies (passwords, secret values) never are.
// (Sign-ins on the companion's sign-in page are recorded as well: console-oauth.test.ts drives them in Chromium.)
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startConsoleProcess, type ConsoleProcess } from '../support/console-process.js';

interface Entry { id: number; time: string; actor: string | null; role: string | null; address: string; method: string; route: string; target: Record<string, string>; status: number }

let c: ConsoleProcess;
let admin: string;

/** The entries recorded since `mark` (an id), oldest first, as [actor, method, route, target, status]. */
async function since(mark: number): Promise<[string | null, string, string, Record<string, string>, number][]> {
  const r = await c.call('GET', '/api/v1/console-audit?limit=500', { token: admin });
  expect(r.status, r.text).toBe(200);
  return (r.body.items as Entry[]).filter((e) => e.id > mark).reverse().map((e) => [e.actor, e.method, e.route, e.target, e.status]);
}
const lastId = async (): Promise<number> => ((await c.call('GET', '/api/v1/console-audit?limit=1', { token: admin })).body.items[0]?.id as number | undefined) ?? 0;

beforeAll(async () => {
  c = await startConsoleProcess();
  admin = await c.adminToken();
});

afterAll(async () => {
  await c?.stop({ remove: true });
});

describe("the Console's audit", () => {
  test('records user and rule changes with the actor, refusals and failed logins too, and no reads or bodies', async () => {
    const mark = await lastId();
    const password = 'eve-password-123456';
    expect((await c.call('POST', '/api/v1/users', { token: admin, json: { name: 'eve', password, role: 'user', groups: ['devs'] } })).status).toBe(201);
    expect((await c.call('POST', '/api/v1/auth/login', { json: { username: 'eve', password: 'not-her-password' } })).status).toBe(401);
    const eve = await c.login('eve', password);
    expect((await c.call('POST', '/api/v1/rules', { token: eve, json: { name: 'eve-rule', effect: 'allow', groups: ['devs'] } })).status).toBe(403);
    expect((await c.call('PATCH', '/api/v1/users/eve', { token: admin, json: { role: 'admin' } })).status).toBe(200);
    expect((await c.call('GET', '/api/v1/users', { token: admin })).status).toBe(200); // a read: not recorded
    expect((await c.call('POST', '/api/v1/rules', { token: admin, json: { name: 'temp', effect: 'allow', groups: ['devs'] } })).status).toBe(201);
    expect((await c.call('DELETE', '/api/v1/rules/temp', { token: admin })).status).toBe(204);
    expect((await c.call('DELETE', '/api/v1/users/eve', { token: admin })).status).toBe(204);

    expect(await since(mark)).toEqual([
      ['admin', 'POST', '/api/v1/users', {}, 201],
      [null, 'POST', '/api/v1/auth/login', { user: 'eve' }, 401],
      [null, 'POST', '/api/v1/auth/login', { user: 'eve' }, 200],
      ['eve', 'POST', '/api/v1/rules', {}, 403],
      ['admin', 'PATCH', '/api/v1/users/{name}', { name: 'eve' }, 200],
      ['admin', 'POST', '/api/v1/rules', {}, 201],
      ['admin', 'DELETE', '/api/v1/rules/{name}', { name: 'temp' }, 204],
      ['admin', 'DELETE', '/api/v1/users/{name}', { name: 'eve' }, 204],
    ]);
    const all = await c.call('GET', '/api/v1/console-audit?limit=500', { token: admin });
    expect(all.text).not.toContain(password);
    expect(all.text).not.toContain('not-her-password');
    const entry = (all.body.items as Entry[]).find((e) => e.route === '/api/v1/users/{name}' && e.method === 'PATCH')!;
    expect(entry).toMatchObject({ role: 'admin', address: '127.0.0.1' });
    expect(Date.parse(entry.time)).toBeGreaterThan(Date.now() - 60_000);
  });

  test('auditors and admins read it (filtered by actor, paged); users and operators may not', async () => {
    const make = async (name: string, role: string): Promise<string> => {
      await c.createUser(admin, { name, password: `${name}-password-123`, role });
      return c.login(name, `${name}-password-123`);
    };
    const auditor = await make('audra', 'auditor');
    for (const [token, status] of [[auditor, 200], [await make('opal', 'operator'), 403], [await make('ursula', 'user'), 403], ['', 401]] as const) {
      expect((await c.call('GET', '/api/v1/console-audit', token ? { token } : {})).status).toBe(status);
    }
    const mine = await c.call('GET', '/api/v1/console-audit?actor=ADMIN&limit=2', { token: auditor });
    expect(mine.body.items).toHaveLength(2);
    expect(mine.body.items.every((e: Entry) => e.actor === 'admin')).toBe(true);
    const next = await c.call('GET', `/api/v1/console-audit?actor=admin&limit=2&cursor=${mine.body.nextCursor}`, { token: auditor });
    expect(next.body.items[0].id).toBeLessThan(mine.body.items[1].id);
  });
});
