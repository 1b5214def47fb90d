// The Console's side of the Defender contract (shared/wire/defender-console.ts), through the real `drawbridge
// console` binary and its real HTTPS stack: join tokens, enrolment with CSRs made here, mTLS as the Defender,
// the live policy stream, heartbeats, audit delivery and queries, and who may call what.
import 'reflect-metadata'; // before @peculiar/x509
import { X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { auditAck, renewResponse, type AuditEventWire, type PolicyStreamLine } from '../../shared/wire/defender-console.js';
import { clientTls, enrollDefender, mtlsCall, newKeyAndCsr, openPolicyStream, type EnrolledDefender, type Mtls } from '../support/console-defender-client.js';
import { startConsoleProcess, type ConsoleProcess } from '../support/console-process.js';
import { pollUntil } from '../support/poll.js';

let consoleProc: ConsoleProcess;
let admin: string;

async function joinToken(body: Record<string, unknown> = {}): Promise<{ id: string; token: string; expiresAt: string; singleUse: boolean }> {
  const r = await consoleProc.call('POST', '/api/v1/defenders/join-tokens', { token: admin, json: body });
  expect(r.status, r.text).toBe(201);
  return r.body;
}

/** Enrols `host` with a join token made for it (which may also enrol it again). */
async function enrol(host: string, extra = {}): Promise<EnrolledDefender> {
  const r = await enrollDefender(consoleProc, (await joinToken({ hostName: host })).token, host, extra);
  if (!r.ok) throw new Error(`enrolment of ${host} failed: ${r.res.status} ${r.res.text}`);
  return r.defender;
}

async function userToken(name: string, role: string): Promise<string> {
  const password = `${name}-password-123`;
  const r = await consoleProc.call('POST', '/api/v1/users', { token: admin, json: { name, password, role } });
  expect(r.status, r.text).toBe(201);
  return consoleProc.login(name, password);
}

const call = (d: EnrolledDefender, method: string, path: string, json?: unknown) => mtlsCall(consoleProc.url, clientTls(d), method, path, json === undefined ? {} : { json });
const snapshotAt = (version: number) => (l: PolicyStreamLine) => l.type === 'snapshot' && l.snapshot.version === version;
const defenderRow = async (host: string) => (await consoleProc.call('GET', `/api/v1/defenders/${host}`, { token: admin })).body;

beforeAll(async () => {
  consoleProc = await startConsoleProcess();
  admin = await consoleProc.adminToken();
});

afterAll(async () => {
  await consoleProc?.stop({ remove: true });
});

describe('join tokens', () => {
  test('only admins create them; the list never shows token values; deleted tokens stop working', async () => {
    expect((await consoleProc.call('POST', '/api/v1/defenders/join-tokens', { json: {} })).status).toBe(401);
    const operator = await userToken('jt-operator', 'operator');
    expect((await consoleProc.call('POST', '/api/v1/defenders/join-tokens', { token: operator, json: {} })).status).toBe(403);
    expect((await consoleProc.call('GET', '/api/v1/defenders/join-tokens', { token: operator })).status).toBe(403);
    const bad = await consoleProc.call('POST', '/api/v1/defenders/join-tokens', { token: admin, json: { ttlSeconds: 0 } });
    expect([bad.status, bad.body.error.field]).toEqual([400, 'body.ttlSeconds']);

    const t = await joinToken({ ttlSeconds: 600 });
    expect(t.token).toMatch(/^dbj_/);
    expect(t.singleUse).toBe(true);
    expect(Date.parse(t.expiresAt) - Date.now()).toBeGreaterThan(500_000);
    const list = await consoleProc.call('GET', '/api/v1/defenders/join-tokens', { token: admin });
    expect(list.status).toBe(200);
    expect(list.body.items.find((i: { id: string }) => i.id === t.id)).toMatchObject({ singleUse: true, uses: 0, status: 'active', createdBy: 'admin' });
    expect(list.text).not.toContain(t.token);
    expect(list.text).not.toContain(t.token.slice(4));

    expect((await consoleProc.call('DELETE', `/api/v1/defenders/join-tokens/${t.id}`, { token: admin })).status).toBe(204);
    expect((await consoleProc.call('DELETE', `/api/v1/defenders/join-tokens/${t.id}`, { token: admin })).status).toBe(404);
    const r = await enrollDefender(consoleProc, t.token, 'deleted-token-host');
    expect(!r.ok && r.res.status).toBe(401);
  });

  test('an unknown token is 401, a used single-use token 410, a multi-use token works twice', async () => {
    const unknown = await enrollDefender(consoleProc, 'dbj_not-a-token-anyone-issued', 'nobody');
    expect(!unknown.ok && [unknown.res.status, unknown.res.body.error.code]).toEqual([401, 'unauthenticated']);

    const single = await joinToken();
    expect((await enrollDefender(consoleProc, single.token, 'single-a')).ok).toBe(true);
    const again = await enrollDefender(consoleProc, single.token, 'single-b');
    expect(!again.ok && again.res.status).toBe(410);
    expect(!again.ok && again.res.body.error.message).toMatch(/already used/);

    const multi = await joinToken({ singleUse: false });
    expect((await enrollDefender(consoleProc, multi.token, 'multi-a')).ok).toBe(true);
    expect((await enrollDefender(consoleProc, multi.token, 'multi-b')).ok).toBe(true);
  });

  test('an expired token is 410', async () => {
    const t = await joinToken({ ttlSeconds: 1, singleUse: false });
    await pollUntil('the join token to expire', async () => {
      const list = await consoleProc.call('GET', '/api/v1/defenders/join-tokens', { token: admin });
      return list.body.items.find((i: { id: string }) => i.id === t.id)?.status === 'expired';
    }, 10_000, 200);
    const r = await enrollDefender(consoleProc, t.token, 'too-late');
    expect(!r.ok && r.res.status).toBe(410);
    expect(!r.ok && r.res.body.error.message).toMatch(/expired/);
  });

  test('a bad CSR or address is 400 naming the field and does not use the token up', async () => {
    const t = await joinToken();
    const badCsr = await enrollDefender(consoleProc, t.token, 'csr-host', { clientCsr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n' });
    expect(!badCsr.ok && [badCsr.res.status, badCsr.res.body.error.field]).toEqual([400, 'body.clientCsr']);
    const badAddress = await enrollDefender(consoleProc, t.token, 'csr-host', { addresses: ['not a name!'] });
    expect(!badAddress.ok && [badAddress.res.status, badAddress.res.body.error.field]).toEqual([400, 'body.addresses.0']);
    expect((await enrollDefender(consoleProc, t.token, 'csr-host')).ok).toBe(true);
  });
});

describe('an enrolled Defender', () => {
  let devA: EnrolledDefender;

  beforeAll(async () => {
    devA = await enrol('dev-a', { addresses: ['dev-a.example.test', '127.0.0.1', '::1'] });
  });

  test('gets certificates from the Console CA: a client certificate naming it, a server certificate with its SANs', async () => {
    const ca = new X509Certificate(devA.response.ca);
    const client = new X509Certificate(devA.response.clientCert);
    const server = new X509Certificate(devA.response.serverCert);
    for (const cert of [client, server]) {
      expect(cert.checkIssued(ca)).toBe(true);
      expect(cert.verify(ca.publicKey)).toBe(true);
      expect(cert.ca).toBe(false);
    }
    expect(new x509.X509Certificate(devA.response.clientCert).subject).toBe('CN=dev-a, O=Drawbridge Defender');
    expect(client.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']); // clientAuth only
    expect(server.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // serverAuth only
    expect(server.subjectAltName?.split(', ').sort()).toEqual(['DNS:dev-a', 'DNS:dev-a.example.test', 'IP Address:0:0:0:0:0:0:0:1', 'IP Address:127.0.0.1'].sort());
    expect(devA.response.listener).toEqual({ type: 'tcp', address: '0.0.0.0:9998' });
    if (consoleProc.caPem) expect(devA.response.ca.trim()).toBe(consoleProc.caPem.trim());
    // Registered apart: only the client certificate's kind ('defender') authenticates to the Console.
    const kindOf = async (pem: string) => {
      const serial = new X509Certificate(pem).serialNumber.toLowerCase();
      const r = await consoleProc.call('GET', '/api/v1/certs?limit=500', { token: admin });
      return r.body.items.find((c: { serial: string }) => c.serial === serial)?.kind;
    };
    expect([await kindOf(devA.response.clientCert), await kindOf(devA.response.serverCert)]).toEqual(['defender', 'defender-server']);
  });

  test('its client certificate is the Defender; its server certificate and users are not', async () => {
    const status = { version: 'test-0.0.2', policyVersion: 0, listener: { type: 'tcp', address: '0.0.0.0:9998' }, auditBacklog: 7 };
    expect((await call(devA, 'POST', '/api/v1/defenders/heartbeat', status)).status).toBe(204);
    expect(await defenderRow('dev-a')).toMatchObject({ hostName: 'dev-a', version: 'test-0.0.2', auditBacklog: 7, activeListener: status.listener, address: '127.0.0.1' });

    const asServer = { ca: devA.response.ca, cert: devA.response.serverCert, key: devA.serverKey };
    expect((await mtlsCall(consoleProc.url, asServer, 'POST', '/api/v1/defenders/heartbeat', { json: status })).status).toBe(403);
    expect((await consoleProc.call('POST', '/api/v1/defenders/heartbeat', { token: admin, json: status })).status).toBe(403);
    expect((await consoleProc.call('GET', '/api/v1/defenders/policy', { token: admin })).status).toBe(403);
    expect((await consoleProc.call('POST', '/api/v1/defenders/audit', { token: admin, json: { events: [] } })).status).toBe(403);

    for (const [method, path] of [['GET', '/api/v1/defenders'], ['GET', '/api/v1/audit'], ['POST', '/api/v1/defenders/join-tokens'], ['GET', '/api/v1/rules'], ['GET', '/api/v1/users']]) {
      expect((await call(devA, method!, path!, method === 'POST' ? {} : undefined)).status, `${method} ${path}`).toBe(403);
    }
    const bad = await call(devA, 'POST', '/api/v1/defenders/heartbeat', { ...status, extra: 1 });
    expect([bad.status, bad.body.error.field]).toEqual([400, 'body']);
  });

  test('streams the policy: a snapshot at once, then every change within a second', async () => {
    const rules = await consoleProc.call('GET', '/api/v1/rules', { token: admin });
    expect(rules.status).toBe(200);
    const stream = await openPolicyStream(consoleProc.url, clientTls(devA), 0);
    try {
      expect(stream.status).toBe(200);
      expect(stream.contentType).toBe('application/x-ndjson');
      const first = await stream.next(() => true);
      expect(first.type).toBe('snapshot');
      if (first.type !== 'snapshot') return;
      expect(first.snapshot.version).toBe(rules.body.version);
      const plain = rules.body.items.filter((r: { default: boolean }) => !r.default).map(({ name, effect, users, groups, hosts, actions }: Record<string, unknown>) => ({ name, effect, users, groups, hosts, actions }));
      expect(first.snapshot.rules).toEqual(plain);
      expect(first.snapshot.listener).toEqual({ type: 'tcp', address: '0.0.0.0:9998' });
      await pollUntil('dev-a to be listed as connected', async () => (await defenderRow('dev-a')).connected === true);

      const rule = { name: 'devs-read-only', effect: 'allow', groups: ['devs'], hosts: ['dev-*'], actions: ['container_list', 'container_inspect'] };
      const createdRule = await consoleProc.call('POST', '/api/v1/rules', { token: admin, json: rule });
      expect(createdRule.status, createdRule.text).toBe(201);
      const pushed = await stream.next(snapshotAt(createdRule.body.version), 5_000);
      expect(pushed.type === 'snapshot' && pushed.snapshot.rules.at(-1)).toEqual({ ...rule, users: ['*'] });

      const unix = { type: 'unix', path: '/run/drawbridge/docker.sock' };
      const switched = await consoleProc.call('PUT', '/api/v1/defenders/dev-a/listener', { token: admin, json: unix });
      expect(switched.status, switched.text).toBe(200);
      expect(switched.body).toMatchObject({ hostName: 'dev-a', listener: unix, connected: true });
      const relistened = await stream.next(snapshotAt(switched.body.version), 5_000);
      expect(relistened.type === 'snapshot' && relistened.snapshot.listener).toEqual(unix);
      expect((await consoleProc.call('PUT', '/api/v1/defenders/dev-a/listener', { token: admin, json: { type: 'unix', path: 'relative' } })).body.error.field).toBe('body.path');
      // The companion prints the path in a command to run: no terminal escapes in it.
      expect((await consoleProc.call('PUT', '/api/v1/defenders/dev-a/listener', { token: admin, json: { type: 'unix', path: '/run/d.sock\u001b[8m' } })).body.error.field).toBe('body.path');
      expect((await consoleProc.call('PUT', '/api/v1/defenders/nope/listener', { token: admin, json: unix })).status).toBe(404);

      // A re-enrolment keeps the listener an admin chose.
      const again = await enrol('dev-a');
      expect(again.response.listener).toEqual(unix);
      devA = again;
    } finally {
      stream.close();
    }
    await pollUntil('dev-a to be listed as disconnected', async () => (await defenderRow('dev-a')).connected === false);
  });

  test('a stream opened at the current version gets only what changes after', async () => {
    const version: number = (await consoleProc.call('GET', '/api/v1/rules', { token: admin })).body.version;
    const stream = await openPolicyStream(consoleProc.url, clientTls(devA), version);
    try {
      await pollUntil('dev-a to be connected', async () => (await defenderRow('dev-a')).connected === true);
      const r = await consoleProc.call('DELETE', '/api/v1/rules/devs-read-only', { token: admin });
      expect(r.status).toBe(204);
      const line = await stream.next((l) => l.type === 'snapshot', 5_000);
      expect(line.type === 'snapshot' && line.snapshot.version).toBeGreaterThan(version);
      expect(stream.lines.filter((l) => l.type === 'snapshot')).toHaveLength(1);
    } finally {
      stream.close();
    }
  });

  test('a token for any name enrols only a name no Defender has: taking over an enrolled one (any letter case) needs a token made for it', async () => {
    const first = await enrol('bound-a');
    for (const name of ['bound-a', 'BOUND-A']) {
      const taken = await enrollDefender(consoleProc, (await joinToken()).token, name);
      expect(!taken.ok && [taken.res.status, taken.res.body.error.message]).toEqual([409, expect.stringContaining(`a Defender named 'bound-a' is already enrolled; to enrol it again, use a join token made for it (POST /api/v1/defenders/join-tokens {"hostName":"bound-a"})`)]);
    }
    const other = await joinToken({ hostName: 'bound-b' });
    const wrong = await enrollDefender(consoleProc, other.token, 'bound-c');
    expect(!wrong.ok && [wrong.res.status, wrong.res.body.error.message]).toEqual([403, expect.stringContaining("this join token is for the host 'bound-b', not 'bound-c'")]);
    const list = await consoleProc.call('GET', '/api/v1/defenders/join-tokens', { token: admin });
    expect(list.body.items.find((i: { id: string }) => i.id === other.id)).toMatchObject({ hostName: 'bound-b', uses: 0, status: 'active' }); // not burnt
    expect((await call(first, 'POST', '/api/v1/defenders/heartbeat', { version: 'x', policyVersion: 1, listener: { type: 'tcp', address: ':9998' }, auditBacklog: 0 })).status).toBe(204); // still itself
    expect((await enrollDefender(consoleProc, (await joinToken({ hostName: 'BOUND-A' })).token, 'bound-a')).ok).toBe(true);
    expect((await enrollDefender(consoleProc, (await joinToken()).token, 'bound-new')).ok).toBe(true);
  });

  test("a Defender's server certificate names only its own addresses: another's host name or SAN is refused (409), loopback names are everyone's", async () => {
    await enrol('san-a', { addresses: ['san-a.corp.example', '10.1.2.3', '127.0.0.1'] });
    const t = await joinToken(); // single use: every refusal below leaves it unused
    for (const [addresses, name] of [[['san-a'], 'san-a'], [['SAN-A.corp.example'], 'SAN-A.corp.example'], [['[10.1.2.3]'], '10.1.2.3']] as const) {
      const r = await enrollDefender(consoleProc, t.token, 'san-evil', { addresses: [...addresses] });
      expect(!r.ok && [r.res.status, r.res.body.error.message]).toEqual([409, expect.stringContaining(`the address '${name}' belongs to the enrolled Defender 'san-a'; a Defender's certificate may name only its own addresses`)]);
    }
    const named = await enrollDefender(consoleProc, (await joinToken()).token, 'san-a.corp.example');
    expect(!named.ok && named.res.status).toBe(409); // its host name is a name in its certificate too
    const audit = await consoleProc.call('GET', '/api/v1/console-audit?limit=1', { token: admin }); // the Console's audit has the attempt
    expect(audit.body.items[0]).toMatchObject({ actor: null, method: 'POST', route: '/api/v1/defenders/enroll', target: { hostName: 'san-a.corp.example' }, status: 409 });
    const ok = await enrollDefender(consoleProc, t.token, 'san-evil', { addresses: ['localhost', '127.0.0.1', '::1', 'san-evil.corp.example'] });
    expect(ok.ok).toBe(true);
    const sans = new X509Certificate(ok.ok ? ok.defender.response.serverCert : '').subjectAltName;
    expect(sans).toBe('DNS:san-evil, DNS:localhost, DNS:san-evil.corp.example, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
  });

  test('re-enrolment revokes the old certificates; deleting a Defender ends its stream and its certificates', async () => {
    const first = await enrol('prod-a');
    const stream = await openPolicyStream(consoleProc.url, clientTls(first), 0);
    await stream.next(() => true);
    const second = await enrol('prod-a');
    await stream.ended; // its certificate was revoked: the Console ends the stream
    expect((await call(first, 'POST', '/api/v1/defenders/heartbeat', { version: 'x', policyVersion: 1, listener: { type: 'tcp', address: ':9998' }, auditBacklog: 0 })).status).toBe(403);
    const fresh = await openPolicyStream(consoleProc.url, clientTls(second), 0);
    const snap = await fresh.next((l) => l.type === 'snapshot');
    const serial = (pem: string) => new X509Certificate(pem).serialNumber.toLowerCase();
    expect(snap.type === 'snapshot' && snap.snapshot.revokedSerials).toEqual(expect.arrayContaining([serial(first.response.clientCert), serial(first.response.serverCert)]));

    expect((await consoleProc.call('DELETE', '/api/v1/defenders/prod-a', { token: await userToken('del-operator', 'operator') })).status).toBe(403);
    expect((await consoleProc.call('DELETE', '/api/v1/defenders/prod-a', { token: admin })).status).toBe(204);
    await fresh.ended;
    expect((await call(second, 'GET', '/api/v1/defenders/policy')).status).toBe(403);
    expect((await consoleProc.call('GET', '/api/v1/defenders/prod-a', { token: admin })).status).toBe(404);
  });
});

describe('renewal', () => {
  const serial = (pem: string): string => new X509Certificate(pem).serialNumber.toLowerCase();
  const status = { version: 'test-0.0.1', policyVersion: 0, listener: { type: 'tcp', address: '0.0.0.0:9998' }, auditBacklog: 0 };
  /** Renews as `tls` with fresh keys; on 200 also gives the new client certificate's TLS material. */
  async function renew(tls: Mtls): Promise<{ status: number; body: any; text: string; tls: Mtls; serverKey: string }> {
    const server = await newKeyAndCsr();
    const client = await newKeyAndCsr();
    const r = await mtlsCall(consoleProc.url, tls, 'POST', '/api/v1/defenders/renew', { json: { serverCsr: server.csr, clientCsr: client.csr } });
    return { ...r, tls: { ca: tls.ca, cert: r.body?.clientCert, key: client.key }, serverKey: server.key };
  }
  const certStatus = async (s: string): Promise<string | undefined> =>
    ((await consoleProc.call('GET', '/api/v1/certs?limit=500', { token: admin })).body.items as { serial: string; status: string }[]).find((c) => c.serial === s)?.status;

  test('gives new certificates like enrolment (SANs and subject from the record, never the CSRs) and the Console shows them', async () => {
    const d = await enrol('renew-a', { addresses: ['renew-a.example.test', '127.0.0.1'] });
    const r = await renew(clientTls(d));
    expect(r.status, r.text).toBe(200);
    const answer = renewResponse.parse(r.body);
    expect(answer.hostName).toBe('renew-a');
    const ca = new X509Certificate(answer.ca);
    const client = new X509Certificate(answer.clientCert);
    const server = new X509Certificate(answer.serverCert);
    for (const cert of [client, server]) expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);
    expect(new x509.X509Certificate(answer.clientCert).subject).toBe('CN=renew-a, O=Drawbridge Defender');
    expect(client.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(server.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(server.subjectAltName?.split(', ').sort()).toEqual(new X509Certificate(d.response.serverCert).subjectAltName?.split(', ').sort());
    expect(serial(answer.clientCert)).not.toBe(serial(d.response.clientCert));
    const row = await defenderRow('renew-a');
    expect(row).toMatchObject({ clientCertSerial: serial(answer.clientCert), serverCertSerial: serial(answer.serverCert) });
    expect(Math.floor(Date.parse(row.certNotAfter) / 1000) * 1000).toBe(Date.parse(client.validTo)); // X.509 keeps whole seconds
    expect(await certStatus(serial(answer.serverCert))).toBe('valid');
  });

  test('the replaced client certificate works until the new one is used, then it is revoked; a lost answer is asked again', async () => {
    const d = await enrol('renew-b');
    const first = await renew(clientTls(d));
    expect(first.status, first.text).toBe(200);
    // The answer "got lost": the Defender asks again with the certificate it still has; the unused pair is revoked.
    const second = await renew(clientTls(d));
    expect(second.status, second.text).toBe(200);
    expect([await certStatus(serial(first.body.clientCert)), await certStatus(serial(first.body.serverCert))]).toEqual(['revoked', 'revoked']);
    expect((await call(d, 'POST', '/api/v1/defenders/heartbeat', status)).status).toBe(204); // the old one still works
    expect((await mtlsCall(consoleProc.url, second.tls, 'POST', '/api/v1/defenders/heartbeat', { json: status })).status).toBe(204);
    expect(await certStatus(serial(d.response.clientCert))).toBe('revoked');
    expect(await certStatus(serial(d.response.serverCert))).toBe('valid'); // left to expire: open connections use it
    expect((await call(d, 'POST', '/api/v1/defenders/heartbeat', status)).status).toBe(403);
    const stream = await openPolicyStream(consoleProc.url, second.tls, 0);
    const snap = await stream.next((l) => l.type === 'snapshot');
    expect(snap.type === 'snapshot' && snap.snapshot.revokedSerials).toContain(serial(d.response.clientCert));
    stream.close();
    // And the renewed certificate renews in turn.
    expect((await renew(second.tls)).status).toBe(200);
  });

  test('a renewal with a renewed certificate not used yet revokes the one before it: A→B→C leaves A refused', async () => {
    const d = await enrol('renew-chain');
    const b = await renew(clientTls(d));
    expect(b.status, b.text).toBe(200);
    const c = await renew(b.tls); // B renews before any heartbeat or stream confirmed it
    expect(c.status, c.text).toBe(200);
    expect(await certStatus(serial(d.response.clientCert))).toBe('revoked');
    expect([401, 403]).toContain((await call(d, 'POST', '/api/v1/defenders/heartbeat', status)).status);
    expect([401, 403]).toContain((await call(d, 'GET', '/api/v1/defenders/policy')).status);
    expect([401, 403]).toContain((await renew(clientTls(d))).status);
    // The C answer "got lost": B (the certificate that asked) still works and renews again; C is revoked unused.
    const c2 = await renew(b.tls);
    expect(c2.status, c2.text).toBe(200);
    expect(await certStatus(serial(c.body.clientCert))).toBe('revoked');
    expect((await mtlsCall(consoleProc.url, c2.tls, 'POST', '/api/v1/defenders/heartbeat', { json: status })).status).toBe(204);
    expect([401, 403]).toContain((await mtlsCall(consoleProc.url, b.tls, 'POST', '/api/v1/defenders/heartbeat', { json: status })).status);
    expect([401, 403]).toContain((await call(d, 'POST', '/api/v1/defenders/heartbeat', status)).status);
  });

  test('is refused with bad CSRs (400 naming the field), extra fields, anything but the client certificate, and for a deleted Defender', async () => {
    const d = await enrol('renew-c');
    const good = await newKeyAndCsr();
    const bad = await call(d, 'POST', '/api/v1/defenders/renew', { serverCsr: good.csr, clientCsr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n' });
    expect([bad.status, bad.body.error.field]).toEqual([400, 'body.clientCsr']);
    const extra = await call(d, 'POST', '/api/v1/defenders/renew', { serverCsr: good.csr, clientCsr: good.csr, hostName: 'someone-else' });
    expect([extra.status, extra.body.error.field]).toEqual([400, 'body']);
    expect((await consoleProc.call('POST', '/api/v1/defenders/renew', { token: admin, json: { serverCsr: good.csr, clientCsr: good.csr } })).status).toBe(403);
    const asServer = { ca: d.response.ca, cert: d.response.serverCert, key: d.serverKey };
    expect((await renew(asServer)).status).toBe(403);

    expect((await consoleProc.call('DELETE', '/api/v1/defenders/renew-c', { token: admin })).status).toBe(204);
    const refused = await renew(clientTls(d));
    expect(refused.status).toBe(403);
    expect(consoleProc.log()).toMatch(/defender certificates renewed host=renew-a/);
  });
});

describe('audit', () => {
  const event = (seq: number, over: Partial<AuditEventWire> = {}): AuditEventWire => ({
    seq, time: `2030-01-01T00:00:0${seq}.000Z`, user: 'bruce', groups: ['devs'], host: 'audit-a', action: 'container_list', method: 'GET',
    path: '/v1.45/containers/json', decision: 'allow', rule: 'devs-read-only', status: 200, client: '127.0.0.1:50000', ...over,
  });

  test('a batch sent twice is stored once, under the Defender that sent it', async () => {
    const a = await enrol('audit-a');
    const b = await enrol('audit-b');
    const batch = { events: [event(1), event(2, { user: 'alice', decision: 'deny', action: 'container_create', rule: null }), event(3, { host: 'spoofed' })] };
    const first = await call(a, 'POST', '/api/v1/defenders/audit', batch);
    expect(first.status, first.text).toBe(200);
    expect(auditAck.parse(first.body)).toEqual({ stored: 3, ackedSeq: 3 });
    expect((await call(a, 'POST', '/api/v1/defenders/audit', batch)).body).toEqual({ stored: 0, ackedSeq: 3 });
    expect((await call(a, 'POST', '/api/v1/defenders/audit', { events: [event(3), event(4, { time: '2030-01-01T01:00:00+01:00' })] })).body).toEqual({ stored: 1, ackedSeq: 4 });
    // Another Defender's seqs are its own.
    expect((await call(b, 'POST', '/api/v1/defenders/audit', { events: [event(1, { host: 'audit-b', user: 'carol' })] })).body).toEqual({ stored: 1, ackedSeq: 1 });
    const invalid = await call(a, 'POST', '/api/v1/defenders/audit', { events: [event(5, { action: 'rm_rf' })] });
    expect([invalid.status, invalid.body.error.field]).toEqual([400, 'body.events.0.action']);

    const all = await consoleProc.call('GET', '/api/v1/audit', { token: admin });
    expect(all.status).toBe(200);
    expect(all.body.items.map((e: { defender: string; seq: number }) => `${e.defender}#${e.seq}`)).toEqual(['audit-b#1', 'audit-a#4', 'audit-a#3', 'audit-a#2', 'audit-a#1']);
    expect(all.body.items[2]).toMatchObject({ defender: 'audit-a', host: 'spoofed' });
    expect(all.body.items[1].time).toBe('2030-01-01T00:00:00.000Z'); // normalised to UTC
  });

  test('queries filter by user, host, action, decision and time, page newest first, and are for admins and auditors', async () => {
    const auditor = await userToken('the-auditor', 'auditor');
    const q = async (query: string, token = auditor) => {
      const r = await consoleProc.call('GET', `/api/v1/audit${query}`, { token });
      expect(r.status, r.text).toBe(200);
      return r.body.items.map((e: { defender: string; seq: number }) => `${e.defender}#${e.seq}`);
    };
    expect(await q('?user=ALICE')).toEqual(['audit-a#2']);
    expect(await q('?host=audit-b')).toEqual(['audit-b#1']);
    expect(await q('?action=container_create')).toEqual(['audit-a#2']);
    expect(await q('?decision=allow&user=bruce')).toEqual(['audit-a#4', 'audit-a#3', 'audit-a#1']);
    expect(await q(`?from=${encodeURIComponent('2030-01-01T00:00:01Z')}&to=${encodeURIComponent('2030-01-01T00:00:03Z')}`)).toEqual(['audit-b#1', 'audit-a#2', 'audit-a#1']);
    expect(await q(`?from=${encodeURIComponent('2030-01-01T02:00:02+02:00')}`)).toEqual(['audit-a#3', 'audit-a#2']);

    const page1 = await consoleProc.call('GET', '/api/v1/audit?limit=2', { token: admin });
    expect(page1.body.items).toHaveLength(2);
    const page2 = await consoleProc.call('GET', `/api/v1/audit?limit=2&cursor=${page1.body.nextCursor}`, { token: admin });
    const page3 = await consoleProc.call('GET', `/api/v1/audit?limit=2&cursor=${page2.body.nextCursor}`, { token: admin });
    expect([...page1.body.items, ...page2.body.items, ...page3.body.items].map((e: { id: number }) => e.id)).toEqual((await consoleProc.call('GET', '/api/v1/audit', { token: admin })).body.items.map((e: { id: number }) => e.id));
    expect(page3.body.nextCursor).toBeNull();

    const badTime = await consoleProc.call('GET', '/api/v1/audit?from=yesterday', { token: admin });
    expect([badTime.status, badTime.body.error.field]).toEqual([400, 'query.from']);
    expect((await consoleProc.call('GET', '/api/v1/audit', { token: await userToken('audit-op', 'operator') })).status).toBe(403);
  });

  test("seqs are the enrolment's: what an old key posted neither blocks nor pre-empts a re-enrolled Defender; far jumps are refused", async () => {
    const host = 'audit-poison';
    const at = (seq: number, over: Partial<AuditEventWire> = {}) => event(seq, { host, user: 'mallory', time: '2030-01-02T00:00:00.000Z', ...over });
    const stolen = await enrol(host);
    // The thief's first batch of the enrolment: the highest seq there is, and seqs ahead of the real Defender's.
    expect((await call(stolen, 'POST', '/api/v1/defenders/audit', { events: [at(1, { path: '/forged' }), at(2, { path: '/forged' })] })).body).toEqual({ stored: 2, ackedSeq: 2 });
    const far = await call(stolen, 'POST', '/api/v1/defenders/audit', { events: [at(3), at(Number.MAX_SAFE_INTEGER)] });
    expect([far.status, far.body.error?.field], far.text).toEqual([400, 'body.events.1.seq']);
    expect((await call(stolen, 'POST', '/api/v1/defenders/audit', { events: [at(2 + 1_000_000, { path: '/forged' })] })).status).toBe(200); // at the limit
    const poisoned = await enrol('audit-poison-2');
    expect((await call(poisoned, 'POST', '/api/v1/defenders/audit', { events: [at(Number.MAX_SAFE_INTEGER, { host: 'audit-poison-2' })] })).status).toBe(200);

    // Re-enrolled: seqs start afresh, and the real Defender's events 1..3 are all stored.
    const r = await enrollDefender(consoleProc, (await joinToken({ hostName: host })).token, host);
    if (!r.ok) throw new Error(r.res.text);
    expect((await mtlsCall(consoleProc.url, clientTls(r.defender), 'POST', '/api/v1/defenders/audit', { json: { events: [at(1), at(2), at(3)] } })).body).toEqual({ stored: 3, ackedSeq: 3 });
    const again = await enrollDefender(consoleProc, (await joinToken({ hostName: 'audit-poison-2' })).token, 'audit-poison-2');
    if (!again.ok) throw new Error(again.res.text);
    expect((await mtlsCall(consoleProc.url, clientTls(again.defender), 'POST', '/api/v1/defenders/audit', { json: { events: [at(1, { host: 'audit-poison-2' })] } })).body).toEqual({ stored: 1, ackedSeq: 1 });

    // An event that enrolment stored but whose answer was lost is sent again after a re-enrolment: held once, acknowledged.
    const lost = at(4, { path: '/lost-answer', time: '2030-01-02T00:00:04.000Z' });
    expect((await mtlsCall(consoleProc.url, clientTls(r.defender), 'POST', '/api/v1/defenders/audit', { json: { events: [lost] } })).body).toEqual({ stored: 1, ackedSeq: 4 });
    const third = await enrollDefender(consoleProc, (await joinToken({ hostName: host })).token, host);
    if (!third.ok) throw new Error(third.res.text);
    expect((await mtlsCall(consoleProc.url, clientTls(third.defender), 'POST', '/api/v1/defenders/audit', { json: { events: [lost] } })).body).toEqual({ stored: 0, ackedSeq: 4 });
    expect((await mtlsCall(consoleProc.url, clientTls(third.defender), 'POST', '/api/v1/defenders/audit', { json: { events: [lost, at(5)] } })).body).toEqual({ stored: 1, ackedSeq: 5 });
    const stored = (await consoleProc.call('GET', `/api/v1/audit?host=${host}&limit=500`, { token: admin })).body.items as { seq: number; path: string }[];
    expect(stored.filter((e) => e.path === '/lost-answer')).toHaveLength(1);
  });
});

test('the defenders list shows every Defender to admins, operators and auditors', async () => {
  const auditor = await userToken('list-auditor', 'auditor');
  const devA = await pollUntil('dev-a listed, not connected', async () => {
    const r = await consoleProc.call('GET', '/api/v1/defenders', { token: auditor });
    expect(r.status).toBe(200);
    const row = r.body.items.find((d: { hostName: string }) => d.hostName === 'dev-a');
    return row?.connected === false && row;
  });
  expect(devA).toMatchObject({ connected: false, address: '127.0.0.1', listener: { type: 'unix', path: '/run/drawbridge/docker.sock' } });
  expect(Object.keys(devA).sort()).toEqual(['activeListener', 'address', 'auditBacklog', 'certNotAfter', 'clientCertSerial', 'connected', 'enrolledAt', 'hostName', 'lastSeen', 'listener', 'policyVersion', 'serverCertSerial', 'version'].sort());
  expect(Date.parse(devA.lastSeen)).toBeGreaterThan(Date.parse(devA.enrolledAt) - 1);
  expect((await consoleProc.call('GET', '/api/v1/defenders', { token: await userToken('list-user', 'user') })).status).toBe(403);
  expect((await consoleProc.call('GET', '/api/v1/openapi.json')).body.paths['/api/v1/defenders/enroll']).toBeDefined();
});

test('the Console logged no internal errors', () => {
  expect(consoleProc.log()).not.toMatch(/ ERROR drawbridge-console: request failed/);
});
