import 'reflect-metadata';
import { createHash, createPrivateKey, createPublicKey, sign, verify, webcrypto, X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import * as asn from '@peculiar/asn1-x509';
import * as x509 from '@peculiar/x509';
import { beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_ORGANIZATION, DEFENDER_ORGANIZATION, IdentityError, identityFromCertificate, identityFromSubject, subjectForIdentity, type Identity } from './certificate-identity.js';
import {
  createCaCertificate, EC_KEY_ALGORITHM, issueLeafCertificate, issueLeafCertificateDer, leafIssuer, newSerialNumber, readCsr, readCsrWith, SIGNING_ALGORITHM, toPem,
  type LeafIssuer, type LeafProfile, type VerifySignature,
} from './certificate-profiles.js';

x509.cryptoProvider.set(webcrypto);

describe('identityFromSubject', () => {
  it.each([
    // subject, identity or error
    ['CN=bruce', { user: 'bruce', groups: [] }],
    ['CN=bruce, OU=devs, OU=oncall', { user: 'bruce', groups: ['devs', 'oncall'] }],
    ['CN=bruce, OU=devs, OU=devs', { user: 'bruce', groups: ['devs'] }],
    ['CN=Bruce Wayne, OU=R&D', { user: 'Bruce Wayne', groups: ['R&D'] }],
    ['OU=devs', 'no CN'],
    ['CN=a, CN=b', 'more than one CN'],
    [`CN=dev-a, O=${DEFENDER_ORGANIZATION}`, "a Defender's certificate, not a user's"],
    ['CN=bruce, O=Acme', 'attributes other than CN and OU (O)'],
    ['CN=bruce, E=b@example.com', 'attributes other than CN and OU'],
  ] as const)('%s', (subject, expected) => {
    const name = new x509.Name(subject);
    if (typeof expected === 'string') {
      expect(() => identityFromSubject(name)).toThrow(IdentityError);
      expect(() => identityFromSubject(name)).toThrow(expected);
    } else {
      expect(identityFromSubject(name)).toEqual(expected);
    }
  });

  it('round-trips through subjectForIdentity, including characters DN strings escape', () => {
    for (const identity of [
      { user: 'o\'brien, "jr" + co', groups: ['a=b', 'c;d', 'ops'] },
      { user: 'x"admin"', groups: ['"ops"'] }, // x509's string form would read this as CN=admin
      { user: '#61646d696e', groups: ['#6f7073'] }, // …and this as the hex bytes of 'admin'
      { user: 'zoë', groups: ['équipe'] },
    ]) {
      expect(identityFromSubject(new x509.Name(subjectForIdentity(identity)))).toEqual(identity);
      expect(identityFromSubject(new x509.Name(AsnConvert.serialize(subjectForIdentity(identity))))).toEqual(identity);
    }
  });

  it('refuses control characters and over-long names', () => {
    expect(() => subjectForIdentity({ user: 'a\nb', groups: [] })).toThrow('control characters');
    expect(() => subjectForIdentity({ user: 'x'.repeat(257), groups: [] })).toThrow('longer than 256');
  });
});

describe('certificate profiles', () => {
  it('issues a client cert whose subject comes from the identity, not the CSR', async () => {
    const caKeys = await webcrypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify']);
    const serial = () => newSerialNumber((b) => webcrypto.getRandomValues(b));
    const now = Date.now();
    const ca = await createCaCertificate({ commonName: 'test', keys: caKeys as never, serialNumber: serial(), notBefore: new Date(now - 1000), notAfter: new Date(now + 3600_000) });
    const userKeys = await webcrypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify']);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=root, OU=admins', keys: userKeys as never, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } });
    const publicKey = await readCsr(csr.toString('pem'));
    const cert = await issueLeafCertificate({ cert: ca, key: caKeys.privateKey as never }, {
      profile: { kind: 'client', identity: { user: 'bruce', groups: ['devs'] } }, publicKey: publicKey as never, serialNumber: serial(), notBefore: new Date(now - 1000), notAfter: new Date(now + 60_000),
    });
    expect(identityFromCertificate(new Uint8Array(cert.rawData))).toEqual({ user: 'bruce', groups: ['devs'] });
    expect(await cert.verify({ publicKey: ca.publicKey })).toBe(true);
    const defender = await issueLeafCertificate({ cert: ca, key: caKeys.privateKey as never }, {
      profile: { kind: 'defender-client', hostName: 'dev-a' }, publicKey: publicKey as never, serialNumber: serial(), notBefore: new Date(now - 1000), notAfter: new Date(now + 60_000),
    });
    expect(() => identityFromCertificate(new Uint8Array(defender.rawData))).toThrow("a Defender's certificate");
  });
});

