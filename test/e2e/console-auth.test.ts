// Console authentication through the real binary and HTTP stack: login, sessions and logout; what each role may do
// with users; the error shape; the OpenAPI document against what the server answers. (Users CRUD, the last-admin
// guard and pagination: console-users.test.ts; first start, restarts and data at rest: console-startup.test.ts.)
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConsoleProcess, type ApiResponse, type ConsoleProcess } from '../support/console-process.js';

const PASSWORD = 'a-long-enough-password';
const SESSION_TTL = 900; // --session-ttl for the shared Console
const MAX_BODY = 1024 * 1024;
const WRONG_LOGIN = { error: { code: 'unauthenticated', message: 'wrong user name or password' } };

let cp: ConsoleProcess;
let admin: string;
const tokens: Record<'operator' | 'auditor' | 'user', string> = { operator: '', auditor: '', user: '' };

beforeAll(async () => {
  cp = await startConsoleProcess({ args: ['--session-ttl', String(SESSION_TTL)] });
  admin = await cp.adminToken();
  for (const [name, role] of [['olivia', 'operator'], ['audrey', 'auditor'], ['bruce', 'user']] as const) {
    await cp.createUser(admin, { name, password: PASSWORD, role, groups: role === 'user' ? ['devs'] : [] });
    tokens[role] = await cp.login(name, PASSWORD);
  }
});
afterAll(async () => {
  await cp?.stop({ remove: true });
});

const me = (token: string) => cp.call('GET', '/api/v1/auth/me', { token });
const patchUser = (name: string, json: unknown, token = admin) => cp.call('PATCH', `/api/v1/users/${encodeURIComponent(name)}`, { token, json });

