// User certificates through the real Console binary and its HTTP API: the subject comes from the account, never
// the CSR; clientAuth; lifetime bounded by the session and --cert-max-lifetime; bad CSRs named; who may list and
// revoke what; one-time install tokens (single use, expiry, bound to the session); server certificates.
import 'reflect-metadata'; // @peculiar/x509 (tsyringe) needs it loaded first
import { spawnSync } from 'node:child_process';
import { randomBytes, X509Certificate as NodeX509 } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { identityFromCertificate } from '../../shared/identity/certificate-identity.js';
import { startConsoleProcess, type ConsoleProcess } from '../support/console-process.js';
import { makeCsr, tamperCsrSignature } from '../support/csr.js';
import { DRAWBRIDGE_BIN } from '../support/defender-process.js';

const PASSWORD = 'a-long-enough-password';

let c: ConsoleProcess;
let admin: string;
const tokens: Record<string, string> = {};
const sessionEnds: Record<string, string> = {};

async function login(name: string): Promise<string> {
  const r = await c.call('POST', '/api/v1/auth/login', { json: { username: name, password: PASSWORD } });
  expect(r.status).toBe(200);
  sessionEnds[name] = r.body.expiresAt;
  return (tokens[name] = r.body.token);
}

async function issue(token: string, subject = 'CN=whoever'): Promise<{ serial: string; cert: string; ca: string; notAfter: string }> {
  const { csr } = await makeCsr(subject);
  const r = await c.call('POST', '/api/v1/certs', { token, json: { csr } });
  expect(r.status, r.text).toBe(201);
  return r.body;
}

async function listAll(token: string, query = ''): Promise<any[]> {
  const r = await c.call('GET', `/api/v1/certs?limit=500${query}`, { token });
  expect(r.status, r.text).toBe(200);
  return r.body.items;
}

const ekuOf = (cert: x509.X509Certificate): string[] => cert.getExtension(x509.ExtendedKeyUsageExtension)!.usages.map(String);
const installToken = (command: string): string => /X-Drawbridge-Install-Token: (dbi_[A-Za-z0-9_-]+)"/.exec(command)![1]!;
/** The install token header (never the query string: other users of the machine could read curl's arguments). */
const tokenHeader = (token: string): { headers: Record<string, string> } => ({ headers: { 'X-Drawbridge-Install-Token': token } });

beforeAll(async () => {
  c = await startConsoleProcess();
  admin = await c.adminToken();
  for (const [name, role, groups] of [['alice', 'user', ['devs', 'oncall']], ['bob', 'user', ['ops']], ['audrey', 'auditor', []], ['olga', 'operator', ['ops']]] as const) {
    const r = await c.call('POST', '/api/v1/users', { token: admin, json: { name, password: PASSWORD, role, groups } });
    expect(r.status, r.text).toBe(201);
    await login(name);
  }
});

afterAll(async () => {
  await c?.stop({ remove: true });
});

describe('the CA', () => {
  it('GET /api/v1/ca is public: the PEM and its SHA-256 fingerprint', async () => {
    const r = await c.call('GET', '/api/v1/ca');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ pem: c.caPem, fingerprintSha256: new NodeX509(c.caPem).fingerprint256 });
    expect(new NodeX509(c.caPem).ca).toBe(true);
  });

  it('the OpenAPI document lists the certificate endpoints', async () => {
    const doc = await c.call('GET', '/api/v1/openapi.json');
    expect(doc.status).toBe(200);
    for (const [path, method] of [['/api/v1/ca', 'get'], ['/api/v1/certs', 'post'], ['/api/v1/certs', 'get'], ['/api/v1/certs/{serial}', 'delete'], ['/api/v1/users/{name}/revoke-certs', 'post'], ['/api/v1/certs/install-command', 'post'], ['/api/v1/certs/install.sh', 'get'], ['/api/v1/certs/install', 'post'], ['/api/v1/certs/server', 'post']]) {
      expect(doc.body.paths[path!]?.[method!], `${method} ${path}`).toBeDefined();
    }
  });
});