// node:crypto as the Console passes it in.
const nodeSha1 = (data: Uint8Array): Uint8Array => createHash('sha1').update(data).digest();
const nodeVerify: VerifySignature = (spki, data, signature) =>
  verify('sha256', data, { key: createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }), dsaEncoding: 'der' }, signature);

/** The issuing code this module had before (X509CertificateGenerator, WebCrypto), kept as the reference. */
async function issueAsBefore(ca: { cert: x509.X509Certificate; key: webcrypto.CryptoKey }, opts: { profile: LeafProfile; publicKey: webcrypto.CryptoKey; serialNumber: string; notBefore: Date; notAfter: Date }): Promise<x509.X509Certificate> {
  const { profile } = opts;
  let subject: x509.Name;
  const extra: x509.Extension[] = [];
  if (profile.kind === 'client') {
    subject = new x509.Name([{ CN: [{ utf8String: profile.identity.user }] }, ...[...new Set(profile.identity.groups)].map((g) => ({ OU: [{ utf8String: g }] }))]);
    extra.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]));
  } else if (profile.kind === 'defender-client') {
    subject = new x509.Name([{ CN: [{ utf8String: profile.hostName }] }, { O: [{ utf8String: DEFENDER_ORGANIZATION }] }]);
    extra.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]));
  } else {
    const names = [...profile.dnsNames.map((value) => ({ type: 'dns' as const, value })), ...profile.ips.map((value) => ({ type: 'ip' as const, value }))];
    const cn = { CN: [{ utf8String: profile.dnsNames[0] ?? profile.ips[0]! }] };
    subject = new x509.Name(profile.kind === 'console-server' ? [cn, { O: [{ utf8String: CONSOLE_ORGANIZATION }] }] : [cn]);
    extra.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]), new x509.SubjectAlternativeNameExtension(names));
  }
  return x509.X509CertificateGenerator.create({
    serialNumber: opts.serialNumber, subject, issuer: ca.cert.subjectName, notBefore: opts.notBefore, notAfter: opts.notAfter,
    signingAlgorithm: SIGNING_ALGORITHM, publicKey: opts.publicKey as never, signingKey: ca.key as never,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(opts.publicKey as never),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey),
      ...extra,
    ],
  });
}

const tbsOf = (der: ArrayBuffer | Uint8Array): Buffer => Buffer.from(AsnConvert.parse(der, asn.Certificate).tbsCertificateRaw!);

