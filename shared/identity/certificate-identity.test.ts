import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { describe, expect, it } from 'vitest';
import { DEFENDER_ORGANIZATION, IdentityError, identityFromCertificate, identityFromSubject, subjectForIdentity } from './certificate-identity.js';
import { createCaCertificate, EC_KEY_ALGORITHM, issueLeafCertificate, newSerialNumber, readCsr } from './certificate-profiles.js';

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
      expect(identityFromSubject(subjectForIdentity(identity))).toEqual(identity);
      expect(identityFromSubject(new x509.Name(subjectForIdentity(identity).toArrayBuffer()))).toEqual(identity);
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

  it('refuses a CSR that is not P-256 or whose signature does not verify', async () => {
    await expect(readCsr('not a csr')).rejects.toThrow('not a valid PEM');
    const rsa = await webcrypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign', 'verify']);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=x', keys: rsa as never, signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5' } });
    await expect(readCsr(csr.toString('pem'))).rejects.toThrow('ECDSA P-256');
  });
});