describe('issuing a user certificate from a CSR', () => {
  it('takes CN and OUs from the account, whatever the CSR says; clientAuth only; signed by the CA for the CSR key', async () => {
    const { csr, spki } = await makeCsr('CN=root, OU=admins, O=Evil');
    const r = await c.call('POST', '/api/v1/certs', { token: tokens.alice, json: { csr } });
    expect(r.status, r.text).toBe(201);
    expect(Object.keys(r.body).sort()).toEqual(['ca', 'cert', 'notAfter', 'serial']);
    const cert = new x509.X509Certificate(r.body.cert);
    expect(identityFromCertificate(new Uint8Array(cert.rawData))).toEqual({ user: 'alice', groups: ['devs', 'oncall'] });
    expect(cert.subject).not.toMatch(/root|admins|Evil/);
    expect(ekuOf(cert)).toEqual([x509.ExtendedKeyUsage.clientAuth]);
    expect(cert.getExtension(x509.BasicConstraintsExtension)!.ca).toBe(false);
    expect(await cert.verify({ publicKey: new x509.X509Certificate(c.caPem).publicKey, signatureOnly: true })).toBe(true);
    expect(new Uint8Array(cert.publicKey.rawData)).toEqual(spki);
    expect(r.body.serial).toBe(cert.serialNumber.toLowerCase());
    expect(r.body.ca).toBe(c.caPem);
  });

  it("is valid no longer than the login session (default session 1 h < default maximum 24 h)", async () => {
    const token = await login('bob');
    const issued = await issue(token);
    const cert = new x509.X509Certificate(issued.cert);
    const sessionEnd = Date.parse(sessionEnds.bob!);
    expect(cert.notAfter.getTime()).toBeLessThanOrEqual(sessionEnd);
    expect(Date.parse(issued.notAfter)).toBeLessThanOrEqual(sessionEnd);
    expect(cert.notAfter.getTime()).toBeGreaterThan(sessionEnd - 60_000);
  });

  it.each([
    ['not PEM at all', async () => 'garbage', 'not a valid PEM'],
    ['an RSA key', async () => (await makeCsr('CN=x', 'rsa')).csr, 'ECDSA P-256'],
    ['a P-384 key', async () => (await makeCsr('CN=x', 'p384')).csr, 'ECDSA P-256'],
    ['a broken self-signature', async () => tamperCsrSignature((await makeCsr()).csr), 'does not verify'],
    ['an empty string', async () => '', 'required'],
  ])('refuses %s with 400 naming body.csr', async (_, csr, message) => {
    const r = await c.call('POST', '/api/v1/certs', { token: tokens.alice, json: { csr: await csr() } });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: 'invalid_request', field: 'body.csr' });
    expect(r.body.error.message).toContain(message);
  });

  it('refuses a missing csr and unknown fields, naming them', async () => {
    const missing = await c.call('POST', '/api/v1/certs', { token: tokens.alice, json: {} });
    expect([missing.status, missing.body.error.field]).toEqual([400, 'body.csr']);
    const extra = await c.call('POST', '/api/v1/certs', { token: tokens.alice, json: { csr: (await makeCsr()).csr, subject: 'CN=root' } });
    expect([extra.status, extra.body.error.field]).toEqual([400, 'body']);
    expect(extra.body.error.message).toContain('subject');
  });

  it('needs a login', async () => {
    const r = await c.call('POST', '/api/v1/certs', { json: { csr: (await makeCsr()).csr } });
    expect(r.status).toBe(401);
  });
});