describe('issuing with injected crypto (the Console path) issues what the @peculiar/x509 generator did', () => {
  let ca: { cert: x509.X509Certificate; key: webcrypto.CryptoKey };
  let caNode: X509Certificate;
  let issuer: LeafIssuer;
  let userKeys: webcrypto.CryptoKeyPair;
  let csrPem: string;
  beforeAll(async () => {
    const keys = await webcrypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify']);
    const now = Date.now();
    ca = { cert: await createCaCertificate({ commonName: 'equivalence CA', keys: keys as never, serialNumber: newSerialNumber((b) => webcrypto.getRandomValues(b)), notBefore: new Date(now - 60_000), notAfter: new Date(now + 3650 * 86_400_000) }), key: keys.privateKey };
    caNode = new X509Certificate(Buffer.from(ca.cert.rawData));
    const caKey = createPrivateKey({ key: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), format: 'der', type: 'pkcs8' });
    issuer = leafIssuer(new Uint8Array(ca.cert.rawData), { sign: (tbs) => sign('sha256', tbs, { key: caKey, dsaEncoding: 'der' }), sha1: nodeSha1 });
    userKeys = await webcrypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify']);
    csrPem = (await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=root, OU=admins, O=Evil', keys: userKeys as never, signingAlgorithm: SIGNING_ALGORITHM })).toString('pem');
  });

  const client = (identity: Identity): LeafProfile => ({ kind: 'client', identity });
  it.each([
    // name, profile, notBefore, notAfter
    ['client, two groups', client({ user: 'bruce', groups: ['devs', 'oncall', 'devs'] }), '2025-01-02T03:04:05.678Z', '2025-01-03T03:04:05.000Z'],
    ['client, no groups, DN syntax and non-ASCII', client({ user: 'o\'brien, "jr" + #co zoë', groups: [] }), '2025-06-01T00:00:00Z', '2026-06-01T00:00:00Z'],
    ['client, groups DN syntax', client({ user: '#61646d696e', groups: ['a=b', 'c;d', 'équipe'] }), '2025-06-01T00:00:00Z', '2026-06-01T00:00:00Z'],
    ['defender client', { kind: 'defender-client', hostName: 'dev-a.example.com' }, '2025-06-01T00:00:00Z', '2026-06-01T00:00:00Z'],
    ['server, DNS names and IPs', { kind: 'server', dnsNames: ['dev-a.example.com', 'dev-a'], ips: ['10.0.0.7', '::1', 'fd00::1:2'] }, '2025-06-01T00:00:00Z', '2026-06-01T00:00:00Z'],
    ['server, one IP only', { kind: 'server', dnsNames: [], ips: ['192.168.1.20'] }, '2025-06-01T00:00:00Z', '2026-06-01T00:00:00Z'],
    ["the Console's own server certificate", { kind: 'console-server', dnsNames: ['console.example.com', 'localhost'], ips: ['127.0.0.1'] }, '2025-06-01T00:00:00Z', '2026-06-01T00:00:00Z'],
    // UTCTime up to 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5)
    ['validity across 2050', client({ user: 'long', groups: ['x'] }), '2049-12-31T23:59:59.999Z', '2050-01-01T00:00:00Z'],
    ['validity before 2000', client({ user: 'old', groups: [] }), '1999-12-31T23:59:59Z', '2000-01-01T00:00:01Z'],
  ] as const)('%s', async (_name, profile, from, to) => {
    const opts = { profile: profile as LeafProfile, serialNumber: newSerialNumber((b) => webcrypto.getRandomValues(b)), notBefore: new Date(from), notAfter: new Date(to) };
    const spki = readCsrWith(csrPem, nodeVerify);
    const der = issueLeafCertificateDer(issuer, { ...opts, spki });
    const before = await issueAsBefore(ca, { ...opts, publicKey: userKeys.publicKey });
    const viaWebCrypto = await issueLeafCertificate({ cert: ca.cert, key: ca.key as never }, { ...opts, publicKey: userKeys.publicKey as never });

    // Everything signed is byte for byte what the previous implementation signed (and the async path agrees).
    expect(tbsOf(der).toString('hex')).toBe(tbsOf(before.rawData).toString('hex'));
    expect(tbsOf(viaWebCrypto.rawData).toString('hex')).toBe(tbsOf(der).toString('hex'));

    // @peculiar/x509's reading of it.
    const cert = new x509.X509Certificate(der);
    expect(await cert.verify({ publicKey: ca.cert.publicKey, signatureOnly: true })).toBe(true);
    expect(await viaWebCrypto.verify({ publicKey: ca.cert.publicKey, signatureOnly: true })).toBe(true);
    expect(cert.signatureAlgorithm).toEqual(before.signatureAlgorithm);
    for (const field of ['serialNumber', 'subject', 'issuer', 'notBefore', 'notAfter'] as const) expect(cert[field]).toEqual(before[field]);
    expect(cert.serialNumber).toBe(opts.serialNumber);
    expect(Buffer.from(cert.publicKey.rawData)).toEqual(Buffer.from(spki));
    const extensions = (c: x509.X509Certificate) => c.extensions.map((e) => [e.type, e.critical, Buffer.from(e.value).toString('hex')]);
    expect(extensions(cert)).toEqual(extensions(before));
    const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
    expect(ski).toBe(Buffer.from(await cert.publicKey.getKeyIdentifier()).toString('hex'));
    expect(cert.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).toBe(ca.cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId);

    // node:crypto's (OpenSSL's) reading of it.
    const [mine, theirs] = [new X509Certificate(Buffer.from(der)), new X509Certificate(Buffer.from(before.rawData))];
    expect(mine.verify(caNode.publicKey)).toBe(true);
    expect(mine.checkIssued(caNode)).toBe(true);
    for (const field of ['ca', 'keyUsage', 'subject', 'subjectAltName', 'issuer', 'validFrom', 'validTo', 'serialNumber', 'infoAccess'] as const) expect(mine[field]).toEqual(theirs[field]);
    expect(mine.ca).toBe(false);
    expect(mine.keyUsage).toEqual([profile.kind === 'server' || profile.kind === 'console-server' ? '1.3.6.1.5.5.7.3.1' : '1.3.6.1.5.5.7.3.2']);
    expect(mine.subject.split('\n').includes(`O=${CONSOLE_ORGANIZATION}`)).toBe(profile.kind === 'console-server'); // the mark is the Console's alone
    expect(mine.publicKey.export({ type: 'spki', format: 'der' })).toEqual(Buffer.from(spki));
    expect(toPem(der)).toBe(mine.toString());

    if (profile.kind === 'client') expect(identityFromCertificate(der)).toEqual({ user: profile.identity.user, groups: [...new Set(profile.identity.groups)] });
    else if (profile.kind === 'defender-client') expect(() => identityFromCertificate(der)).toThrow("a Defender's certificate");
  });

  it('refuses what the generator refused', () => {
    const spki = readCsrWith(csrPem, nodeVerify);
    const base = { spki, serialNumber: '01', notBefore: new Date(0), notAfter: new Date(1000) };
    expect(() => issueLeafCertificateDer(issuer, { ...base, profile: { kind: 'server', dnsNames: [], ips: [] } })).toThrow('at least one DNS name or IP');
    expect(() => issueLeafCertificateDer(issuer, { ...base, profile: client({ user: 'a', groups: [] }), notAfter: new Date(0) })).toThrow('notBefore must be before notAfter');
    expect(() => issueLeafCertificateDer(issuer, { ...base, profile: client({ user: 'a', groups: [] }), serialNumber: '00' })).toThrow('serial');
  });
});

