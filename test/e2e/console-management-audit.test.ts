// The Console's own audit trail, through the real `drawbridge console` binary: every API request that can change
// something is recorded with who sent it, from where, the route, what it named and the status — refusals too — and
// admins and auditors read it; reads are not recorded, bodies (passwords, secret values) never are.
// (Sign-ins on the companion's sign-in page are recorded as well: console-oauth.test.ts drives them in Chromium.)
import { describe, expect, test } from 'vitest';
import { consoleForFile } from '../support/console-process.js';

interface Entry { id: number; time: string; actor: string | null; role: string | null; address: string; method: string; route: string; target: Record<string, string>; status: number }

const cp = consoleForFile();

/** The entries recorded since `mark` (an id), oldest first, as [actor, method, route, target, status]. */
async function since(mark: number): Promise<[string | null, string, string, Record<string, string>, number][]> {
  const r = await cp.proc.call('GET', '/api/v1/console-audit?limit=500', { token: cp.admin });
  expect(r.status, r.text).toBe(200);
  return (r.body.items as Entry[]).filter((e) => e.id > mark).reverse().map((e) => [e.actor, e.method, e.route, e.target, e.status]);
}
const lastId = async (): Promise<number> => ((await cp.proc.call('GET', '/api/v1/console-audit?limit=1', { token: cp.admin })).body.items[0]?.id as number | undefined) ?? 0;

describe("the Console's audit", () => {
  test('records user and rule changes with the actor, refusals and failed logins too, and no reads or bodies', async () => {
    const mark = await lastId();
    const password = 'eve-password-123456';
    expect((await cp.proc.call('POST', '/api/v1/users', { token: cp.admin, json: { name: 'eve', password, role: 'user', groups: ['devs'] } })).status).toBe(201);
    expect((await cp.proc.call('POST', '/api/v1/auth/login', { json: { username: 'eve', password: 'not-her-password' } })).status).toBe(401);
    const eve = await cp.proc.login('eve', password);
    expect((await cp.proc.call('POST', '/api/v1/rules', { token: eve, json: { name: 'eve-rule', effect: 'allow', groups: ['devs'] } })).status).toBe(403);
    expect((await cp.proc.call('PATCH', '/api/v1/users/eve', { token: cp.admin, json: { role: 'admin' } })).status).toBe(200);
    expect((await cp.proc.call('GET', '/api/v1/users', { token: cp.admin })).status).toBe(200); // a read: not recorded
    expect((await cp.proc.call('POST', '/api/v1/rules', { token: cp.admin, json: { name: 'temp', effect: 'allow', groups: ['devs'] } })).status).toBe(201);
    expect((await cp.proc.call('DELETE', '/api/v1/rules/temp', { token: cp.admin })).status).toBe(204);
    expect((await cp.proc.call('DELETE', '/api/v1/users/eve', { token: cp.admin })).status).toBe(204);

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
    const all = await cp.proc.call('GET', '/api/v1/console-audit?limit=500', { token: cp.admin });
    expect(all.text).not.toContain(password);
    expect(all.text).not.toContain('not-her-password');
    const entry = (all.body.items as Entry[]).find((e) => e.route === '/api/v1/users/{name}' && e.method === 'PATCH')!;
    expect(entry).toMatchObject({ role: 'admin', address: '127.0.0.1' });
    expect(Date.parse(entry.time)).toBeGreaterThan(Date.now() - 60_000);
  });

  test('auditors and admins read it (filtered by actor, paged); users and operators may not', async () => {
    const make = async (name: string, role: string): Promise<string> => {
      await cp.proc.createUser(cp.admin, { name, password: `${name}-password-123`, role });
      return cp.proc.login(name, `${name}-password-123`);
    };
    const auditor = await make('audra', 'auditor');
    for (const [token, status] of [[auditor, 200], [await make('opal', 'operator'), 403], [await make('ursula', 'user'), 403], ['', 401]] as const) {
      expect((await cp.proc.call('GET', '/api/v1/console-audit', token ? { token } : {})).status).toBe(status);
    }
    const mine = await cp.proc.call('GET', '/api/v1/console-audit?actor=ADMIN&limit=2', { token: auditor });
    expect(mine.body.items).toHaveLength(2);
    expect(mine.body.items.every((e: Entry) => e.actor === 'admin')).toBe(true);
    const next = await cp.proc.call('GET', `/api/v1/console-audit?actor=admin&limit=2&cursor=${mine.body.nextCursor}`, { token: auditor });
    expect(next.body.items[0].id).toBeLessThan(mine.body.items[1].id);
  });
});