/** A request with exactly these headers and body bytes (the ConsoleClient always sets a content type). */
function rawCall(method: string, path: string, headers: Record<string, string>, body?: Buffer | string): Promise<ApiResponse<any>> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, cp.url), { method, headers, ca: cp.caPem }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => {
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode ?? 0, body: parsed, text, headers: res.headers });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('login and sessions', () => {
  it('answers the right password with a bearer token that expires --session-ttl from now', async () => {
    const before = Date.now();
    const r = await cp.call('POST', '/api/v1/auth/login', { json: { username: 'bruce', password: PASSWORD } });
    const after = Date.now();
    expect(r.status, r.text).toBe(200);
    expect(r.body).toEqual({ token: expect.stringMatching(/^dbs_[A-Za-z0-9_-]{43}$/), expiresAt: expect.any(String), user: { name: 'bruce', role: 'user', groups: ['devs'] } });
    const expires = Date.parse(r.body.expiresAt);
    expect(r.body.expiresAt).toBe(new Date(expires).toISOString());
    expect(expires).toBeGreaterThanOrEqual(before + SESSION_TTL * 1000 - 1000);
    expect(expires).toBeLessThanOrEqual(after + SESSION_TTL * 1000 + 1000);
    const mine = await me(r.body.token);
    expect(mine.status, mine.text).toBe(200);
    expect(mine.body).toEqual({ name: 'bruce', role: 'user', groups: ['devs'], sessionExpiresAt: r.body.expiresAt });
    // Each login is a session of its own.
    expect(await cp.login('bruce', PASSWORD)).not.toBe(r.body.token);
  });

  it('answers a wrong password and an unknown user alike: 401, same body', async () => {
    const wrong = await cp.call('POST', '/api/v1/auth/login', { json: { username: 'bruce', password: `${PASSWORD}!` } });
    const unknown = await cp.call('POST', '/api/v1/auth/login', { json: { username: 'nobody-here', password: PASSWORD } });
    const empty = await cp.call('POST', '/api/v1/auth/login', { json: { username: 'bruce', password: PASSWORD.toUpperCase() } });
    for (const r of [wrong, unknown, empty]) {
      expect(r.status, r.text).toBe(401);
      expect(r.body).toEqual(WRONG_LOGIN);
    }
    expect(wrong.text).toBe(unknown.text);
  });

  it('slows down guessing: after 5 failures in a row for a name (any case) the next attempt waits, even with the right password', async () => {
    await cp.createUser(admin, { name: 'gus', password: PASSWORD });
    const login = (username: string, password: string) => cp.call('POST', '/api/v1/auth/login', { json: { username, password } });
    for (let i = 0; i < 5; i++) expect((await login('gus', `guess-${i}`)).status).toBe(401);
    const refused = await login('GUS', PASSWORD);
    expect([refused.status, refused.body]).toEqual([429, { error: { code: 'too_many_requests', message: "too many failed logins for 'GUS': try again in 1 s" } }]);
    expect((await login('bruce', PASSWORD)).status).toBe(200); // other names are not held up
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect((await login('gus', PASSWORD)).status).toBe(200);
    expect((await login('gus', 'one-more-guess')).status).toBe(401); // a success starts the count again
  });

  it('takes the user name case-insensitively and answers the stored spelling', async () => {
    const r = await cp.call('POST', '/api/v1/auth/login', { json: { username: 'BRUCE', password: PASSWORD } });
    expect(r.status, r.text).toBe(200);
    expect(r.body.user.name).toBe('bruce');
  });

  it('refuses a disabled user with the same 401, ends their sessions at once, and lets them in again when enabled', async () => {
    await cp.createUser(admin, { name: 'dora', password: PASSWORD });
    const before = await cp.login('dora', PASSWORD);
    expect((await patchUser('dora', { disabled: true })).body).toMatchObject({ name: 'dora', disabled: true });
    const r = await cp.call('POST', '/api/v1/auth/login', { json: { username: 'dora', password: PASSWORD } });
    expect(r.status).toBe(401);
    expect(r.body).toEqual(WRONG_LOGIN);
    expect((await me(before)).status).toBe(401);
    expect((await patchUser('dora', { disabled: false })).body.disabled).toBe(false);
    expect((await me(before)).status).toBe(401); // re-enabling does not revive old sessions
    expect((await me(await cp.login('dora', PASSWORD))).status).toBe(200);
  });

  it('GET /auth/me answers who the token belongs to, for every role', async () => {
    for (const [role, name] of [['admin', 'admin'], ['operator', 'olivia'], ['auditor', 'audrey'], ['user', 'bruce']] as const) {
      const r = await me(role === 'admin' ? admin : tokens[role]);
      expect(r.status, r.text).toBe(200);
      expect(r.body).toMatchObject({ name, role });
    }
    const anonymous = await cp.call('GET', '/api/v1/auth/me');
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error).toEqual({ code: 'unauthenticated', message: expect.stringContaining('POST /api/v1/auth/login') });
  });

  it('POST /auth/logout ends that session only: the same token then gets 401', async () => {
    const [a, b] = [await cp.login('bruce', PASSWORD), await cp.login('bruce', PASSWORD)];
    const out = await cp.call('POST', '/api/v1/auth/logout', { token: a });
    expect(out.status, out.text).toBe(204);
    expect(out.text).toBe('');
    expect((await me(a)).status).toBe(401);
    expect((await cp.call('POST', '/api/v1/auth/logout', { token: a })).status).toBe(401);
    expect((await cp.call('POST', '/api/v1/certs/install-command', { token: a })).status).toBe(401);
    expect((await me(b)).status).toBe(200);
  });

  it('treats a garbage or forged token as no token: 401', async () => {
    const real = await cp.login('bruce', PASSWORD);
    const last = real.at(-1) === 'A' ? 'B' : 'A';
    for (const token of [
      'garbage',
      `dbs_${randomBytes(32).toString('base64url')}`, // well-formed, never issued
      `${real.slice(0, -1)}${last}`, // one character off
      createHash('sha256').update(real).digest('hex'), // what the database stores: not a credential
      `${real}x`,
    ]) {
      const r = await me(token);
      expect(r.status, token).toBe(401);
      expect(r.body.error.code).toBe('unauthenticated');
      expect((await cp.call('GET', '/api/v1/users', { token })).status).toBe(401);
    }
    expect((await rawCall('GET', '/api/v1/auth/me', { authorization: `Basic ${Buffer.from(`bruce:${PASSWORD}`).toString('base64')}` })).status).toBe(401);
    expect((await me(real)).status).toBe(200);
  });

  it('validates the login body', async () => {
    for (const [json, field] of [[{ username: 'bruce' }, 'body.password'], [{ password: PASSWORD }, 'body.username'], [{ username: 'bruce', password: PASSWORD, otp: '1' }, 'body'], [{ username: '', password: PASSWORD }, 'body.username']] as const) {
      const r = await cp.call('POST', '/api/v1/auth/login', { json });
      expect(r.status, JSON.stringify(json)).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'invalid_request', field });
    }
  });
});