describe('who sees and revokes which certificates', () => {
  let aliceSerial: string;
  let bobSerial: string;

  beforeAll(async () => {
    aliceSerial = (await issue(tokens.alice!)).serial;
    bobSerial = (await issue(tokens.bob!)).serial;
    await issue(tokens.olga!);
  });

  it('an access user lists only their own certificates, and may not ask for anyone else', async () => {
    const mine = await listAll(tokens.alice!);
    expect(mine.map((x) => x.serial)).toContain(aliceSerial);
    expect(new Set(mine.map((x) => `${x.kind}:${x.subject}`))).toEqual(new Set(['user:alice']));
    expect((await c.call('GET', '/api/v1/certs?user=bob', { token: tokens.alice })).status).toBe(403);
    expect((await listAll(tokens.alice!, '&user=ALICE')).length).toBe(mine.length);
    expect((await c.call('GET', '/api/v1/certs')).status).toBe(401);
  });

  it('an operator is like an access user here; admins and auditors list everyone, filtered by ?user=', async () => {
    expect(new Set((await listAll(tokens.olga!)).map((x) => x.subject))).toEqual(new Set(['olga']));
    for (const token of [admin, tokens.audrey!]) {
      const all = (await listAll(token)).map((x) => x.serial);
      expect(all).toEqual(expect.arrayContaining([aliceSerial, bobSerial]));
      const bobs = await listAll(token, '&user=bob');
      expect(bobs.map((x) => x.serial)).toContain(bobSerial);
      expect(new Set(bobs.map((x) => x.subject))).toEqual(new Set(['bob']));
    }
  });

  it("an access user cannot revoke someone else's certificate (404: not theirs to see); an auditor cannot revoke (403)", async () => {
    const byAlice = await c.call('DELETE', `/api/v1/certs/${bobSerial}`, { token: tokens.alice });
    expect(byAlice.status).toBe(404);
    const byAuditor = await c.call('DELETE', `/api/v1/certs/${aliceSerial}`, { token: tokens.audrey });
    expect(byAuditor.status).toBe(403);
    expect((await c.call('POST', '/api/v1/users/bob/revoke-certs', { token: tokens.alice })).status).toBe(403);
    const still = (await listAll(admin, '&user=bob')).find((x) => x.serial === bobSerial);
    expect(still).toMatchObject({ status: 'valid', revokedAt: null });
  });

  it('the owner revokes their own; revoking again changes nothing; the list shows it revoked', async () => {
    const r = await c.call('DELETE', `/api/v1/certs/${aliceSerial.toUpperCase()}`, { token: tokens.alice });
    expect(r.status, r.text).toBe(200);
    expect(r.body).toMatchObject({ serial: aliceSerial, kind: 'user', subject: 'alice', status: 'revoked', revokedAt: expect.any(String) });
    const again = await c.call('DELETE', `/api/v1/certs/${aliceSerial}`, { token: admin });
    expect(again.body.revokedAt).toBe(r.body.revokedAt);
    expect((await listAll(tokens.alice!)).find((x) => x.serial === aliceSerial)).toMatchObject({ status: 'revoked' });
    expect((await c.call('DELETE', '/api/v1/certs/not-hex', { token: admin })).body.error.field).toBe('serial');
    expect((await c.call('DELETE', '/api/v1/certs/0abc', { token: admin })).status).toBe(404);
    const consoleCert = (await listAll(admin, '&kind=console'))[0];
    expect((await c.call('DELETE', `/api/v1/certs/${consoleCert.serial}`, { token: admin })).status).toBe(409);
  });

  it("an admin revokes all of a user's certificates at once, and ends the user's logins", async () => {
    const extra = (await issue(tokens.bob!)).serial;
    const r = await c.call('POST', '/api/v1/users/BOB/revoke-certs', { token: admin }); // user names are case-insensitive
    expect(r.status, r.text).toBe(200);
    expect(r.body.serials).toEqual(expect.arrayContaining([bobSerial, extra]));
    expect(r.body.revoked).toBe(r.body.serials.length);
    expect((await listAll(admin, '&user=bob')).every((x) => x.status === 'revoked')).toBe(true);
    // …and bob's logins end with them, so nothing renews the revoked certificates.
    expect((await c.call('GET', '/api/v1/auth/me', { token: tokens.bob! })).status).toBe(401);
    expect((await c.call('POST', '/api/v1/users/bob/revoke-certs', { token: admin })).body).toEqual({ revoked: 0, serials: [] });
    expect((await c.call('POST', '/api/v1/users/nobody/revoke-certs', { token: admin })).status).toBe(404);
  });

  it("changing a user's groups revokes their certificates (they carry the old groups); changing nothing relevant does not", async () => {
    const serial = (await issue(tokens.olga!)).serial;
    const same = await c.call('PATCH', '/api/v1/users/olga', { token: admin, json: { groups: ['ops'] } });
    expect(same.status).toBe(200);
    expect((await listAll(admin, '&user=olga')).find((x) => x.serial === serial)).toMatchObject({ status: 'valid' });
    await c.call('PATCH', '/api/v1/users/olga', { token: admin, json: { groups: ['ops', 'leads'] } });
    expect((await listAll(admin, '&user=olga')).filter((x) => x.status === 'valid')).toEqual([]);
    const relogged = await login('olga');
    const fresh = new x509.X509Certificate((await issue(relogged)).cert);
    expect(identityFromCertificate(new Uint8Array(fresh.rawData)).groups).toEqual(['ops', 'leads']);
  });

  it('disabling or deleting a user revokes their certificates', async () => {
    const bob = await login('bob');
    const serial = (await issue(bob)).serial;
    expect((await c.call('PATCH', '/api/v1/users/bob', { token: admin, json: { disabled: true } })).status).toBe(200);
    expect((await listAll(admin, '&user=bob')).find((x) => x.serial === serial)).toMatchObject({ status: 'revoked' });
    await c.call('PATCH', '/api/v1/users/bob', { token: admin, json: { disabled: false } });
    const again = (await issue(await login('bob'))).serial;
    expect((await c.call('DELETE', '/api/v1/users/bob', { token: admin })).status).toBe(204);
    expect((await listAll(admin, '&user=bob')).find((x) => x.serial === again)).toMatchObject({ status: 'revoked' });
  });

  it('pages through the list with a cursor', async () => {
    const all = (await listAll(admin)).map((x) => x.serial);
    expect(all.length).toBeGreaterThan(3);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r: any = await c.call('GET', `/api/v1/certs?limit=2${cursor ? `&cursor=${cursor}` : ''}`, { token: admin });
      expect(r.status).toBe(200);
      seen.push(...r.body.items.map((x: { serial: string }) => x.serial));
      cursor = r.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual(all);
  });
});