describe('readCsrWith and readCsr', () => {
  const csrOf = async (algorithm: object, signingAlgorithm: object): Promise<string> => {
    const keys = await webcrypto.subtle.generateKey(algorithm as never, true, ['sign', 'verify']);
    return (await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=x', keys: keys as never, signingAlgorithm: signingAlgorithm as never })).toString('pem');
  };
  const read = {
    readCsrWith: (pem: string) => Promise.resolve().then(() => readCsrWith(pem, nodeVerify)),
    readCsr: (pem: string) => readCsr(pem),
  };

  it.each(Object.keys(read))('%s accepts a P-256 CSR and answers its key as sent, refusing others with the same messages', async (which) => {
    const readIt = read[which as keyof typeof read];
    const good = await csrOf(EC_KEY_ALGORITHM, SIGNING_ALGORITHM);
    const spki = Buffer.from(new x509.Pkcs10CertificateRequest(good).publicKey.rawData);
    const got = await readIt(good);
    expect(Buffer.from(got instanceof Uint8Array ? got : new Uint8Array(got.rawData))).toEqual(spki);

    await expect(readIt('not a csr')).rejects.toThrow('the CSR is not a valid PEM "CERTIFICATE REQUEST"');
    await expect(readIt(toPem(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00])).replace(/CERTIFICATE/g, 'CERTIFICATE REQUEST'))).rejects.toThrow('not a valid PEM');
    const rsa = await csrOf({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, { name: 'RSASSA-PKCS1-v1_5' });
    await expect(readIt(rsa)).rejects.toThrow('the CSR key must be ECDSA P-256');
    await expect(readIt(await csrOf({ name: 'ECDSA', namedCurve: 'P-384' }, SIGNING_ALGORITHM))).rejects.toThrow('the CSR key must be ECDSA P-256');
    await expect(readIt(await csrOf(EC_KEY_ALGORITHM, { name: 'ECDSA', hash: 'SHA-384' }))).rejects.toThrow('signed with ECDSA and SHA-256');

    // The same CSR with one bit of its signature flipped.
    const der = Buffer.from(new x509.Pkcs10CertificateRequest(good).rawData);
    der[der.length - 1]! ^= 0x01;
    await expect(readIt(x509.PemConverter.encode(der, 'CERTIFICATE REQUEST'))).rejects.toThrow("the CSR's signature does not verify");
  });

  it('treats a verify function that throws as a signature that does not verify', async () => {
    const good = await csrOf(EC_KEY_ALGORITHM, SIGNING_ALGORITHM);
    expect(() => readCsrWith(good, () => { throw new Error('bad key'); })).toThrow("the CSR's signature does not verify");
    expect(() => readCsrWith(good, () => false)).toThrow("the CSR's signature does not verify");
  });
});
