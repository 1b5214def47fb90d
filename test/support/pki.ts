/**
 * A small PKI for tests and the quickstart: a CA, server certificates and client certificates, all ECDSA P-256
 * with SHA-256 (the docker CLI accepts them), keys as unencrypted PKCS#8 PEM ("PRIVATE KEY").
 *
 * - Client certificate subjects come only from subjectForIdentity(): the same encoding the Defender reads back.
 * - Leaf certificates are not CAs (basicConstraints CA:false), carry one EKU (serverAuth or clientAuth) and
 *   digitalSignature only; the CA is pathLen 0, keyCertSign + cRLSign.
 * - notBefore is 5 minutes in the past by default, so a freshly issued certificate survives clock skew.
 * - PEM files are written 0600 in a 0700 directory, through temp file + fsync + rename.
 */
import 'reflect-metadata'; // @peculiar/x509 (tsyringe) needs it loaded first
import { webcrypto, randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import type { Identity } from '../../shared/identity/certificate-identity.js';
import { createCaCertificate, EC_KEY_ALGORITHM, issueLeafCertificate, newSerialNumber, SIGNING_ALGORITHM, toPem, type LeafProfile } from '../../shared/identity/certificate-profiles.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const crypto = webcrypto;
x509.cryptoProvider.set(crypto);

const EC_KEY = EC_KEY_ALGORITHM;
const SKEW_MS = 5 * 60_000;
const DAY_MS = 24 * 60 * 60_000;

export interface Pem {
  /** PEM "CERTIFICATE". */
  readonly cert: string;
  /** PEM "PRIVATE KEY" (PKCS#8, unencrypted). */
  readonly key: string;
}

export interface ServerCertOptions {
  dnsNames: string[];
  ips?: string[];
  days?: number;
}

export interface ClientCertOptions {
  notBefore?: Date;
  notAfter?: Date;
}

/** A CA's PEMs plus issuing shortcuts bound to it. */
export interface CertificateAuthority extends Pem {
  issueServerCert(opts: ServerCertOptions): Promise<Pem>;
  issueClientCert(identity: Identity, opts?: ClientCertOptions): Promise<Pem>;
}

function serialNumber(): string {
  return newSerialNumber((bytes) => crypto.getRandomValues(bytes));
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify']);
}

async function exportKey(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

function pemText(pem: string): string {
  return `${pem.replace(/\r\n/g, '\n').trimEnd()}\n`;
}

async function loadCa(ca: Pem): Promise<{ cert: x509.X509Certificate; key: CryptoKey }> {
  const cert = new x509.X509Certificate(ca.cert);
  const key = await crypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(ca.key), EC_KEY, false, ['sign']);
  return { cert, key };
}

async function issueLeaf(ca: Pem, profile: LeafProfile, notBefore: Date, notAfter: Date): Promise<Pem> {
  const issuer = await loadCa(ca);
  const keys = await generateKeys();
  const cert = await issueLeafCertificate(issuer, { profile, publicKey: keys.publicKey as never, serialNumber: serialNumber(), notBefore, notAfter });
  return { cert: toPem(cert), key: pemText(await exportKey(keys.privateKey)) };
}

/** A self-signed CA valid for 10 years (from 5 minutes ago), with the shared CA profile. */
export async function createCa(commonName = 'Drawbridge Test CA'): Promise<CertificateAuthority> {
  const keys = await generateKeys();
  const now = Date.now();
  const cert = await createCaCertificate({ commonName, keys: keys as never, serialNumber: serialNumber(), notBefore: new Date(now - SKEW_MS), notAfter: new Date(now + 3650 * DAY_MS) });
  const pem: Pem = { cert: toPem(cert), key: pemText(await exportKey(keys.privateKey)) };
  return {
    ...pem,
    issueServerCert: (opts) => issueServerCert(pem, opts),
    issueClientCert: (identity, opts) => issueClientCert(pem, identity, opts),
  };
}

/** A TLS server certificate (serverAuth) for `dnsNames` and `ips`, with the shared server profile. */
export async function issueServerCert(ca: Pem, opts: ServerCertOptions): Promise<Pem> {
  if (opts.dnsNames.length === 0 && (opts.ips ?? []).length === 0) throw new Error('issueServerCert: give at least one DNS name or IP address');
  const now = Date.now();
  return issueLeaf(ca, { kind: 'server', dnsNames: opts.dnsNames, ips: opts.ips ?? [] }, new Date(now - SKEW_MS), new Date(now + (opts.days ?? 365) * DAY_MS));
}

/**
 * A TLS client certificate (clientAuth) for `identity` with the shared client profile, valid for 90 days by
 * default. `notAfter` in the past makes an expired certificate (notBefore then defaults to a day before it).
 */
export async function issueClientCert(ca: Pem, identity: Identity, opts: ClientCertOptions = {}): Promise<Pem> {
  const now = Date.now();
  const notAfter = opts.notAfter ?? new Date(now + 90 * DAY_MS);
  const notBefore = opts.notBefore ?? new Date(Math.min(now - SKEW_MS, notAfter.getTime() - DAY_MS));
  if (notBefore.getTime() >= notAfter.getTime()) throw new Error('issueClientCert: notBefore must be before notAfter');
  return issueLeaf(ca, { kind: 'client', identity }, notBefore, notAfter);
}

/**
 * A client certificate with an arbitrary subject (e.g. `OU=devs`, no CN) chaining to `ca`: for testing how
 * certificates the Console would never issue are refused. Everything else as issueClientCert.
 */
export async function issueClientCertWithSubject(ca: Pem, subject: string, opts: ClientCertOptions = {}): Promise<Pem> {
  const now = Date.now();
  const notAfter = opts.notAfter ?? new Date(now + 90 * DAY_MS);
  const notBefore = opts.notBefore ?? new Date(Math.min(now - SKEW_MS, notAfter.getTime() - DAY_MS));
  // Deliberately outside the shared profiles: this makes certificates the Console would never issue.
  const issuer = await loadCa(ca);
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(), subject: new x509.Name(subject), issuer: issuer.cert.subjectName, notBefore, notAfter,
    signingAlgorithm: SIGNING_ALGORITHM, publicKey: keys.publicKey, signingKey: issuer.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    ],
  });
  return { cert: toPem(cert), key: pemText(await exportKey(keys.privateKey)) };
}

/**
 * Writes `files` (name → content) into `dir` (created 0700 if missing): each 0600, via temp file, fsync and
 * rename, so a reader never sees half a key. Names are plain file names, no paths.
 */
export async function writePemFiles(dir: string, files: Record<string, string>): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const [name, content] of Object.entries(files)) {
    if (!/^[\w.-]+$/.test(name) || name === '.' || name === '..') throw new Error(`writePemFiles: bad file name ${JSON.stringify(name)}`);
    const target = join(dir, name);
    const temp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.chmod(0o600);
      await handle.writeFile(content);
      await handle.sync();
    } catch (error) {
      await handle.close();
      await rm(temp, { force: true });
      throw error;
    }
    await handle.close();
    await rename(temp, target);
  }
  // Make the renames themselves durable.
  const dirHandle = await open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}
