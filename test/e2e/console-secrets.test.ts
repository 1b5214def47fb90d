// The Console's secrets through the real `drawbridge console` binary: stores (credentials write-only), the built-in
// store, secret rules with their validation, values fetched and pushed only to the Defenders whose host a rule
// names, refresh, a failing store keeping the last good value with the error visible, and no value or credential
// anywhere in the API's answers, the log or the data directory.
import 'reflect-metadata'; // before @peculiar/x509
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { readdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { PolicySnapshot, PolicyStreamLine } from '../../shared/wire/defender-console.js';
import { clientTls, enrollDefender, openPolicyStream, type EnrolledDefender, type PolicyStream } from '../support/console-defender-client.js';
import { startConsoleProcess, type ConsoleProcess } from '../support/console-process.js';
import { ProtocolServer, sendJson } from '../support/secret-stores/protocol-server.js';

let consoleProc: ConsoleProcess;
let admin: string;
let dev: EnrolledDefender;
let prod: EnrolledDefender;
let devStream: PolicyStream;
let prodStream: PolicyStream;

const DB_PASSWORD = 'pw-4f1d9c0e-7b2a-4e57-9a1c-secret-one';
const DB_PASSWORD_2 = 'pw-rotated-0a9b8c7d-secret-two';
const VAULT_TOKEN = 'hvs.vault-token-never-shown-6e2f';
const everySecret = [DB_PASSWORD, DB_PASSWORD_2, VAULT_TOKEN];

const api = (method: string, path: string, json?: unknown) => consoleProc.call(method, path, { token: admin, ...(json === undefined ? {} : { json }) });
const snapshotAfter = (version: number) => (l: PolicyStreamLine) => l.type === 'snapshot' && l.snapshot.version >= version;
async function snapshotOf(stream: PolicyStream, version: number): Promise<PolicySnapshot> {
  const line = await stream.next(snapshotAfter(version), 10_000);
  if (line.type !== 'snapshot') throw new Error('not a snapshot');
  return line.snapshot;
}
/** `table.column` of every value in the database sealed with the key `keyId`. */
function sealedWith(file: string, keyId: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    const found: string[] = [];
    for (const { name } of db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]) {
      for (const { name: column } of db.prepare(`SELECT name FROM pragma_table_info(?)`).all(name) as { name: string }[]) {
        const n = (db.prepare(`SELECT count(*) AS n FROM "${name}" WHERE CAST("${column}" AS TEXT) LIKE ?`).get(`v1.${keyId}.%`) as { n: number }).n;
        if (n > 0) found.push(`${name}.${column}`);
      }
    }
    return found;
  } finally {
    db.close();
  }
}

function expectNoSecretIn(text: string, where: string): void {
  for (const s of everySecret) expect(text.includes(s), `${where} contains a secret value`).toBe(false);
}

beforeAll(async () => {
  consoleProc = await startConsoleProcess({ args: ['--secret-sync-interval', '0'] });
  admin = await consoleProc.adminToken();
  const enrol = async (host: string): Promise<EnrolledDefender> => {
    const t = await api('POST', '/api/v1/defenders/join-tokens', {});
    const r = await enrollDefender(consoleProc, t.body.token, host);
    if (!r.ok) throw new Error(`enrolment of ${host} failed: ${r.res.text}`);
    return r.defender;
  };
  dev = await enrol('sec-dev');
  prod = await enrol('sec-prod');
  devStream = await openPolicyStream(consoleProc.url, clientTls(dev), 0);
  prodStream = await openPolicyStream(consoleProc.url, clientTls(prod), 0);
});

afterAll(async () => {
  devStream?.close();
  prodStream?.close();
  await consoleProc?.stop({ remove: true });
});

