/**
 * The Console's certificate authority and its issued-certificate register.
 *
 * - Created on first start (ECDSA P-256, 10 years); its private key is stored sealed with the master key.
 * - User certificates are issued from a CSR for an authenticated identity; the subject comes from the identity,
 *   never from the CSR; lifetime = min(configured maximum, what the caller allows, e.g. the session's expiry).
 * - Every issued certificate is registered (serial, kind, subject, validity) so it can be listed and revoked.
 * - The Console's own TLS key is stable across restarts (stored sealed), so the pinned public key in install
 *   commands stays valid.
 * - Issuing runs on this thread with node:crypto: the CA key is imported once as a KeyObject, the issuer name and
 *   authority key identifier are read once, CSR signatures are checked synchronously (no WebCrypto thread-pool
 *   round trips). WebCrypto is used only to create the CA, through the shared async profile.
 */
import 'reflect-metadata'; // before @peculiar/x509 (tsyringe needs it)
import { createHash, createPrivateKey, createPublicKey, generateKeyPair, KeyObject, sign, verify, webcrypto, X509Certificate } from 'node:crypto';
import { promisify } from 'node:util';
import * as x509 from '@peculiar/x509';
import { createCaCertificate, EC_KEY_ALGORITHM, issueLeafCertificateDer, leafIssuer, newSerialNumber, readCsrWith, toPem, type LeafIssuer, type LeafProfile } from '../../shared/identity/certificate-profiles.js';
import { CONSOLE_CA_COMMON_NAME, type Identity } from '../../shared/identity/certificate-identity.js';
import type { CertificateKind } from '../certs/certificate-register.js';
import type { MasterKey } from '../crypto/master-key.js';
import type { Db } from '../db/database.js';
import { nowIso } from '../db/database.js';
import { FieldError } from '../errors.js';

x509.cryptoProvider.set(webcrypto); // createCaCertificate

const SKEW_MS = 5 * 60_000;
const YEAR_MS = 365 * 24 * 3600_000;

export interface IssuedCertificate {
  readonly serial: string;
  readonly certPem: string;
  readonly notBefore: string;
  readonly notAfter: string;
}


const serial = (): string => newSerialNumber((b) => webcrypto.getRandomValues(b));
const sha1 = (data: Uint8Array): Uint8Array => createHash('sha1').update(data).digest();
const derBuffer = (der: Uint8Array): Buffer => Buffer.from(der.buffer, der.byteOffset, der.byteLength);
const pkcs8Pem = (key: KeyObject): string => key.export({ type: 'pkcs8', format: 'pem' }) as string;

function verifySignature(spkiDer: Uint8Array, data: Uint8Array, signatureDer: Uint8Array): boolean {
  const key = createPublicKey({ key: derBuffer(spkiDer), format: 'der', type: 'spki' });
  return verify('sha256', data, { key, dsaEncoding: 'der' }, signatureDer);
}

/** Reads a PEM CSR (ECDSA P-256, self-signature checked): its SubjectPublicKeyInfo DER. Throws a plain Error. */
export function readCsrKey(csrPem: string): Uint8Array {
  return readCsrWith(csrPem, verifySignature);
}

export class ConsoleCa {
  private constructor(
    private readonly db: Db,
    private readonly issuer: LeafIssuer,
    readonly certPem: string,
  ) {}

  private static load(db: Db, certPem: string, keyPem: string): ConsoleCa {
    const key = createPrivateKey(keyPem);
    const signTbs = (tbs: Uint8Array): Uint8Array => sign('sha256', tbs, { key, dsaEncoding: 'der' });
    return new ConsoleCa(db, leafIssuer(new X509Certificate(certPem).raw, { sign: signTbs, sha1 }), certPem);
  }

  /** Loads the CA, creating it on first start. */
  static async open(db: Db, masterKey: MasterKey): Promise<ConsoleCa> {
    const row = db.prepare('SELECT cert_pem, key_sealed FROM ca WHERE id = 1').get() as { cert_pem: string; key_sealed: string } | undefined;
    if (row) return ConsoleCa.load(db, row.cert_pem, masterKey.open(row.key_sealed, 'ca.key').toString('utf8'));
    const keys = (await webcrypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const now = Date.now();
    const cert = await createCaCertificate({ commonName: CONSOLE_CA_COMMON_NAME, keys: keys as never, serialNumber: serial(), notBefore: new Date(now - SKEW_MS), notAfter: new Date(now + 10 * YEAR_MS) });
    const certPem = toPem(cert);
    const keyPem = pkcs8Pem(KeyObject.from(keys.privateKey));
    db.prepare('INSERT INTO ca (id, cert_pem, key_sealed, created_at) VALUES (1, ?, ?, ?)').run(certPem, masterKey.seal(keyPem, 'ca.key'), nowIso());
    return ConsoleCa.load(db, certPem, keyPem);
  }

  /** Issues a certificate for `profile` to the public key of `csrPem`. */
  async issueFromCsr(csrPem: string, profile: LeafProfile, lifetimeMs: number, record: { kind: CertificateKind; sessionHash?: string }): Promise<IssuedCertificate> {
    let spki: Uint8Array;
    try {
      spki = readCsrKey(csrPem);
    } catch (e) {
      throw new FieldError('csr', (e as Error).message);
    }
    return this.issue(spki, profile, lifetimeMs, record);
  }

  /** Issues a certificate with a key generated here (the Console's own server certificate). */
  async issueWithNewKey(profile: LeafProfile, lifetimeMs: number, kind: CertificateKind): Promise<IssuedCertificate & { keyPem: string }> {
    const keys = await promisify(generateKeyPair)('ec', { namedCurve: 'P-256' });
    const issued = this.issue(keys.publicKey.export({ type: 'spki', format: 'der' }), profile, lifetimeMs, { kind });
    return { ...issued, keyPem: pkcs8Pem(keys.privateKey) };
  }

  private issue(spki: Uint8Array, profile: LeafProfile, lifetimeMs: number, record: { kind: CertificateKind; sessionHash?: string }): IssuedCertificate {
    const now = Date.now();
    const notBefore = new Date(now - SKEW_MS);
    const notAfter = new Date(now + lifetimeMs);
    const serialNumber = serial();
    const der = issueLeafCertificateDer(this.issuer, { profile, spki, serialNumber, notBefore, notAfter });
    const identity: Identity = profile.kind === 'client' ? profile.identity : { user: profile.kind === 'defender-client' ? profile.hostName : (profile.dnsNames[0] ?? profile.ips[0]!), groups: [] };
    this.db
      .prepare('INSERT INTO certificates (serial, kind, subject_name, groups_json, not_before, not_after, created_at, session_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(serialNumber, record.kind, identity.user, JSON.stringify(identity.groups), notBefore.toISOString(), notAfter.toISOString(), nowIso(), record.sessionHash ?? null);
    return { serial: serialNumber, certPem: toPem(der), notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString() };
  }
}
