// The Console's side of the Defender contract (shared/wire/defender-console.ts), through the real `drawbridge
// console` binary and its real HTTPS stack: join tokens, enrolment with CSRs made here, mTLS as the Defender,
// the live policy stream, heartbeats, renewal, and who may call what. Audit delivery: console-defender-audit.test.ts.
import 'reflect-metadata'; // before @peculiar/x509
import { X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { beforeAll, describe, expect, test } from 'vitest';
import { renewResponse, type PolicyStreamLine } from '../../shared/wire/defender-console.js';
import { clientTls, enrolAsAdmin, enrollDefender, joinToken as makeJoinToken, mtlsCall, newKeyAndCsr, openPolicyStream, type EnrolledDefender, type Mtls } from '../support/console-defender-client.js';
import { consoleForFile, signedInAs } from '../support/console-process.js';
import { pollUntil } from '../support/poll.js';

const cp = consoleForFile();
const joinToken = (body: Record<string, unknown> = {}) => makeJoinToken(cp.proc, cp.admin, body);
const enrol = (host: string, extra = {}): Promise<EnrolledDefender> => enrolAsAdmin(cp.proc, cp.admin, host, extra);
const userToken = (name: string, role: string): Promise<string> => signedInAs(cp.proc, cp.admin, name, role);
const call = (d: EnrolledDefender, method: string, path: string, json?: unknown) => mtlsCall(cp.proc.url, clientTls(d), method, path, json === undefined ? {} : { json });
const snapshotAt = (version: number) => (l: PolicyStreamLine) => l.type === 'snapshot' && l.snapshot.version === version;
const defenderRow = async (host: string) => (await cp.proc.call('GET', `/api/v1/defenders/${host}`, { token: cp.admin })).body;

describe('join tokens', () => {
  test('only admins create them; the list never shows token values; deleted tokens stop working', async () => {
    expect((await cp.proc.call('POST', '/api/v1/defenders/join-tokens', { json: {} })).status).toBe(401);
    const operator = await userToken('jt-operator', 'operator');
    expect((await cp.proc.call('POST', '/api/v1/defenders/join-tokens', { token: operator, json: {} })).status).toBe(403);
    expect((await cp.proc.call('GET', '/api/v1/defenders/join-tokens', { token: operator })).status).toBe(403);
    const bad = await cp.proc.call('POST', '/api/v1/defenders/join-tokens', { token: cp.admin, json: { ttlSeconds: 0 } });
    expect([bad.status, bad.body.error.field]).toEqual([400, 'body.ttlSeconds']);

    const t = await joinToken({ ttlSeconds: 600 });
    expect(t.token).toMatch(/^dbj_/);
    expect(t.singleUse).toBe(true);
    expect(Date.parse(t.expiresAt) - Date.now()).toBeGreaterThan(500_000);
    const list = await cp.proc.call('GET', '/api/v1/defenders/join-tokens', { token: cp.admin });
    expect(list.status).toBe(200);
    expect(list.body.items.find((i: { id: string }) => i.id === t.id)).toMatchObject({ singleUse: true, uses: 0, status: 'active', createdBy: 'admin' });
    expect(list.text).not.toContain(t.token);
    expect(list.text).not.toContain(t.token.slice(4));

    expect((await cp.proc.call('DELETE', `/api/v1/defenders/join-tokens/${t.id}`, { token: cp.admin })).status).toBe(204);
    expect((await cp.proc.call('DELETE', `/api/v1/defenders/join-tokens/${t.id}`, { token: cp.admin })).status).toBe(404);
    const r = await enrollDefender(cp.proc, t.token, 'deleted-token-host');
    expect(!r.ok && r.res.status).toBe(401);
  });

  test('an unknown token is 401, a used single-use token 410, a multi-use token works twice', async () => {
    const unknown = await enrollDefender(cp.proc, 'dbj_not-a-token-anyone-issued', 'nobody');
    expect(!unknown.ok && [unknown.res.status, unknown.res.body.error.code]).toEqual([401, 'unauthenticated']);

    const single = await joinToken();
    expect((await enrollDefender(cp.proc, single.token, 'single-a')).ok).toBe(true);
    const again = await enrollDefender(cp.proc, single.token, 'single-b');
    expect(!again.ok && again.res.status).toBe(410);
    expect(!again.ok && again.res.body.error.message).toMatch(/already used/);

    const multi = await joinToken({ singleUse: false });
    expect((await enrollDefender(cp.proc, multi.token, 'multi-a')).ok).toBe(true);
    expect((await enrollDefender(cp.proc, multi.token, 'multi-b')).ok).toBe(true);
  });

  test('an expired token is 410', async () => {
    const t = await joinToken({ ttlSeconds: 1, singleUse: false });
    await pollUntil('the join token to expire', async () => {
      const list = await cp.proc.call('GET', '/api/v1/defenders/join-tokens', { token: cp.admin });
      return list.body.items.find((i: { id: string }) => i.id === t.id)?.status === 'expired';
    }, 10_000, 200);
    const r = await enrollDefender(cp.proc, t.token, 'too-late');
    expect(!r.ok && r.res.status).toBe(410);
    expect(!r.ok && r.res.body.error.message).toMatch(/expired/);
  });

  test('a bad CSR or address is 400 naming the field and does not use the token up', async () => {
    const t = await joinToken();
    const badCsr = await enrollDefender(cp.proc, t.token, 'csr-host', { clientCsr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n' });
    expect(!badCsr.ok && [badCsr.res.status, badCsr.res.body.error.field]).toEqual([400, 'body.clientCsr']);
    const badAddress = await enrollDefender(cp.proc, t.token, 'csr-host', { addresses: ['not a name!'] });
    expect(!badAddress.ok && [badAddress.res.status, badAddress.res.body.error.field]).toEqual([400, 'body.addresses.0']);
    expect((await enrollDefender(cp.proc, t.token, 'csr-host')).ok).toBe(true);
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
    if (cp.proc.caPem) expect(devA.response.ca.trim()).toBe(cp.proc.caPem.trim());
    // Registered apart: only the client certificate's kind ('defender') authenticates to the Console.
    const kindOf = async (pem: string) => {
      const serial = new X509Certificate(pem).serialNumber.toLowerCase();
      const r = await cp.proc.call('GET', '/api/v1/certs?limit=500', { token: cp.admin });
      return r.body.items.find((c: { serial: string }) => c.serial === serial)?.kind;
    };
    expect([await kindOf(devA.response.clientCert), await kindOf(devA.response.serverCert)]).toEqual(['defender', 'defender-server']);
  });

  test('its client certificate is the Defender; its server certificate and users are not', async () => {
    const status = { version: 'test-0.0.2', policyVersion: 0, listener: { type: 'tcp', address: '0.0.0.0:9998' }, auditBacklog: 7 };
    expect((await call(devA, 'POST', '/api/v1/defenders/heartbeat', status)).status).toBe(204);
    expect(await defenderRow('dev-a')).toMatchObject({ hostName: 'dev-a', version: 'test-0.0.2', auditBacklog: 7, activeListener: status.listener, address: '127.0.0.1' });

    const asServer = { ca: devA.response.ca, cert: devA.response.serverCert, key: devA.serverKey };
    expect((await mtlsCall(cp.proc.url, asServer, 'POST', '/api/v1/defenders/heartbeat', { json: status })).status).toBe(403);
    expect((await cp.proc.call('POST', '/api/v1/defenders/heartbeat', { token: cp.admin, json: status })).status).toBe(403);
    expect((await cp.proc.call('GET', '/api/v1/defenders/policy', { token: cp.admin })).status).toBe(403);
    expect((await cp.proc.call('POST', '/api/v1/defenders/audit', { token: cp.admin, json: { events: [] } })).status).toBe(403);

    for (const [method, path] of [['GET', '/api/v1/defenders'], ['GET', '/api/v1/audit'], ['POST', '/api/v1/defenders/join-tokens'], ['GET', '/api/v1/rules'], ['GET', '/api/v1/users']]) {
      expect((await call(devA, method!, path!, method === 'POST' ? {} : undefined)).status, `${method} ${path}`).toBe(403);
    }
    const bad = await call(devA, 'POST', '/api/v1/defenders/heartbeat', { ...status, extra: 1 });
    expect([bad.status, bad.body.error.field]).toEqual([400, 'body']);
  });

  test('streams the policy: a snapshot at once, then every change within a second', async () => {
    const rules = await cp.proc.call('GET', '/api/v1/rules', { token: cp.admin });
    expect(rules.status).toBe(200);
    const stream = await openPolicyStream(cp.proc.url, clientTls(devA), 0);
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
      const createdRule = await cp.proc.call('POST', '/api/v1/rules', { token: cp.admin, json: rule });
      expect(createdRule.status, createdRule.text).toBe(201);
      const pushed = await stream.next(snapshotAt(createdRule.body.version), 5_000);
      expect(pushed.type === 'snapshot' && pushed.snapshot.rules.at(-1)).toEqual({ ...rule, users: ['*'] });

      const unix = { type: 'unix', path: '/run/drawbridge/docker.sock' };
      const switched = await cp.proc.call('PUT', '/api/v1/defenders/dev-a/listener', { token: cp.admin, json: unix });
      expect(switched.status, switched.text).toBe(200);
      expect(switched.body).toMatchObject({ hostName: 'dev-a', listener: unix, connected: true });
      const relistened = await stream.next(snapshotAt(switched.body.version), 5_000);
      expect(relistened.type === 'snapshot' && relistened.snapshot.listener).toEqual(unix);
      expect((await cp.proc.call('PUT', '/api/v1/defenders/dev-a/listener', { token: cp.admin, json: { type: 'unix', path: 'relative' } })).body.error.field).toBe('body.path');
      // The companion prints the path in a command to run: no terminal escapes in it.
      expect((await cp.proc.call('PUT', '/api/v1/defenders/dev-a/listener', { token: cp.admin, json: { type: 'unix', path: '/run/d.sock\u001b[8m' } })).body.error.field).toBe('body.path');
      expect((await cp.proc.call('PUT', '/api/v1/defenders/nope/listener', { token: cp.admin, json: unix })).status).toBe(404);

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
    const version: number = (await cp.proc.call('GET', '/api/v1/rules', { token: cp.admin })).body.version;
    const stream = await openPolicyStream(cp.proc.url, clientTls(devA), version);
    try {
      await pollUntil('dev-a to be connected', async () => (await defenderRow('dev-a')).connected === true);
      const r = await cp.proc.call('DELETE', '/api/v1/rules/devs-read-only', { token: cp.admin });
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
      const taken = await enrollDefender(cp.proc, (await joinToken()).token, name);
      expect(!taken.ok && [taken.res.status, taken.res.body.error.message]).toEqual([409, expect.stringContaining(`a Defender named 'bound-a' is already enrolled; to enrol it again, use a join token made for it (POST /api/v1/defenders/join-tokens {"hostName":"bound-a"})`)]);
    }
    const other = await joinToken({ hostName: 'bound-b' });
    const wrong = await enrollDefender(cp.proc, other.token, 'bound-c');
    expect(!wrong.ok && [wrong.res.status, wrong.res.body.error.message]).toEqual([403, expect.stringContaining("this join token is for the host 'bound-b', not 'bound-c'")]);
    const list = await cp.proc.call('GET', '/api/v1/defenders/join-tokens', { token: cp.admin });
    expect(list.body.items.find((i: { id: string }) => i.id === other.id)).toMatchObject({ hostName: 'bound-b', uses: 0, status: 'active' }); // not burnt
    expect((await call(first, 'POST', '/api/v1/defenders/heartbeat', { version: 'x', policyVersion: 1, listener: { type: 'tcp', address: ':9998' }, auditBacklog: 0 })).status).toBe(204); // still itself
    expect((await enrollDefender(cp.proc, (await joinToken({ hostName: 'BOUND-A' })).token, 'bound-a')).ok).toBe(true);
    expect((await enrollDefender(cp.proc, (await joinToken()).token, 'bound-new')).ok).toBe(true);
  });

  test("a Defender's server certificate names only its own addresses: another's host name or SAN is refused (409), loopback names are everyone's", async () => {
    await enrol('san-a', { addresses: ['san-a.corp.example', '10.1.2.3', '127.0.0.1'] });
    const t = await joinToken(); // single use: every refusal below leaves it unused
    for (const [addresses, name] of [[['san-a'], 'san-a'], [['SAN-A.corp.example'], 'SAN-A.corp.example'], [['[10.1.2.3]'], '10.1.2.3']] as const) {
      const r = await enrollDefender(cp.proc, t.token, 'san-evil', { addresses: [...addresses] });
      expect(!r.ok && [r.res.status, r.res.body.error.message]).toEqual([409, expect.stringContaining(`the address '${name}' belongs to the enrolled Defender 'san-a'; a Defender's certificate may name only its own addresses`)]);
    }
    const named = await enrollDefender(cp.proc, (await joinToken()).token, 'san-a.corp.example');
    expect(!named.ok && named.res.status).toBe(409); // its host name is a name in its certificate too
    const audit = await cp.proc.call('GET', '/api/v1/console-audit?limit=1', { token: cp.admin }); // the Console's audit has the attempt
    expect(audit.body.items[0]).toMatchObject({ actor: null, method: 'POST', route: '/api/v1/defenders/enroll', target: { hostName: 'san-a.corp.example' }, status: 409 });
    const ok = await enrollDefender(cp.proc, t.token, 'san-evil', { addresses: ['localhost', '127.0.0.1', '::1', 'san-evil.corp.example'] });
    expect(ok.ok).toBe(true);
    const sans = new X509Certificate(ok.ok ? ok.defender.response.serverCert : '').subjectAltName;
    expect(sans).toBe('DNS:san-evil, DNS:localhost, DNS:san-evil.corp.example, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
  });

  test('re-enrolment revokes the old certificates; deleting a Defender ends its stream and its certificates', async () => {
    const first = await enrol('prod-a');
    const stream = await openPolicyStream(cp.proc.url, clientTls(first), 0);
    await stream.next(() => true);
    const second = await enrol('prod-a');
    await stream.ended; // its certificate was revoked: the Console ends the stream
    expect((await call(first, 'POST', '/api/v1/defenders/heartbeat', { version: 'x', policyVersion: 1, listener: { type: 'tcp', address: ':9998' }, auditBacklog: 0 })).status).toBe(403);
    const fresh = await openPolicyStream(cp.proc.url, clientTls(second), 0);
    const snap = await fresh.next((l) => l.type === 'snapshot');
    const serial = (pem: string) => new X509Certificate(pem).serialNumber.toLowerCase();
    expect(snap.type === 'snapshot' && snap.snapshot.revokedSerials).toEqual(expect.arrayContaining([serial(first.response.clientCert), serial(first.response.serverCert)]));

    expect((await cp.proc.call('DELETE', '/api/v1/defenders/prod-a', { token: await userToken('del-operator', 'operator') })).status).toBe(403);
    expect((await cp.proc.call('DELETE', '/api/v1/defenders/prod-a', { token: cp.admin })).status).toBe(204);
    await fresh.ended;
    expect((await call(second, 'GET', '/api/v1/defenders/policy')).status).toBe(403);
    expect((await cp.proc.call('GET', '/api/v1/defenders/prod-a', { token: cp.admin })).status).toBe(404);
  });
});

describe('renewal', () => {
  const serial = (pem: string): string => new X509Certificate(pem).serialNumber.toLowerCase();
  const status = { version: 'test-0.0.1', policyVersion: 0, listener: { type: 'tcp', address: '0.0.0.0:9998' }, auditBacklog: 0 };
  /** Renews as `tls` with fresh keys; on 200 also gives the new client certificate's TLS material. */
  async function renew(tls: Mtls): Promise<{ status: number; body: any; text: string; tls: Mtls; serverKey: string }> {
    const server = await newKeyAndCsr();
    const client = await newKeyAndCsr();
    const r = await mtlsCall(cp.proc.url, tls, 'POST', '/api/v1/defenders/renew', { json: { serverCsr: server.csr, clientCsr: client.csr } });
    return { ...r, tls: { ca: tls.ca, cert: r.body?.clientCert, key: client.key }, serverKey: server.key };
  }
  const certStatus = async (s: string): Promise<string | undefined> =>
    ((await cp.proc.call('GET', '/api/v1/certs?limit=500', { token: cp.admin })).body.items as { serial: string; status: string }[]).find((cert) => cert.serial === s)?.status;

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
    expect((await mtlsCall(cp.proc.url, second.tls, 'POST', '/api/v1/defenders/heartbeat', { json: status })).status).toBe(204);
    expect(await certStatus(serial(d.response.clientCert))).toBe('revoked');
    expect(await certStatus(serial(d.response.serverCert))).toBe('valid'); // left to expire: open connections use it
    expect((await call(d, 'POST', '/api/v1/defenders/heartbeat', status)).status).toBe(403);
    const stream = await openPolicyStream(cp.proc.url, second.tls, 0);
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
    expect((await mtlsCall(cp.proc.url, c2.tls, 'POST', '/api/v1/defenders/heartbeat', { json: status })).status).toBe(204);
    expect([401, 403]).toContain((await mtlsCall(cp.proc.url, b.tls, 'POST', '/api/v1/defenders/heartbeat', { json: status })).status);
    expect([401, 403]).toContain((await call(d, 'POST', '/api/v1/defenders/heartbeat', status)).status);
  });

  test('is refused with bad CSRs (400 naming the field), extra fields, anything but the client certificate, and for a deleted Defender', async () => {
    const d = await enrol('renew-c');
    const good = await newKeyAndCsr();
    const bad = await call(d, 'POST', '/api/v1/defenders/renew', { serverCsr: good.csr, clientCsr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n' });
    expect([bad.status, bad.body.error.field]).toEqual([400, 'body.clientCsr']);
    const extra = await call(d, 'POST', '/api/v1/defenders/renew', { serverCsr: good.csr, clientCsr: good.csr, hostName: 'someone-else' });
    expect([extra.status, extra.body.error.field]).toEqual([400, 'body']);
    expect((await cp.proc.call('POST', '/api/v1/defenders/renew', { token: cp.admin, json: { serverCsr: good.csr, clientCsr: good.csr } })).status).toBe(403);
    const asServer = { ca: d.response.ca, cert: d.response.serverCert, key: d.serverKey };
    expect((await renew(asServer)).status).toBe(403);

    expect((await cp.proc.call('DELETE', '/api/v1/defenders/renew-c', { token: cp.admin })).status).toBe(204);
    const refused = await renew(clientTls(d));
    expect(refused.status).toBe(403);
    expect(cp.proc.log()).toMatch(/defender certificates renewed host=renew-a/);
  });
});

test('the defenders list shows every Defender to admins, operators and auditors', async () => {
  const auditor = await userToken('list-auditor', 'auditor');
  const devA = await pollUntil('dev-a listed, not connected', async () => {
    const r = await cp.proc.call('GET', '/api/v1/defenders', { token: auditor });
    expect(r.status).toBe(200);
    const row = r.body.items.find((d: { hostName: string }) => d.hostName === 'dev-a');
    return row?.connected === false && row;
  });
  expect(devA).toMatchObject({ connected: false, address: '127.0.0.1', listener: { type: 'unix', path: '/run/drawbridge/docker.sock' } });
  expect(Object.keys(devA).sort()).toEqual(['activeListener', 'address', 'auditBacklog', 'certNotAfter', 'clientCertSerial', 'connected', 'enrolledAt', 'hostName', 'lastSeen', 'listener', 'policyVersion', 'serverCertSerial', 'version'].sort());
  expect(Date.parse(devA.lastSeen)).toBeGreaterThan(Date.parse(devA.enrolledAt) - 1);
  expect((await cp.proc.call('GET', '/api/v1/defenders', { token: await userToken('list-user', 'user') })).status).toBe(403);
  expect((await cp.proc.call('GET', '/api/v1/openapi.json')).body.paths['/api/v1/defenders/enroll']).toBeDefined();
});

test('the Console logged no internal errors', () => {
  expect(cp.proc.log()).not.toMatch(/ ERROR drawbridge-console: request failed/);
});