describe('secret stores', () => {
  test('credentials are write-only; an update without them keeps them; bad configurations name the field', async () => {
    const bad = await api('POST', '/api/v1/secret-stores', { name: 'v', kind: 'hashicorp', config: {} });
    expect([bad.status, bad.body.error.field]).toEqual([400, 'body.kind']);
    const noAddress = await api('POST', '/api/v1/secret-stores', { name: 'v', kind: 'vault', config: { auth: { method: 'token', token: VAULT_TOKEN } } });
    expect([noAddress.status, noAddress.body.error.field]).toEqual([400, 'body.config.address']);

    const created = await api('POST', '/api/v1/secret-stores', { name: 'vault-down', kind: 'vault', config: { address: 'http://127.0.0.1:9', auth: { method: 'token', token: VAULT_TOKEN } } });
    expect(created.status, created.text).toBe(201);
    expect(created.body).toMatchObject({ name: 'vault-down', kind: 'vault', config: { address: 'http://127.0.0.1:9', auth: { method: 'token', token: '<set>' } } });
    const kept = await api('PUT', '/api/v1/secret-stores/vault-down', { config: { address: 'http://127.0.0.1:9', mount: 'kv', auth: { method: 'token' } } });
    expect(kept.status, kept.text).toBe(200);
    expect(kept.body.store.config).toMatchObject({ address: 'http://127.0.0.1:9', mount: 'kv', auth: { token: '<set>' } });
    const changed = await api('PUT', '/api/v1/secret-stores/vault-down', { config: { address: 'http://127.0.0.1:1', auth: { method: 'token', token: VAULT_TOKEN } } });
    expect(changed.status, changed.text).toBe(200);
    expect(changed.body.store.config).toMatchObject({ address: 'http://127.0.0.1:1', auth: { token: '<set>' } });
    const test = await api('POST', '/api/v1/secret-stores/vault-down/test');
    expect(test.status).toBe(200);
    expect(test.body).toMatchObject({ ok: false, error: { code: 'unreachable' } });
    expect(test.body.error.message).toContain('127.0.0.1:1');
    for (const r of [created, kept, changed, test, await api('GET', '/api/v1/secret-stores'), await api('GET', '/api/v1/secret-stores/vault-down')]) expectNoSecretIn(r.text, 'a store answer');

    expect((await api('POST', '/api/v1/secret-stores', { name: 'VAULT-DOWN', kind: 'builtin' })).status).toBe(409);
  });

  test('stored credentials never go to a changed address: keeping them there is refused (400 naming the field)', async () => {
    // The attacker's server: records every request (headers and body) that reaches it.
    const received: string[] = [];
    const evil = await new ProtocolServer((req, body, res) => {
      received.push(`${JSON.stringify(req.headers)} ${body.toString('utf8')}`);
      sendJson(res, 403, { errors: ['permission denied'] });
    }).listen();
    const APPROLE_SECRET = 'approle-secret-id-never-sent-4c1e';
    try {
      expect((await api('POST', '/api/v1/secret-stores', { name: 'vault-moved', kind: 'vault', config: { address: 'http://127.0.0.1:9', auth: { method: 'token', token: VAULT_TOKEN } } })).status).toBe(201);
      expect((await api('POST', '/api/v1/secret-stores', { name: 'approle-moved', kind: 'vault', config: { address: 'http://127.0.0.1:9', auth: { method: 'approle', roleId: 'role-1', secretId: APPROLE_SECRET } } })).status).toBe(201);
      for (const [store, auth] of [['vault-moved', { method: 'token' }], ['vault-moved', { method: 'token', token: '<set>' }], ['approle-moved', { method: 'approle', roleId: 'role-1' }]] as const) {
        const moved = await api('PUT', `/api/v1/secret-stores/${store}`, { config: { address: evil.url, auth } });
        expect([moved.status, moved.body.error?.field], moved.text).toEqual([400, 'body.config.address']);
        const ca = await api('PUT', `/api/v1/secret-stores/${store}`, { config: { address: 'http://127.0.0.1:9', auth, caPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----' } });
        expect([ca.status, ca.body.error?.field], ca.text).toEqual([400, 'body.config.caPem']);
        expect((await api('GET', `/api/v1/secret-stores/${store}`)).body.config.address).toBe('http://127.0.0.1:9');
        expect((await api('POST', `/api/v1/secret-stores/${store}/test`)).body).toMatchObject({ ok: false, error: { code: 'unreachable' } });
      }
      expect(received).toEqual([]);
      // Given again, the credentials go where the admin says (here, the attacker's server: it sees only what was typed).
      const retyped = await api('PUT', '/api/v1/secret-stores/vault-moved', { config: { address: evil.url, auth: { method: 'token', token: 'typed-again' } } });
      expect(retyped.status, retyped.text).toBe(200);
      await api('POST', '/api/v1/secret-stores/vault-moved/test');
      expect(received.length).toBeGreaterThan(0);
      for (const r of received) for (const s of [VAULT_TOKEN, APPROLE_SECRET]) expect(r.includes(s)).toBe(false);
    } finally {
      await evil.close();
      for (const store of ['vault-moved', 'approle-moved']) await api('DELETE', `/api/v1/secret-stores/${store}`);
    }
  });

  test('stores are for admins only; operators and auditors read rules and status', async () => {
    expect((await consoleProc.call('POST', '/api/v1/users', { token: admin, json: { name: 'sec-operator', password: 'sec-operator-password', role: 'operator' } })).status).toBe(201);
    const operator = await consoleProc.login('sec-operator', 'sec-operator-password');
    const as = (method: string, path: string, json?: unknown) => consoleProc.call(method, path, { token: operator, ...(json === undefined ? {} : { json }) });
    expect((await as('GET', '/api/v1/secret-stores')).status).toBe(403);
    expect((await as('POST', '/api/v1/secret-stores', { name: 'x', kind: 'builtin' })).status).toBe(403);
    expect((await as('POST', '/api/v1/secrets/refresh')).status).toBe(403);
    expect((await as('GET', '/api/v1/secret-rules')).status).toBe(200);
    expect((await as('GET', '/api/v1/secrets/status')).status).toBe(200);
    expect((await consoleProc.call('GET', '/api/v1/secret-rules')).status).toBe(401);
  });

  test('the built-in store keeps values sealed and answers only their paths', async () => {
    expect((await api('POST', '/api/v1/secret-stores', { name: 'console', kind: 'builtin', config: {} })).status).toBe(201);
    const put = await api('PUT', '/api/v1/secret-stores/console/values', { path: 'apps/db', value: JSON.stringify({ user: 'app', password: DB_PASSWORD }) });
    expect(put.status, put.text).toBe(200);
    const list = await api('GET', '/api/v1/secret-stores/console/values');
    expect(list.body.items.map((i: { path: string }) => i.path)).toEqual(['apps/db']);
    expectNoSecretIn(list.text, 'the value list');
    const notBuiltin = await api('PUT', '/api/v1/secret-stores/vault-down/values', { path: 'x', value: 'y' });
    expect(notBuiltin.status).toBe(400);
  });
});

describe('secret rules', () => {
  let version = 0;

  test('validation names the rule, the field and the reason', async () => {
    const cases: Array<[unknown, string]> = [
      [{ name: 'r', mode: 'env', secrets: [{ name: '1BAD', store: 'console', path: 'apps/db' }] }, 'body.secrets.0.name'],
      [{ name: 'r', mode: 'file', secrets: [{ name: '../etc', store: 'console', path: 'apps/db' }] }, 'body.secrets.0.name'],
      [{ name: 'r', mode: 'env', fileAccess: 'all', secrets: [{ name: 'A', store: 'console', path: 'p' }] }, 'body.fileAccess'],
      [{ name: 'r', mode: 'env', secrets: [{ name: 'A', store: 'nope', path: 'p' }] }, 'body.secrets.0.store'],
      [{ name: 'r', mode: 'env', secrets: [] }, 'body.secrets'],
      [{ name: 'r', mode: 'env', secrets: [{ name: 'A', store: 'console', path: 'p' }], scope: { image: ['x'] } }, 'body.scope'],
    ];
    for (const [rule, field] of cases) {
      const r = await api('POST', '/api/v1/secret-rules', rule);
      expect([r.status, r.body.error?.field], JSON.stringify(rule)).toEqual([400, field]);
    }
  });

  test('a rule is pushed with its values to the Defenders whose host it names, and only to them', async () => {
    const rule = { name: 'db', mode: 'env', secrets: [{ name: 'DB_PASSWORD', store: 'console', path: 'apps/db', key: 'password' }], scope: { hosts: ['sec-dev'], images: ['app*'] } };
    const r = await api('POST', '/api/v1/secret-rules', rule);
    expect(r.status, r.text).toBe(201);
    expect(r.body.sync).toMatchObject({ secrets: 1, failed: [] });
    expectNoSecretIn(r.text, 'the rule answer');
    version = r.body.version;

    const devSnap = await snapshotOf(devStream, version);
    expect(devSnap.secrets.rules.map((x) => x.name)).toEqual(['db']);
    expect(devSnap.secrets.values).toEqual([{ store: 'console', path: 'apps/db', key: 'password', value: DB_PASSWORD }]);
    const prodSnap = await snapshotOf(prodStream, version);
    expect(prodSnap.secrets).toEqual({ rules: [], values: [] });
    expectNoSecretIn(JSON.stringify(prodStream.lines), "another host's stream");

    const listed = await api('GET', '/api/v1/secret-rules');
    expect(listed.body.items).toMatchObject([{ position: 0, name: 'db', mode: 'env', allow: [] }]);
  });

  test('a changed value reaches the Defenders with the next version; a refresh without change pushes nothing', async () => {
    const put = await api('PUT', '/api/v1/secret-stores/console/values', { path: 'apps/db', value: JSON.stringify({ user: 'app', password: DB_PASSWORD_2 }) });
    expect(put.status).toBe(200);
    expect(put.body.sync).toMatchObject({ secrets: 1, changed: 1 });
    const after = (await api('GET', '/api/v1/secret-rules')).body.version;
    expect(after).toBeGreaterThan(version);
    const snap = await snapshotOf(devStream, after);
    expect(snap.secrets.values[0]!.value).toBe(DB_PASSWORD_2);

    const refresh = await api('POST', '/api/v1/secrets/refresh');
    expect(refresh.body.sync).toMatchObject({ secrets: 1, changed: 0, failed: [] });
    expect((await api('GET', '/api/v1/secret-rules')).body.version).toBe(after);
    version = after;
  });

  test('a store that fails keeps the last good value, and the error is visible', async () => {
    expect((await api('DELETE', '/api/v1/secret-stores/console/values?path=apps/db')).status).toBe(204);
    const status = await api('GET', '/api/v1/secrets/status');
    expect(status.body.items).toEqual([
      expect.objectContaining({ store: 'console', path: 'apps/db', key: 'password', hasValue: true, error: expect.objectContaining({ code: 'not_found' }) }),
    ]);
    // Still pushed with its last value on the next version.
    const bump = await api('POST', '/api/v1/rules', { name: 'bump', effect: 'allow', actions: ['docker_ping'] });
    expect(bump.status).toBe(201);
    const snap = await snapshotOf(devStream, bump.body.version);
    expect(snap.secrets.values).toEqual([{ store: 'console', path: 'apps/db', key: 'password', value: DB_PASSWORD_2 }]);

    const down = await api('POST', '/api/v1/secret-rules', { name: 'from-down-store', mode: 'file', secrets: [{ name: 'token', store: 'vault-down', path: 'apps/x', key: 'k' }] });
    expect(down.status, down.text).toBe(201);
    expect(down.body.sync.failed).toEqual([expect.objectContaining({ store: 'vault-down', code: 'unreachable' })]);
    expect((await api('DELETE', '/api/v1/secret-stores/vault-down')).status).toBe(409);
    expect((await api('DELETE', '/api/v1/secret-rules/from-down-store')).status).toBe(204);
    expect((await api('DELETE', '/api/v1/secret-stores/vault-down')).status).toBe(204);
  });

  test('no secret value or credential in the log or the data directory (the database is sealed)', async () => {
    expectNoSecretIn(consoleProc.log(), 'the Console log');
    const dir = join(consoleProc.dir, 'data');
    for (const f of await readdir(dir)) expectNoSecretIn((await readFile(join(dir, f))).toString('latin1'), `data file ${f}`);
  });

  test('deleting the last rule that needs a secret removes its value from the Console and the Defenders', async () => {
    const r = await api('DELETE', '/api/v1/secret-rules/db');
    expect(r.status).toBe(204);
    const v = (await api('GET', '/api/v1/secret-rules')).body.version;
    const snap = await snapshotOf(devStream, v);
    expect(snap.secrets).toEqual({ rules: [], values: [] });
    expect((await api('GET', '/api/v1/secrets/status')).body.items).toEqual([]);
  });

  test('master key rotation: the old key opens what it sealed once, everything is sealed again with the new key', async () => {
    await api('PUT', '/api/v1/secret-stores/console/values', { path: 'apps/db', value: JSON.stringify({ password: DB_PASSWORD }) });
    expect((await api('POST', '/api/v1/secret-rules', { name: 'again', mode: 'env', secrets: [{ name: 'P', store: 'console', path: 'apps/db', key: 'password' }] })).status).toBe(201);
    devStream.close();
    prodStream.close();
    await consoleProc.stop();
    const oldKeyFile = join(consoleProc.dir, 'old-master.key');
    await rename(join(consoleProc.dir, 'master.key'), oldKeyFile);
    const oldId = createHash('sha256').update(Buffer.from((await readFile(oldKeyFile, 'utf8')).trim(), 'base64')).digest('hex').slice(0, 8);

    consoleProc = await startConsoleProcess({ dir: consoleProc.dir, port: consoleProc.port, args: ['--secret-sync-interval', '0', '--previous-master-key-file', oldKeyFile] });
    expect(consoleProc.log()).toMatch(/master key rotated: .* values=\d+/);
    admin = await consoleProc.adminToken();
    const refreshed = await api('POST', '/api/v1/secrets/refresh');
    expect(refreshed.body.sync).toMatchObject({ secrets: 1, failed: [] });
    await consoleProc.stop();
    expect(sealedWith(join(consoleProc.dir, 'data', 'console.db'), oldId)).toEqual([]);
    const file = await readFile(join(consoleProc.dir, 'data', 'console.db'));
    expect(file.toString('latin1').includes(`v1.${oldId}.`), 'an old sealed value left in a free page').toBe(false);

    // Without the old key from now on.
    consoleProc = await startConsoleProcess({ dir: consoleProc.dir, port: consoleProc.port, args: ['--secret-sync-interval', '0'] });
    admin = await consoleProc.adminToken();
    expect((await api('GET', '/api/v1/secret-stores/console/values')).body.items).toHaveLength(1);
    const stream = await openPolicyStream(consoleProc.url, clientTls(dev), 0);
    try {
      const snap = await snapshotOf(stream, 1);
      expect(snap.secrets.values).toEqual([{ store: 'console', path: 'apps/db', key: 'password', value: DB_PASSWORD }]);
    } finally {
      stream.close();
    }
  });
});