describe('one-time install tokens', () => {
  let aliceToken: string;

  beforeAll(async () => {
    aliceToken = await login('alice');
  });

  const newCommand = async (token: string): Promise<{ command: string; expiresAt: string }> => {
    const r = await c.call('POST', '/api/v1/certs/install-command', { token });
    expect(r.status, r.text).toBe(201);
    return r.body;
  };
  const install = (token: string, csr: string) => c.call('POST', '/api/v1/certs/install', { json: { csr }, ...tokenHeader(token) });

  it('the command is curl with the Console key pinned and the token on its standard input, fetching the script from the public URL; it expires in 10 minutes', async () => {
    const { command, expiresAt } = await newCommand(aliceToken);
    const pin = /--pinnedpubkey '(sha256\/\/[A-Za-z0-9+/=]+)'/.exec(command)?.[1];
    const header = `header = "X-Drawbridge-Install-Token: ${installToken(command)}"`;
    expect(command).toBe(`printf '%s\\n' '${header}' | curl -fsSL --pinnedpubkey '${pin}' -k -K - '${c.url}/api/v1/certs/install.sh' | sh`);
    const minutes = (Date.parse(expiresAt) - Date.now()) / 60_000;
    expect(minutes).toBeGreaterThan(9);
    expect(minutes).toBeLessThanOrEqual(10);
    expect((await c.call('POST', '/api/v1/certs/install-command')).status).toBe(401);
  });

  it('is single-use: fetching the script does not use it; the POST does, once (410 after); another token is unaffected', async () => {
    const a = installToken((await newCommand(aliceToken)).command);
    const b = installToken((await newCommand(aliceToken)).command);
    for (let i = 0; i < 2; i++) {
      const script = await c.call('GET', '/api/v1/certs/install.sh', tokenHeader(a));
      expect(script.status).toBe(200);
      expect(script.headers['content-type']).toMatch(/^text\/x-shellscript/);
      expect(script.text).toContain('set -eu');
      expect(script.text).toContain(`TOKEN_CONFIG='header = "X-Drawbridge-Install-Token: ${a}"'`);
    }
    const badCsr = await install(a, 'garbage');
    expect([badCsr.status, badCsr.body.error.field]).toEqual([400, 'body.csr']); // and the token is not burnt by it
    const first = await install(a, (await makeCsr('CN=root, OU=admins')).csr);
    expect(first.status, first.text).toBe(201);
    const cert = new x509.X509Certificate(first.body.cert);
    expect(identityFromCertificate(new Uint8Array(cert.rawData))).toEqual({ user: 'alice', groups: ['devs', 'oncall'] });
    expect(ekuOf(cert)).toEqual([x509.ExtendedKeyUsage.clientAuth]);
    expect(cert.notAfter.getTime()).toBeLessThanOrEqual(Date.parse(sessionEnds.alice!));
    const second = await install(a, (await makeCsr()).csr);
    expect(second.status).toBe(410);
    expect(second.body.error.message).toContain('already used');
    const refusal = await c.call('GET', '/api/v1/certs/install.sh', tokenHeader(a));
    expect(refusal.text).toContain('already used');
    expect(refusal.text).toMatch(/\nexit 1\n$/);
    expect((await install(b, (await makeCsr()).csr)).status).toBe(201);
  });

  it('an unknown token is 401, and is not told apart from a malformed one', async () => {
    const unknown = await install(`dbi_${randomBytes(32).toString('base64url')}`, (await makeCsr()).csr);
    const malformed = await install('nonsense', (await makeCsr()).csr);
    expect([unknown.status, malformed.status]).toEqual([401, 401]);
    expect(unknown.body.error.message).toBe(malformed.body.error.message);
  });

  it('a token in the query string counts for nothing: the script and the POST want the header', async () => {
    const a = installToken((await newCommand(aliceToken)).command);
    const script = await c.call('GET', `/api/v1/certs/install.sh?token=${a}`);
    expect(script.text).toContain("the request carries no install token (X-Drawbridge-Install-Token header): copy the whole install command");
    expect(script.text).not.toContain(a);
    const post = await c.call('POST', `/api/v1/certs/install?token=${a}`, { json: { csr: (await makeCsr()).csr } });
    expect(post.status).toBe(401);
    expect((await install(a, (await makeCsr()).csr)).status).toBe(201); // still unused
  });

  it('dies with the session that created it (logout)', async () => {
    const session = await login('alice');
    const t = installToken((await newCommand(session)).command);
    await c.call('POST', '/api/v1/auth/logout', { token: session });
    const r = await install(t, (await makeCsr()).csr);
    expect(r.status).toBe(410);
    expect(r.body.error.message).toContain('session');
  });
});