describe('roles', () => {
  it.each(['user', 'operator', 'auditor'] as const)('refuses a %s every users endpoint: 403, nothing changed', async (role) => {
    const token = tokens[role];
    for (const [method, path, json] of [
      ['GET', '/api/v1/users', undefined],
      ['POST', '/api/v1/users', { name: `by-${role}`, password: PASSWORD, role: 'admin' }],
      ['GET', '/api/v1/users/admin', undefined],
      ['PATCH', '/api/v1/users/bruce', { role: 'admin' }],
      ['PATCH', '/api/v1/users/admin', { password: 'taken-over-password' }],
      ['DELETE', '/api/v1/users/admin', undefined],
    ] as const) {
      const r = await cp.call(method, path, { token, ...(json ? { json } : {}) });
      expect(r.status, `${method} ${path}: ${r.text}`).toBe(403);
      expect(r.body).toEqual({ error: { code: 'forbidden', message: 'your role may not do this (needs admin)' } });
    }
    expect((await cp.call('GET', `/api/v1/users/by-${role}`, { token: admin })).status).toBe(404);
    expect((await cp.call('GET', '/api/v1/users/bruce', { token: admin })).body.role).toBe('user');
    expect((await cp.call('GET', '/api/v1/users/admin', { token: admin })).body.role).toBe('admin');
    expect((await me(admin)).status).toBe(200); // the admin password was not changed (that would end the session)
  });

  it('asks anonymous callers to log in: 401 on every users endpoint', async () => {
    for (const [method, path] of [['GET', '/api/v1/users'], ['POST', '/api/v1/users'], ['GET', '/api/v1/users/admin'], ['PATCH', '/api/v1/users/admin'], ['DELETE', '/api/v1/users/admin']] as const) {
      const r = await cp.call(method, path, method === 'POST' || method === 'PATCH' ? { json: {} } : {});
      expect(r.status, `${method} ${path}`).toBe(401);
      expect(r.body.error.code).toBe('unauthenticated');
    }
  });

  it('lets an admin list and read users', async () => {
    const list = await cp.call('GET', '/api/v1/users?limit=500', { token: admin });
    expect(list.status, list.text).toBe(200);
    expect(list.body.items.map((u: { name: string }) => u.name)).toEqual(expect.arrayContaining(['admin', 'audrey', 'bruce', 'olivia']));
    expect(list.body.items.find((u: { name: string }) => u.name === 'olivia')).toEqual({ name: 'olivia', role: 'operator', groups: [], source: 'local', createdAt: expect.any(String), disabled: false });
    expect(list.text).not.toMatch(/scrypt|password/i);
  });
});

