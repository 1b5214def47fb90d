// Console users through the real binary and HTTP stack: create, read, update and delete; names unique whatever
// their case; what a change does to the user's sessions; the last-admin guard; pagination. (Login, roles and the
// error shape: console-auth.test.ts.)
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, startConsoleProcess, type ApiResponse, type ConsoleProcess } from '../support/console-process.js';
import { makeCsr } from '../support/csr.js';

const PASSWORD = 'a-long-enough-password';
const WRONG_LOGIN = { error: { code: 'unauthenticated', message: 'wrong user name or password' } };

let cp: ConsoleProcess;
let admin: string;

beforeAll(async () => {
  cp = await startConsoleProcess();
  admin = await cp.adminToken();
});
afterAll(async () => {
  await cp?.stop({ remove: true });
});

const createUser = (name: string, extra: { role?: string; groups?: string[] } = {}) => cp.createUser(admin, { name, password: PASSWORD, ...extra });
const me = (token: string) => cp.call('GET', '/api/v1/auth/me', { token });
const patchUser = (name: string, json: unknown, token = admin) => cp.call('PATCH', `/api/v1/users/${encodeURIComponent(name)}`, { token, json });

describe('users', () => {
  it('creates a user (role user, no groups by default) and never answers the password', async () => {
    const carol = await createUser('carol', { role: 'operator', groups: ['devs', 'ops', 'devs'] });
    expect(carol).toEqual({ name: 'carol', role: 'operator', groups: ['devs', 'ops'], source: 'local', createdAt: expect.any(String), disabled: false });
    expect(Math.abs(Date.parse(carol.createdAt) - Date.now())).toBeLessThan(60_000);
    expect(await createUser('dave')).toMatchObject({ name: 'dave', role: 'user', groups: [] });
    const read = await cp.call('GET', '/api/v1/users/carol', { token: admin });
    expect(read.body).toEqual(carol);
    expect(read.text).not.toMatch(/scrypt|password/i);
    expect((await cp.call('GET', '/api/v1/users/CAROL', { token: admin })).body.name).toBe('carol');
    expect((await me(await cp.login('carol', PASSWORD))).body).toMatchObject({ name: 'carol', role: 'operator', groups: ['devs', 'ops'] });
  });

  it('refuses a duplicate name, whatever its case: 409', async () => {
    await createUser('erin');
    for (const name of ['erin', 'Erin', 'ERIN', ' erin ']) {
      const r = await cp.call('POST', '/api/v1/users', { token: admin, json: { name, password: `${PASSWORD}-2`, role: 'admin' } });
      expect(r.status, name).toBe(409);
      expect(r.body.error).toEqual({ code: 'conflict', message: expect.stringContaining('already exists') });
    }
    expect((await cp.call('GET', '/api/v1/users/erin', { token: admin })).body.role).toBe('user');
    expect((await cp.call('POST', '/api/v1/auth/login', { json: { username: 'erin', password: `${PASSWORD}-2` } })).status).toBe(401);
    // Beyond ASCII too: access rules match names in any letter case (É is é), so two such users would be one to them.
    await createUser('émile');
    for (const name of ['Émile', 'ÉMILE']) {
      const r = await cp.call('POST', '/api/v1/users', { token: admin, json: { name, password: `${PASSWORD}-2`, role: 'admin' } });
      expect([r.status, r.body.error?.message], name).toEqual([409, `a user named 'émile' already exists (user names are the same in any letter case)`]);
    }
    // And in the one fold the rules use (foldName): the micro sign is μ, the Kelvin sign K, a final ς is σ.
    for (const [first, second] of [['µx', 'μx'], ['kate', '\u212Aate'], ['ασ', 'ΑΣ']]) {
      await createUser(first!);
      const r = await cp.call('POST', '/api/v1/users', { token: admin, json: { name: second, password: `${PASSWORD}-2`, role: 'admin' } });
      expect([r.status, r.body.error?.message], second).toEqual([409, `a user named '${first}' already exists (user names are the same in any letter case)`]);
    }
  });

  it.each(['-admins', 'a*', '*', 'alice,bob', 'ops -leads'])('refuses a user or group name that rules cannot name exactly: %j', async (bad) => {
    const asUser = await cp.call('POST', '/api/v1/users', { token: admin, json: { name: bad, password: PASSWORD, role: 'user' } });
    expect([asUser.status, asUser.body.error?.field]).toEqual([400, 'body.name']);
    expect(asUser.body.error.message).toContain("must not start with '-' or hold '*', ',' or ' -'");
    const asGroup = await cp.call('POST', '/api/v1/users', { token: admin, json: { name: `g-${bad.length}`, password: PASSWORD, role: 'user', groups: ['ok', bad] } });
    expect([asGroup.status, asGroup.body.error?.field]).toEqual([400, 'body.groups.1']);
  });

  it.each([
    ['groups', { groups: ['ops', 'oncall'] }, { groups: ['ops', 'oncall'] }],
    ['role', { role: 'auditor' }, { role: 'auditor' }],
    ['password', { password: 'a-brand-new-password' }, {}],
  ] as const)('PATCH %s changes it and ends the user\'s sessions', async (what, patch, expected) => {
    const name = `frank-${what}`;
    await createUser(name, { groups: ['devs'] });
    const [one, two] = [await cp.login(name, PASSWORD), await cp.login(name, PASSWORD)];
    const r = await patchUser(name, patch);
    expect(r.status, r.text).toBe(200);
    expect(r.body).toEqual({ name, role: 'user', groups: ['devs'], source: 'local', createdAt: expect.any(String), disabled: false, ...expected });
    expect((await me(one)).status).toBe(401);
    expect((await me(two)).status).toBe(401);
    const password = what === 'password' ? 'a-brand-new-password' : PASSWORD;
    if (what === 'password') expect((await cp.call('POST', '/api/v1/auth/login', { json: { username: name, password: PASSWORD } })).status).toBe(401);
    expect((await me(await cp.login(name, password))).body).toMatchObject({ name, role: 'user', groups: ['devs'], ...expected });
  });

  it('PATCH and DELETE of an unknown user: 404; DELETE ends sessions and the account', async () => {
    expect((await patchUser('ghost', { role: 'admin' })).status).toBe(404);
    expect((await cp.call('DELETE', '/api/v1/users/ghost', { token: admin })).status).toBe(404);
    await createUser('gina');
    const token = await cp.login('gina', PASSWORD);
    const del = await cp.call('DELETE', '/api/v1/users/GINA', { token: admin });
    expect([del.status, del.text]).toEqual([204, '']);
    expect((await me(token)).status).toBe(401);
    expect((await cp.call('GET', '/api/v1/users/gina', { token: admin })).status).toBe(404);
    expect((await cp.call('POST', '/api/v1/auth/login', { json: { username: 'gina', password: PASSWORD } })).body).toEqual(WRONG_LOGIN);
    expect((await cp.call('DELETE', '/api/v1/users/gina', { token: admin })).status).toBe(404);
    await createUser('gina'); // the name is free again
  });

  it('keeps the last enabled admin: no delete, disable or demotion (409) until a second admin exists', async () => {
    const last = /'admin' is the last enabled admin/;
    const refusals = async (token: string) => {
      for (const [method, json] of [['DELETE', undefined], ['PATCH', { disabled: true }], ['PATCH', { role: 'operator' }], ['PATCH', { role: 'user', groups: [] }]] as const) {
        const r = await cp.call(method, '/api/v1/users/admin', { token, ...(json ? { json } : {}) });
        expect(r.status, `${method} ${JSON.stringify(json)}: ${r.text}`).toBe(409);
        expect(r.body.error.code).toBe('conflict');
        expect(r.body.error.message).toMatch(last);
      }
      const still = await me(token);
      expect([still.status, still.body.role]).toEqual([200, 'admin']); // a refused change ends no session
    };
    await refusals(admin);

    // A disabled second admin does not count.
    await createUser('ada', { role: 'admin' });
    expect((await patchUser('ada', { disabled: true })).status).toBe(200);
    await refusals(admin);
    expect((await patchUser('ada', { disabled: false })).status).toBe(200);

    // With two enabled admins, 'admin' can be demoted (which ends its sessions)…
    const demoted = await patchUser('admin', { role: 'operator' });
    expect([demoted.status, demoted.body.role]).toEqual([200, 'operator']);
    expect((await me(admin)).status).toBe(401);
    // …and now ada is the last one.
    const ada = await cp.login('ada', PASSWORD);
    for (const [method, json] of [['DELETE', undefined], ['PATCH', { disabled: true }], ['PATCH', { role: 'auditor' }]] as const) {
      const r = await cp.call(method, '/api/v1/users/ada', { token: ada, ...(json ? { json } : {}) });
      expect([r.status, r.body.error?.message], method).toEqual([409, "'ada' is the last enabled admin; make another admin first"]);
    }
    expect((await patchUser('admin', { role: 'admin' }, ada)).body.role).toBe('admin');
    admin = await cp.login('admin', ADMIN_PASSWORD);
    // Disabling and deleting an admin works once another is enabled.
    expect((await patchUser('ada', { disabled: true })).body.disabled).toBe(true);
    expect((await me(ada)).status).toBe(401);
    expect((await cp.call('DELETE', '/api/v1/users/ada', { token: admin })).status).toBe(204);
    await refusals(admin);
  });

  it('pages through users with limit and cursor, in case-insensitive name order', async () => {
    const five = ['pg-Delta', 'pg-alpha', 'PG-echo', 'pg-Charlie', 'pg-bravo'];
    for (const name of five) await createUser(name);
    const all = await cp.call('GET', '/api/v1/users?limit=500', { token: admin });
    expect(all.body.nextCursor).toBeNull();
    const names: string[] = all.body.items.map((u: { name: string }) => u.name);
    expect(names).toEqual([...names].sort((a, b) => (a.toLowerCase() < b.toLowerCase() ? -1 : 1)));
    expect(names.filter((n) => n.toLowerCase().startsWith('pg-'))).toEqual(['pg-alpha', 'pg-bravo', 'pg-Charlie', 'pg-Delta', 'PG-echo']);

    for (const limit of [1, 2, 3, names.length]) {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const r: ApiResponse<any> = await cp.call('GET', `/api/v1/users?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { token: admin });
        expect(r.status, r.text).toBe(200);
        expect(r.body.items.length).toBeLessThanOrEqual(limit);
        expect(r.body.nextCursor === null).toBe(r.body.items.length < limit);
        seen.push(...r.body.items.map((u: { name: string }) => u.name));
        cursor = r.body.nextCursor;
        expect(++pages).toBeLessThanOrEqual(names.length + 1);
      } while (cursor !== null);
      expect(seen, `limit=${limit}`).toEqual(names);
    }

    // The page that starts right after pg-bravo.
    const start = names.indexOf('pg-bravo');
    const after = await cp.call('GET', `/api/v1/users?limit=2&cursor=${Buffer.from('pg-bravo').toString('base64url')}`, { token: admin });
    expect(after.body.items.map((u: { name: string }) => u.name)).toEqual(names.slice(start + 1, start + 3));
  });
});

describe('a change to a user while one of their requests is still arriving', () => {
  /** Sends `POST path` with `token`'s head now and its JSON body when `send()` is called; the answer's status. */
  async function heldBack(token: string, path: string, json: unknown): Promise<{ send(): Promise<number> }> {
    const body = JSON.stringify(json);
    const socket = connect({ host: '127.0.0.1', port: cp.port, ca: cp.caPem });
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`);
    await new Promise((resolve) => setTimeout(resolve, 300)); // the head is in, the Console waits for the body
    return {
      async send() {
        socket.end(body);
        await new Promise((resolve) => socket.once('close', resolve));
        return Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
      },
    };
  }

  it.each([
    ['deleted', (name: string) => cp.call('DELETE', `/api/v1/users/${name}`, { token: admin })],
    ['moved out of a group', (name: string) => patchUser(name, { groups: ['devs'] })],
    ['disabled', (name: string) => patchUser(name, { disabled: true })],
  ])('%s: a certificate request whose body was held back is refused (authenticated again once the body is in)', async (_what, change) => {
    const name = `held-${_what.split(' ')[0]}`;
    await createUser(name, { groups: ['ops'] });
    const request = await heldBack(await cp.login(name, PASSWORD), '/api/v1/certs', { csr: (await makeCsr()).csr });
    expect((await change(name)).status).toBeLessThan(300);
    expect(await request.send()).toBe(401);
    const certs = await cp.call('GET', `/api/v1/certs?user=${name}`, { token: admin });
    expect(certs.body.items).toEqual([]);
  });

  it('an unchanged user gets the certificate the same way', async () => {
    await createUser('held-steady', { groups: ['ops'] });
    const request = await heldBack(await cp.login('held-steady', PASSWORD), '/api/v1/certs', { csr: (await makeCsr()).csr });
    expect(await request.send()).toBe(201);
  });
});

// ---- processes of our own: first start, restarts, bad configuration ----
