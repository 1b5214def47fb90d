/**
 * The Console's certificate authority and its issued-certificate register.
 *
 * - Created on first start (ECDSA P-256, 10 years); its private key is stored sealed with the master key.
 * - User certificates are issued from a CSR for an authenticated identity; the subject comes from the identity,
 *   never from the CSR; lifetime = min(configured maximum, what the caller allows, e.g. the session's expiry).
 * - Every issued certificate is registered (serial, kind, subject, validity) so it can be listed and revoked.
 * - The Console's own TLS key is stable across restarts (stored sealed), so the pinned public key in install
 *   commands stays valid.
 */
import 'reflect-metadata'; // before @peculiar/x509 (tsyringe needs it)
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { createCaCertificate, EC_KEY_ALGORITHM, issueLeafCertificate, newSerialNumber, readCsr, toPem, type Issuer, type LeafProfile } from '../../shared/identity/certificate-profiles.js';
import type { Identity } from '../../shared/identity/certificate-identity.js';
import type { MasterKey } from '../crypto/master-key.js';
import type { Db } from '../db/database.js';
import { nowIso } from '../db/database.js';
import { FieldError } from '../errors.js';

x509.cryptoProvider.set(webcrypto);

const SKEW_MS = 5 * 60_000;
const YEAR_MS = 365 * 24 * 3600_000;

export interface IssuedCertificate {
  readonly serial: string;
  readonly certPem: string;
  readonly notBefore: string;
  readonly notAfter: string;
}

export interface CertificateRecord {
  readonly serial: string;
  readonly kind: 'user' | 'defender' | 'console';
  readonly subject: string;
  readonly groups: readonly string[];
  readonly notBefore: string;
  readonly notAfter: string;
  readonly createdAt: string;
  readonly revokedAt: string | null;
}

const serial = (): string => newSerialNumber((b) => webcrypto.getRandomValues(b));

async function exportPkcs8(key: webcrypto.CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

async function importPkcs8(pem: string): Promise<webcrypto.CryptoKey> {
  return webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(pem), EC_KEY_ALGORITHM, true, ['sign']);
}

export class ConsoleCa {
  private constructor(
    private readonly db: Db,
    private readonly issuer: Issuer,
    readonly certPem: string,
  ) {}

  /** Loads the CA, creating it on first start. */
  static async open(db: Db, masterKey: MasterKey): Promise<ConsoleCa> {
    const row = db.prepare('SELECT cert_pem, key_sealed FROM ca WHERE id = 1').get() as { cert_pem: string; key_sealed: string } | undefined;
    if (row) {
      const key = await importPkcs8(masterKey.open(row.key_sealed, 'ca.key').toString('utf8'));
      return new ConsoleCa(db, { cert: new x509.X509Certificate(row.cert_pem), key }, row.cert_pem);
    }
    const keys = (await webcrypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const now = Date.now();
    const cert = await createCaCertificate({ commonName: 'Drawbridge Console CA', keys: keys as never, serialNumber: serial(), notBefore: new Date(now - SKEW_MS), notAfter: new Date(now + 10 * YEAR_MS) });
    const certPem = toPem(cert);
    db.prepare('INSERT INTO ca (id, cert_pem, key_sealed, created_at) VALUES (1, ?, ?, ?)').run(certPem, masterKey.seal(await exportPkcs8(keys.privateKey), 'ca.key'), nowIso());
    return new ConsoleCa(db, { cert, key: keys.privateKey as never }, certPem);
  }

  /** Issues a certificate for `profile` to the public key of `csrPem`. */
  async issueFromCsr(csrPem: string, profile: LeafProfile, lifetimeMs: number, record: { kind: CertificateRecord['kind']; sessionHash?: string }): Promise<IssuedCertificate> {
    let publicKey: x509.PublicKey;
    try {
      publicKey = await readCsr(csrPem);
    } catch (e) {
      throw new FieldError('csr', (e as Error).message);
    }
    return this.issue(publicKey as never, profile, lifetimeMs, record);
  }

  /** Issues a certificate with a key generated here (the Console's own server certificate). */
  async issueWithNewKey(profile: LeafProfile, lifetimeMs: number, kind: CertificateRecord['kind']): Promise<IssuedCertificate & { keyPem: string }> {
    const keys = (await webcrypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const issued = await this.issue(keys.publicKey as never, profile, lifetimeMs, { kind });
    return { ...issued, keyPem: await exportPkcs8(keys.privateKey) };
  }

  private async issue(publicKey: x509.PublicKeyType, profile: LeafProfile, lifetimeMs: number, record: { kind: CertificateRecord['kind']; sessionHash?: string }): Promise<IssuedCertificate> {
    const now = Date.now();
    const notBefore = new Date(now - SKEW_MS);
    const notAfter = new Date(now + lifetimeMs);
    const cert = await issueLeafCertificate(this.issuer, { profile, publicKey, serialNumber: serial(), notBefore, notAfter });
    const identity: Identity = profile.kind === 'client' ? profile.identity : { user: profile.kind === 'defender-client' ? profile.hostName : (profile.dnsNames[0] ?? profile.ips[0]!), groups: [] };
    this.db
      .prepare('INSERT INTO certificates (serial, kind, subject_name, groups_json, not_before, not_after, created_at, session_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(cert.serialNumber, record.kind, identity.user, JSON.stringify(identity.groups), notBefore.toISOString(), notAfter.toISOString(), nowIso(), record.sessionHash ?? null);
    return { serial: cert.serialNumber, certPem: toPem(cert), notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString() };
  }
}