describe('the error shape', () => {
  it('names the field of a validation error: {"error": {code, message, field}}', async () => {
    const cases = [
      [{ name: 'shorty', password: 'short' }, { code: 'invalid_request', message: 'body.password: must be at least 12 characters', field: 'body.password' }],
      [{ name: 'extra', password: PASSWORD, colour: 'red' }, { code: 'invalid_request', message: 'body: unknown field(s): colour', field: 'body' }],
      [{ name: 'rooty', password: PASSWORD, role: 'root' }, { code: 'invalid_request', message: expect.stringMatching(/^body\.role: .*admin.*operator.*auditor.*user/), field: 'body.role' }],
      [{ name: 'a/b', password: PASSWORD }, { code: 'invalid_request', message: 'body.name: must be printable and contain no /', field: 'body.name' }],
      [{ name: 'grouper', password: PASSWORD, groups: 'devs' }, { code: 'invalid_request', message: expect.stringMatching(/^body\.groups: /), field: 'body.groups' }],
      [{ password: PASSWORD }, { code: 'invalid_request', message: expect.stringMatching(/^body\.name: /), field: 'body.name' }],
    ] as const;
    for (const [json, error] of cases) {
      const r = await cp.call('POST', '/api/v1/users', { token: admin, json });
      expect(r.status, r.text).toBe(400);
      expect(r.body).toEqual({ error });
    }
    const users = (await cp.call('GET', '/api/v1/users?limit=500', { token: admin })).body.items.map((u: { name: string }) => u.name);
    expect(users).not.toEqual(expect.arrayContaining(['shorty']));
    for (const name of ['shorty', 'extra', 'rooty', 'grouper']) expect(users).not.toContain(name);
    const patch = await patchUser('bruce', { password: 'too-short' });
    expect(patch.body).toEqual({ error: { code: 'invalid_request', message: 'body.password: must be at least 12 characters', field: 'body.password' } });
    for (const [query, field] of [['limit=0', 'query.limit'], ['limit=501', 'query.limit'], ['limit=ten', 'query.limit'], ['sort=name', 'query']] as const) {
      const r = await cp.call('GET', `/api/v1/users?${query}`, { token: admin });
      expect(r.status, query).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'invalid_request', field });
    }
  });

  it('answers a wrong method with 405 naming the allowed methods', async () => {
    const login = await cp.call('GET', '/api/v1/auth/login');
    expect(login.status).toBe(405);
    expect(login.body).toEqual({ error: { code: 'method_not_allowed', message: 'GET is not allowed on /api/v1/auth/login (allowed: POST)' } });
    const users = await cp.call('PUT', '/api/v1/users', { token: admin, json: {} });
    expect(users.status).toBe(405);
    expect(users.body.error.message).toBe('PUT is not allowed on /api/v1/users (allowed: GET, POST)');
    const one = await cp.call('POST', '/api/v1/users/bruce', { token: admin, json: {} });
    expect(one.body.error.message).toBe('POST is not allowed on /api/v1/users/bruce (allowed: GET, PATCH, DELETE)');
  });

  it('answers an unknown endpoint with 404, and an unknown user with 404 naming it', async () => {
    for (const path of ['/api/v1/nope', '/', '/api/v2/users', '/api/v1/users/bruce/extra', '/api/v1/auth/login/']) {
      const r = await cp.call('GET', path, { token: admin });
      expect(r.status, path).toBe(404);
      expect(r.body).toEqual({ error: { code: 'not_found', message: `no such endpoint: ${path}` } });
    }
    const ghost = await cp.call('GET', '/api/v1/users/ghost', { token: admin });
    expect([ghost.status, ghost.body]).toEqual([404, { error: { code: 'not_found', message: "no user named 'ghost'" } }]);
  });

  it('refuses a body that is not JSON, or not sent as JSON: 400', async () => {
    const body = JSON.stringify({ username: 'bruce', password: PASSWORD });
    const notJson = await rawCall('POST', '/api/v1/auth/login', { 'content-type': 'application/json' }, '{"username": "bruce", ');
    expect([notJson.status, notJson.body]).toEqual([400, { error: { code: 'invalid_request', message: 'the body is not valid JSON' } }]);
    const noType = await rawCall('POST', '/api/v1/auth/login', {}, body);
    expect([noType.status, noType.body]).toEqual([400, { error: { code: 'invalid_request', message: 'send the body as Content-Type: application/json' } }]);
    const text = await rawCall('POST', '/api/v1/auth/login', { 'content-type': 'text/plain' }, body);
    expect([text.status, text.body.error?.message]).toEqual([400, 'send the body as Content-Type: application/json']);
    const arrayBody = await rawCall('POST', '/api/v1/users', { 'content-type': 'application/json', authorization: `Bearer ${admin}` }, '[]');
    expect([arrayBody.status, arrayBody.body.error?.field]).toEqual([400, 'body']);
    // The same body, sent properly, logs in.
    expect((await rawCall('POST', '/api/v1/auth/login', { 'content-type': 'application/json; charset=utf-8' }, body)).status).toBe(200);
  });

  it('refuses a body over 1 MiB with 413, and keeps serving', async () => {
    const padded = (size: number): Buffer => {
      const head = '{"username":"bruce","password":"';
      return Buffer.from(`${head}${'x'.repeat(size - head.length - 2)}"}`);
    };
    const atLimit = await rawCall('POST', '/api/v1/auth/login', { 'content-type': 'application/json' }, padded(MAX_BODY));
    expect(atLimit.status, atLimit.text).toBe(400); // read and validated: the password is over 1024 characters
    expect(atLimit.body.error.field).toBe('body.password');
    for (const size of [MAX_BODY + 1, 3 * MAX_BODY]) {
      const over = await rawCall('POST', '/api/v1/auth/login', { 'content-type': 'application/json' }, padded(size));
      expect(over.status, `${size} bytes: ${over.text}`).toBe(413);
      expect(over.body).toEqual({ error: { code: 'too_large', message: `the request body is over ${MAX_BODY} bytes` } });
    }
    const asAdmin = await rawCall('POST', '/api/v1/users', { 'content-type': 'application/json', authorization: `Bearer ${admin}` }, padded(2 * MAX_BODY));
    expect(asAdmin.status).toBe(413);
    expect((await me(admin)).status).toBe(200);
  });
});

