import 'reflect-metadata'; // @peculiar/x509 (tsyringe) needs it loaded first
import { createPrivateKey, X509Certificate as NodeX509 } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { identityFromCertificate, IdentityError } from '../../shared/identity/certificate-identity.js';
import { createCa, issueClientCert, issueServerCert, writePemFiles, type CertificateAuthority, type Pem } from './pki.js';

const der = (pem: string) => new Uint8Array(new NodeX509(pem).raw);
const ekus = (pem: string) => new x509.X509Certificate(pem).getExtension(x509.ExtendedKeyUsageExtension)?.usages;

let ca: CertificateAuthority;
let server: Pem;

beforeAll(async () => {
  ca = await createCa('Drawbridge PKI Test CA');
  server = await issueServerCert(ca, { dnsNames: ['localhost'], ips: ['127.0.0.1'] });
});

describe('certificates', () => {
  test('a client certificate carries the identity: CN user, OU groups in order', async () => {
    const client = await issueClientCert(ca, { user: 'bruce', groups: ['devs', 'ops', 'devs'] });
    expect(identityFromCertificate(der(client.cert))).toEqual({ user: 'bruce', groups: ['devs', 'ops'] });
    const cert = new NodeX509(client.cert);
    expect(cert.checkIssued(new NodeX509(ca.cert))).toBe(true);
    expect(cert.verify(new NodeX509(ca.cert).publicKey)).toBe(true);
  });

  test('an invalid identity is refused before anything is signed', async () => {
    await expect(issueClientCert(ca, { user: '', groups: [] })).rejects.toBeInstanceOf(IdentityError);
    await expect(issueClientCert(ca, { user: 'a\nb', groups: [] })).rejects.toBeInstanceOf(IdentityError);
  });

  test('EKUs, key usage and CA flags are what TLS checks', async () => {
    const client = await ca.issueClientCert({ user: 'alice', groups: [] });
    expect(ekus(client.cert)).toEqual([x509.ExtendedKeyUsage.clientAuth]);
    expect(ekus(server.cert)).toEqual([x509.ExtendedKeyUsage.serverAuth]);
    expect(new NodeX509(ca.cert).ca).toBe(true);
    expect(new NodeX509(client.cert).ca).toBe(false);
    expect(new NodeX509(server.cert).subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1');
  });

  test('keys are unencrypted PKCS#8 P-256', () => {
    for (const pem of [ca, server]) {
      expect(pem.key).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----\n$/);
      const key = createPrivateKey(pem.key);
      expect(key.asymmetricKeyType).toBe('ec');
      expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    }
    expect(new NodeX509(ca.cert).publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
  });

  test('an expired certificate can be made', async () => {
    const notAfter = new Date(Date.now() - 24 * 60 * 60_000);
    const client = await issueClientCert(ca, { user: 'old', groups: [] }, { notAfter });
    const cert = new NodeX509(client.cert);
    expect(new Date(cert.validTo).getTime()).toBeLessThan(Date.now());
    expect(new Date(cert.validFrom).getTime()).toBeLessThan(new Date(cert.validTo).getTime());
  });
});

describe('a real TLS handshake over 127.0.0.1', () => {
  // Two servers with the same certificate: `strict` rejects unauthorised clients (as the Defender will; in TLS 1.3
  // Node drops them right after the handshake, before any byte), `lenient` says why it would have.
  let strict: tls.Server;
  let lenient: tls.Server;
  const seen: string[] = [];

  async function listen(server: tls.Server): Promise<number> {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  }
  let strictPort: number;
  let lenientPort: number;

  beforeAll(async () => {
    const options = { ...server, ca: ca.cert, requestCert: true };
    strict = tls.createServer({ ...options, rejectUnauthorized: true }, (socket) => {
      seen.push(identityFromCertificate(new Uint8Array(socket.getPeerCertificate().raw)).user);
      socket.end('ok');
    });
    lenient = tls.createServer({ ...options, rejectUnauthorized: false }, (socket) => {
      socket.end(socket.authorized ? 'ok' : String(socket.authorizationError));
    });
    strictPort = await listen(strict);
    lenientPort = await listen(lenient);
  });
  afterAll(async () => {
    await Promise.all([strict, lenient].map((s) => new Promise((resolve) => s.close(resolve))));
  });

  /** Connects with `client` and resolves with everything the server sent before closing. */
  function exchange(port: number, client: Pem): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: ca.cert, ...client });
      let data = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (data += chunk));
      socket.on('close', () => resolve(data));
      socket.on('error', reject);
    });
  }

  test('the server and a client of the same CA complete the handshake, identity read from the peer cert', async () => {
    const client = await issueClientCert(ca, { user: 'carol', groups: ['devs'] });
    expect(await exchange(strictPort, client)).toBe('ok');
    expect(seen).toContain('carol');
  });

  test.each([
    ['from another CA', async () => (await createCa('Some Other CA')).issueClientCert({ user: 'mallory', groups: [] }), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
    ['expired', () => issueClientCert(ca, { user: 'late', groups: [] }, { notAfter: new Date(Date.now() - 60_000) }), 'CERT_HAS_EXPIRED'],
    ['with the serverAuth EKU only', async () => server, 'INVALID_PURPOSE'],
  ] as const)('a client certificate %s is rejected', async (_, make, reason) => {
    const client = await make();
    const before = seen.length;
    expect(await exchange(strictPort, client)).toBe('');
    expect(seen.length).toBe(before);
    expect(await exchange(lenientPort, client)).toBe(reason);
  });
});

describe('writePemFiles', () => {
  let dir: string;
  beforeAll(async () => {
    dir = join(await mkdtemp(join(tmpdir(), 'pki-test-')), 'nested', 'docker');
  });
  afterAll(async () => {
    await rm(join(dir, '..', '..'), { recursive: true, force: true });
  });

  test('writes 0600 files in a 0700 directory and leaves no temp files', async () => {
    await writePemFiles(dir, { 'ca.pem': ca.cert, 'cert.pem': server.cert, 'key.pem': server.key });
    await writePemFiles(dir, { 'key.pem': server.key }); // overwrite in place
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await readdir(dir)).sort()).toEqual(['ca.pem', 'cert.pem', 'key.pem']);
    for (const name of ['ca.pem', 'cert.pem', 'key.pem']) expect((await stat(join(dir, name))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, 'key.pem'), 'utf8')).toBe(server.key);
  });

  test('refuses names that are paths', async () => {
    await expect(writePemFiles(dir, { '../evil.pem': 'x' })).rejects.toThrow(/bad file name/);
  });
});
