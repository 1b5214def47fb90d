/**
 * The certificate profiles every part issues and checks: one place for what a Drawbridge CA, server and client
 * certificate look like. Pure: the caller passes the keys and sets `x509.cryptoProvider` (WebCrypto) once.
 *
 * - All keys ECDSA P-256, signatures ECDSA with SHA-256 (the docker CLI accepts them).
 * - CA: basicConstraints CA:true pathLen 0 (critical), keyCertSign + cRLSign.
 * - Leaf: basicConstraints CA:false, digitalSignature, exactly one EKU (serverAuth or clientAuth), SKI and AKI.
 * - Client subjects come only from `subjectForIdentity` (CN = user, one OU per group); a CSR's own subject is
 *   never used. A Defender's client certificate is `CN=<host name>, O=Drawbridge Defender`, which the
 *   Defender refuses as a user identity. Server certificates name their DNS names and IPs in subjectAltName.
 * - Serial numbers: 128 random bits, positive.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { DEFENDER_ORGANIZATION, subjectForIdentity, type Identity } from './certificate-identity.js';

export const EC_KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

type CryptoKeyPairLike = Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]['keys'];
/** A WebCrypto CryptoKey (shared/ compiles without DOM or Node types, so it is named through x509's own types). */
type Key = CryptoKeyPairLike['privateKey'];
type PublicKey = x509.PublicKeyType;

export interface Issuer {
  readonly cert: x509.X509Certificate;
  readonly key: Key;
}

/** 16 random bytes as a positive hex serial; `random` fills a buffer (crypto.getRandomValues). */
export function newSerialNumber(random: (bytes: Uint8Array) => Uint8Array): string {
  const bytes = random(new Uint8Array(16));
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export async function createCaCertificate(opts: {
  commonName: string;
  keys: CryptoKeyPairLike;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
}): Promise<x509.X509Certificate> {
  return x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: opts.serialNumber,
    name: new x509.Name([{ CN: [opts.commonName] }]),
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
    signingAlgorithm: SIGNING_ALGORITHM,
    keys: opts.keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(opts.keys.publicKey),
    ],
  });
}

export type LeafProfile =
  | { readonly kind: 'client'; readonly identity: Identity }
  /** A Defender's client certificate for talking to the Console: CN = host name, O = Drawbridge Defender. */
  | { readonly kind: 'defender-client'; readonly hostName: string }
  | { readonly kind: 'server'; readonly dnsNames: readonly string[]; readonly ips: readonly string[] };

export async function issueLeafCertificate(issuer: Issuer, opts: {
  profile: LeafProfile;
  publicKey: PublicKey;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
}): Promise<x509.X509Certificate> {
  const { profile } = opts;
  let subject: x509.Name;
  const extra: x509.Extension[] = [];
  if (profile.kind === 'client') {
    subject = subjectForIdentity(profile.identity);
    extra.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]));
  } else if (profile.kind === 'defender-client') {
    subject = new x509.Name([{ CN: [{ utf8String: profile.hostName }] }, { O: [{ utf8String: DEFENDER_ORGANIZATION }] }]);
    extra.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]));
  } else {
    const names = [...profile.dnsNames.map((value) => ({ type: 'dns' as const, value })), ...profile.ips.map((value) => ({ type: 'ip' as const, value }))];
    if (names.length === 0) throw new Error('a server certificate needs at least one DNS name or IP address');
    subject = new x509.Name([{ CN: [{ utf8String: profile.dnsNames[0] ?? profile.ips[0]! }] }]);
    extra.push(new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]), new x509.SubjectAlternativeNameExtension(names));
  }
  if (opts.notBefore.getTime() >= opts.notAfter.getTime()) throw new Error('notBefore must be before notAfter');
  return x509.X509CertificateGenerator.create({
    serialNumber: opts.serialNumber,
    subject,
    issuer: issuer.cert.subjectName,
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey: opts.publicKey,
    signingKey: issuer.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(opts.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(issuer.cert.publicKey),
      ...extra,
    ],
  });
}

/**
 * Reads a PEM CSR and checks its self-signature; returns its public key (ECDSA P-256 only). The CSR's subject
 * is ignored by design: the issuer sets the subject from the authenticated identity.
 */
export async function readCsr(pem: string): Promise<x509.PublicKey> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch {
    throw new Error('the CSR is not a valid PEM "CERTIFICATE REQUEST"');
  }
  const alg = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') throw new Error('the CSR key must be ECDSA P-256');
  if (!(await csr.verify())) throw new Error("the CSR's signature does not verify");
  return csr.publicKey;
}

export function toPem(cert: x509.X509Certificate): string {
  return `${cert.toString('pem').replace(/\r\n/g, '\n').trimEnd()}\n`;
}