describe('the OpenAPI document', () => {
  // Every endpoint this file calls.
  const EXERCISED = [
    ['post', '/api/v1/auth/login'], ['post', '/api/v1/auth/logout'], ['get', '/api/v1/auth/me'],
    ['get', '/api/v1/users'], ['post', '/api/v1/users'], ['get', '/api/v1/users/{name}'], ['patch', '/api/v1/users/{name}'], ['delete', '/api/v1/users/{name}'],
    ['get', '/api/v1/ca'], ['post', '/api/v1/certs/install-command'], ['get', '/api/v1/openapi.json'],
  ] as const;
  const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;
  let doc: any;
  beforeAll(async () => {
    const r = await cp.call('GET', '/api/v1/openapi.json');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    doc = JSON.parse(r.text);
  });

  it('is OpenAPI 3.1.0 JSON with every endpoint exercised here', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
    for (const [method, path] of EXERCISED) expect(doc.paths[path]?.[method], `${method} ${path}`).toMatchObject({ summary: expect.any(String) });
    expect(doc.paths['/api/v1/users'].get['x-roles']).toEqual(['admin']);
    expect(doc.paths['/api/v1/auth/login'].post.security).toEqual([]);
    expect(doc.paths['/api/v1/users/{name}'].patch.parameters).toContainEqual({ name: 'name', in: 'path', required: true, schema: { type: 'string' } });
    expect(doc.paths['/api/v1/users'].get.parameters.map((p: { name: string }) => p.name).sort()).toEqual(['cursor', 'limit']);
  });

  it('describes the login request body', () => {
    const body = doc.paths['/api/v1/auth/login'].post.requestBody;
    expect(body.required).toBe(true);
    expect(body.content['application/json'].schema).toMatchObject({
      type: 'object',
      properties: { username: { type: 'string', minLength: 1, maxLength: 64 }, password: { type: 'string', minLength: 1, maxLength: 1024 } },
      required: expect.arrayContaining(['username', 'password']),
      additionalProperties: false,
    });
    expect(doc.paths['/api/v1/users'].post.requestBody.content['application/json'].schema.properties.role.enum).toEqual(['admin', 'operator', 'auditor', 'user']);
  });

  it('matches what the server answers: each documented operation is served, each other method is 405 naming exactly the documented ones', async () => {
    const templates = Object.keys(doc.paths).map((t) => ({ t, re: new RegExp(`^${t.replace(/\{\w+\}/g, '[^/]+')}$`) }));
    expect(templates.length).toBeGreaterThan(20);
    for (const { t } of templates) {
      const concrete = t.replace(/\{\w+\}/g, 'zz-unknown');
      const documented = new Set(templates.filter((x) => x.re.test(concrete)).flatMap((x) => Object.keys(doc.paths[x.t])));
      for (const method of Object.keys(doc.paths[t])) {
        const r = await cp.call(method.toUpperCase(), concrete); // anonymous: refused or invalid, but never "no such endpoint"
        expect([404, 405].includes(r.status) && /no such endpoint|is not allowed/.test(r.text), `${method} ${concrete}: ${r.status} ${r.text}`).toBe(false);
      }
      const other = METHODS.find((m) => !documented.has(m));
      if (!other) continue;
      const r = await cp.call(other.toUpperCase(), concrete);
      expect(r.status, `${other} ${concrete}`).toBe(405);
      const allowed = /\(allowed: ([A-Z, ]+)\)$/.exec(r.body.error.message)![1]!.split(', ').map((m) => m.toLowerCase());
      expect(new Set(allowed), concrete).toEqual(documented);
    }
  });
});