describe('server certificates for hand-run Defenders', () => {
  it('admins get a serverAuth certificate for the names they give', async () => {
    const { csr } = await makeCsr('CN=ignored');
    const r = await c.call('POST', '/api/v1/certs/server', { token: admin, json: { csr, dnsNames: ['dev-a.example'], ips: ['127.0.0.1', '::1'] } });
    expect(r.status, r.text).toBe(201);
    const cert = new x509.X509Certificate(r.body.cert);
    expect(ekuOf(cert)).toEqual([x509.ExtendedKeyUsage.serverAuth]);
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension)!.names.toJSON();
    expect(san).toEqual([{ type: 'dns', value: 'dev-a.example' }, { type: 'ip', value: '127.0.0.1' }, { type: 'ip', value: '::1' }]);
    expect((await listAll(admin, '&kind=defender-server')).map((x) => x.serial)).toContain(r.body.serial);
  });

  it.each([
    [{ dnsNames: [], ips: [] }, 'body.dnsNames'],
    [{ dnsNames: ['*.example'] }, 'body.dnsNames.0'],
    [{ ips: ['300.1.1.1'] }, 'body.ips.0'],
    [{ ips: ['127.0.0.1'], days: 0 }, 'body.days'],
  ])('refuses %j naming %s', async (names, field) => {
    const r = await c.call('POST', '/api/v1/certs/server', { token: admin, json: { csr: (await makeCsr()).csr, ...names } });
    expect([r.status, r.body.error.field]).toEqual([400, field]);
  });

  it('only admins', async () => {
    for (const who of ['alice', 'audrey', 'olga']) {
      const r = await c.call('POST', '/api/v1/certs/server', { token: await login(who), json: { csr: (await makeCsr()).csr, ips: ['127.0.0.1'] } });
      expect(r.status).toBe(403);
    }
  });
});

describe('with --install-token-ttl 1 --cert-max-lifetime 120', () => {
  let short: ConsoleProcess;

  beforeAll(async () => {
    short = await startConsoleProcess({ args: ['--install-token-ttl', '1', '--cert-max-lifetime', '120'] });
  });

  afterAll(async () => {
    await short?.stop({ remove: true });
  });

  it('the flags are documented in --help', () => {
    const help = spawnSync(process.execPath, [DRAWBRIDGE_BIN, 'console', '--help'], { encoding: 'utf8' }).stdout;
    expect(help).toMatch(/--install-token-ttl SECS/);
  });

  it('an install token expires: 410 "expired", and the script says so', async () => {
    const token = await short.adminToken();
    const r = await short.call('POST', '/api/v1/certs/install-command', { token });
    const t = installToken(r.body.command);
    await new Promise((done) => setTimeout(done, 1500));
    const late = await short.call('POST', '/api/v1/certs/install', { json: { csr: (await makeCsr()).csr }, ...tokenHeader(t) });
    expect(late.status).toBe(410);
    expect(late.body.error.message).toContain('expired');
    const script = await short.call('GET', '/api/v1/certs/install.sh', tokenHeader(t));
    expect(script.text).toContain('expired');
    expect(spawnSync('sh', ['-c', script.text], { encoding: 'utf8' })).toMatchObject({ status: 1, stderr: expect.stringContaining('expired') });
  });

  it('a certificate lives no longer than --cert-max-lifetime', async () => {
    const before = Date.now();
    const { csr } = await makeCsr();
    const r = await short.call('POST', '/api/v1/certs', { token: await short.adminToken(), json: { csr } });
    expect(r.status).toBe(201);
    const notAfter = new x509.X509Certificate(r.body.cert).notAfter.getTime();
    expect(notAfter).toBeLessThanOrEqual(Date.now() + 120_000);
    expect(notAfter).toBeGreaterThan(before + 110_000);
  });
});
