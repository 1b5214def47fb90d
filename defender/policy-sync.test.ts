// The policy stream client against a real HTTPS server in this process (mTLS, NDJSON), scripted per connection.
import 'reflect-metadata';
import { webcrypto, X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCaCertificate, EC_KEY_ALGORITHM, issueLeafCertificate, newSerialNumber, toPem, type LeafProfile } from '../shared/identity/certificate-profiles.js';
import type { DefenderStatus, PolicySnapshot } from '../shared/wire/defender-console.js';
import { Backoff } from './backoff.js';
import { consoleLink, type ConsoleLink } from './console-link.js';
import type { Logger } from './log.js';
import { startPolicySync, type PolicySync } from './policy-sync.js';

x509.cryptoProvider.set(webcrypto);

type Pem = { cert: string; key: string };
let ca: Pem;
let server: Pem;
let client: Pem;
let renewedClient: Pem;
/** A leaf certificate of `ca` with `profile` (set in beforeAll). */
let leaf: (profile: LeafProfile) => Promise<Pem>;

async function keyPem(key: webcrypto.CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

beforeAll(async () => {
  const serial = () => newSerialNumber((b) => webcrypto.getRandomValues(b));
  const now = Date.now();
  const caKeys = (await webcrypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const caCert = await createCaCertificate({ commonName: 'sync test', keys: caKeys as never, serialNumber: serial(), notBefore: new Date(now - 60_000), notAfter: new Date(now + 3600_000) });
  ca = { cert: toPem(caCert), key: await keyPem(caKeys.privateKey) };
  leaf = async (profile: LeafProfile): Promise<Pem> => {
    const keys = (await webcrypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const cert = await issueLeafCertificate({ cert: caCert, key: caKeys.privateKey as never }, { profile, publicKey: keys.publicKey as never, serialNumber: serial(), notBefore: new Date(now - 60_000), notAfter: new Date(now + 3600_000) });
    return { cert: toPem(cert), key: await keyPem(keys.privateKey) };
  };
  server = await leaf({ kind: 'console-server', dnsNames: ['localhost'], ips: ['127.0.0.1'] });
  client = await leaf({ kind: 'defender-client', hostName: 'dev-a' });
  renewedClient = await leaf({ kind: 'defender-client', hostName: 'dev-a' });
});

const snapshot = (version: number): PolicySnapshot => ({ version, issuedAt: new Date().toISOString(), rules: [], revokedSerials: [], listener: { type: 'tcp', address: '127.0.0.1:9998' }, secrets: { rules: [], values: [] } });
const line = (v: unknown): string => `${JSON.stringify(v)}\n`;

interface FakeConsole {
  readonly url: string;
  readonly sinces: number[];
  readonly heartbeats: DefenderStatus[];
  /** The client certificate serial of each policy stream, in order. */
  readonly streamSerials: string[];
  readonly server: Server;
}

/** A Console's policy endpoints: connection n is handled by `scripts[n]` (the last one repeats). */
async function fakeConsole(scripts: ((write: (s: string) => void) => void)[], tls: Pem = server): Promise<FakeConsole> {
  const sinces: number[] = [];
  const heartbeats: DefenderStatus[] = [];
  const streamSerials: string[] = [];
  const srv = createServer({ cert: tls.cert, key: tls.key, ca: ca.cert, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const url = new URL(req.url!, 'https://x');
    if (req.method === 'POST' && url.pathname === '/api/v1/defenders/heartbeat') {
      let body = '';
      req.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => {
        heartbeats.push(JSON.parse(body) as DefenderStatus);
        res.writeHead(204).end();
      });
      return;
    }
    if (req.method === 'GET' && url.pathname === '/api/v1/defenders/policy') {
      sinces.push(Number(url.searchParams.get('since')));
      streamSerials.push((req.socket as TLSSocket).getPeerCertificate().serialNumber.toLowerCase());
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.flushHeaders();
      scripts[Math.min(sinces.length - 1, scripts.length - 1)]!((s) => res.write(s));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => {
    srv.closeAllConnections();
    srv.close(() => resolve());
  }));
  return { url: `https://127.0.0.1:${(srv.address() as AddressInfo).port}`, sinces, heartbeats, streamSerials, server: srv };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function run(consoleUrl: string, idleTimeoutMs = 5000): { sync: PolicySync; link: ConsoleLink; applied: number[]; logs: string[] } {
  const applied: number[] = [];
  const logs: string[] = [];
  const log: Logger = { info: (m) => logs.push(`INFO ${m}`), warn: (m) => logs.push(`WARN ${m}`), error: (m) => logs.push(`ERROR ${m}`) };
  let version = 0;
  const link = consoleLink(consoleUrl, { ca: ca.cert, cert: client.cert, key: client.key });
  const sync = startPolicySync({
    link,
    log,
    version: () => version,
    apply: async (s) => {
      version = s.version;
      applied.push(s.version);
    },
    status: () => ({ version: 'test', policyVersion: version, listener: { type: 'tcp', address: '127.0.0.1:9998' }, auditBacklog: 0 }),
    idleTimeoutMs,
    heartbeatMs: 60_000,
    backoff: new Backoff({ initialMs: 20, maxMs: 100 }),
  });
  cleanups.push(() => sync.stop());
  return { sync, link, applied, logs };
}

describe('policy sync', () => {
  it('reconnect() replaces the stream at once with the client certificate now set, from the version it has, without reporting a loss', async () => {
    const c = await fakeConsole([(write) => write(line({ type: 'snapshot', snapshot: snapshot(2) })), (write) => write(line({ type: 'heartbeat', version: 2 }))]);
    const r = run(c.url);
    await expect.poll(() => r.applied).toEqual([2]);
    r.link.setClientCertificate(renewedClient.cert, renewedClient.key);
    r.sync.reconnect();
    await expect.poll(() => c.sinces).toEqual([0, 2]);
    const serial = (pem: string): string => new X509Certificate(pem).serialNumber.toLowerCase();
    expect(c.streamSerials).toEqual([serial(client.cert), serial(renewedClient.cert)]);
    expect(r.logs.filter((l) => l.startsWith('WARN'))).toEqual([]);
  });

  it('applies snapshots in order and reports the applied version in a heartbeat', async () => {
    const c = await fakeConsole([(write) => {
      write(line({ type: 'snapshot', snapshot: snapshot(3) }));
      write(line({ type: 'heartbeat', version: 3 }));
      setTimeout(() => write(line({ type: 'snapshot', snapshot: snapshot(4) })), 50);
    }]);
    const r = run(c.url);
    await expect.poll(() => r.applied).toEqual([3, 4]);
    await expect.poll(() => c.heartbeats.some((h) => h.policyVersion === 4)).toBe(true);
    expect(c.sinces).toEqual([0]);
  });

  it('drops the connection on an invalid line and resyncs from the version it has', async () => {
    const c = await fakeConsole([
      (write) => {
        write(line({ type: 'snapshot', snapshot: snapshot(5) }));
        write('{"type":"snapshot","snapshot":{"version":"six"}}\n');
      },
      (write) => write(line({ type: 'snapshot', snapshot: snapshot(6) })),
    ]);
    const r = run(c.url);
    await expect.poll(() => r.applied).toEqual([5, 6]);
    expect(c.sinces).toEqual([0, 5]);
    expect(r.logs.some((l) => /^ERROR invalid policy stream from the Console; reconnecting/.test(l))).toBe(true);
  });

  it('treats a silent connection as dead after the idle timeout', async () => {
    const c = await fakeConsole([(write) => write(line({ type: 'snapshot', snapshot: snapshot(2) })), () => undefined]);
    const r = run(c.url, 300);
    await expect.poll(() => c.sinces.length, { timeout: 5000 }).toBeGreaterThanOrEqual(3);
    expect(c.sinces.slice(0, 2)).toEqual([0, 2]);
    expect(r.applied).toEqual([2]);
    expect(r.logs).toContain('WARN lost the Console connection; enforcing the last policy and reconnecting');
  });

  it('keeps retrying an unreachable Console with backoff, and says so once', async () => {
    const c = await fakeConsole([() => undefined]);
    const url = c.url;
    await new Promise<void>((resolve) => c.server.close(() => resolve())); // nothing listens there any more
    const r = run(url);
    await new Promise((resolve) => setTimeout(resolve, 600)); // several attempts at 20 → 100 ms
    expect(r.logs.filter((l) => l.startsWith('WARN lost the Console connection'))).toHaveLength(1);
    expect(r.applied).toEqual([]);
  });

  it('asks again from 0 when the Console is at an older version than the Defender (a restored Console)', async () => {
    const c = await fakeConsole([
      (write) => {
        write(line({ type: 'snapshot', snapshot: snapshot(9) }));
        write(line({ type: 'heartbeat', version: 4 }));
      },
      (write) => write(line({ type: 'snapshot', snapshot: snapshot(4) })),
    ]);
    const r = run(c.url);
    await expect.poll(() => r.applied).toEqual([9, 4]);
    expect(c.sinces).toEqual([0, 0]);
  });

  it('never talks to a server whose certificate is not from the enrolment CA', async () => {
    const c = await fakeConsole([(write) => write(line({ type: 'snapshot', snapshot: snapshot(1) }))]);
    const other = await (async () => {
      const keys = (await webcrypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
      const cert = await createCaCertificate({ commonName: 'other', keys: keys as never, serialNumber: newSerialNumber((b) => webcrypto.getRandomValues(b)), notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3600_000) });
      return toPem(cert);
    })();
    const link = consoleLink(c.url, { ca: other, cert: client.cert, key: client.key });
    await expect(link.send('POST', '/api/v1/defenders/heartbeat', {})).rejects.toThrow(/self-signed certificate in certificate chain|unable to verify/);
    expect(c.heartbeats).toEqual([]);
  });

  it("never takes a Defender's server certificate from the same CA for the Console, and says so at every attempt", async () => {
    const defenderServer = await leaf({ kind: 'server', dnsNames: ['localhost'], ips: ['127.0.0.1'] });
    const c = await fakeConsole([(write) => write(line({ type: 'snapshot', snapshot: snapshot(9) }))], defenderServer);
    const r = run(c.url);
    await expect(r.link.send('POST', '/api/v1/defenders/heartbeat', {})).rejects.toThrow("the server is not the Drawbridge Console: its certificate (localhost) chains to the Console's CA but lacks O=Drawbridge Console");
    await new Promise((resolve) => setTimeout(resolve, 600)); // several attempts at 20 → 100 ms
    expect(r.logs.filter((l) => l === 'ERROR refusing a server that is not the Console; enforcing the last policy').length).toBeGreaterThanOrEqual(2);
    expect(r.applied).toEqual([]);
    expect([c.sinces, c.heartbeats]).toEqual([[], []]);
  });
});
