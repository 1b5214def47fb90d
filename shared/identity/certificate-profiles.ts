/**
 * The certificate profiles every part issues and checks: one place for what a Drawbridge CA, server and client
 * certificate look like. Pure: signing, SHA-1 and signature checks are passed in (node:crypto in the Console);
 * the async variants use WebCrypto through `x509.cryptoProvider`, which their caller sets once.
 *
 * - All keys ECDSA P-256, signatures ECDSA with SHA-256 (the docker CLI accepts them).
 * - CA: basicConstraints CA:true pathLen 0 (critical), keyCertSign + cRLSign.
 * - Leaf: basicConstraints CA:false (critical), digitalSignature (critical), SKI (SHA-1 of the subjectPublicKey
 *   BIT STRING, RFC 5280 method 1), AKI (the CA's key identifier, the same method), then exactly one EKU
 *   (serverAuth or clientAuth), then subjectAltName for servers. Validity in UTCTime, GeneralizedTime from 2050.
 * - Client subjects come only from `subjectForIdentity` (CN = user, one OU per group); a CSR's own subject is
 *   never used. A Defender's client certificate is `CN=<host name>, O=Drawbridge Defender`, which the
 *   Defender refuses as a user identity. Server certificates name their DNS names and IPs in subjectAltName; the
 *   Console's own adds `O=Drawbridge Console`, what Defenders and the companion require of the Console.
 * - The leaf's SubjectPublicKeyInfo is the CSR's, as sent; a CSR must be ECDSA P-256 signed with SHA-256.
 * - Serial numbers: 128 random bits, positive.
 */
import 'reflect-metadata';
import { AsnConvert, AsnProp, OctetString } from '@peculiar/asn1-schema';
import { CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import { ECParameters, ecdsaWithSHA256, id_ecdsaWithSHA256, id_ecPublicKey, id_secp256r1 } from '@peculiar/asn1-ecc';
import * as asn from '@peculiar/asn1-x509';
import * as x509 from '@peculiar/x509';
import { CONSOLE_ORGANIZATION, DEFENDER_ORGANIZATION, subjectForIdentity, utf8Name, type Identity } from './certificate-identity.js';

export const EC_KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

type CryptoKeyPairLike = Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]['keys'];
/** A WebCrypto CryptoKey (shared/ compiles without DOM or Node types, so it is named through x509's own types). */
type Key = CryptoKeyPairLike['privateKey'];
type PublicKey = x509.PublicKeyType;

/** A CA for the async (WebCrypto) issuing path. */
export interface Issuer {
  readonly cert: x509.X509Certificate;
  readonly key: Key;
}

/** Signs the DER TBSCertificate with the CA key: a DER ECDSA-Sig-Value (ECDSA P-256 with SHA-256). */
export type SignTbs = (tbsDer: Uint8Array) => Uint8Array;
export type Sha1 = (data: Uint8Array) => Uint8Array;
/** Checks an ECDSA-with-SHA-256 signature (DER ECDSA-Sig-Value) by the key `spkiDer` over `data`. */
export type VerifySignature = (spkiDer: Uint8Array, data: Uint8Array, signatureDer: Uint8Array) => boolean;

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
  | { readonly kind: 'server'; readonly dnsNames: readonly string[]; readonly ips: readonly string[] }
  /** The Console's own TLS certificate: a server certificate with `O=Drawbridge Console`, which no other carries. */
  | { readonly kind: 'console-server'; readonly dnsNames: readonly string[]; readonly ips: readonly string[] };

export interface LeafOptions {
  readonly profile: LeafProfile;
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** What every leaf a CA issues takes from it; worked out once per CA. */
interface IssuerFields {
  readonly name: asn.Name;
  readonly authorityKeyIdentifier: asn.Extension;
}

/** A CA ready to issue synchronously: its name and key identifier read once, signing and SHA-1 passed in. */
export interface LeafIssuer extends IssuerFields {
  readonly sign: SignTbs;
  readonly sha1: Sha1;
}

const extension = (extnID: string, critical: boolean, value: object): asn.Extension =>
  new asn.Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });

const NOT_A_CA = extension(asn.id_ce_basicConstraints, true, new asn.BasicConstraints({ cA: false }));
const DIGITAL_SIGNATURE = extension(asn.id_ce_keyUsage, true, new asn.KeyUsage(asn.KeyUsageFlags.digitalSignature));
const CLIENT_AUTH = extension(asn.id_ce_extKeyUsage, false, new asn.ExtendedKeyUsage([asn.id_kp_clientAuth]));
const SERVER_AUTH = extension(asn.id_ce_extKeyUsage, false, new asn.ExtendedKeyUsage([asn.id_kp_serverAuth]));

function issuerFields(caCertDer: Uint8Array, caKeyIdentifier: Uint8Array): IssuerFields {
  const tbs = AsnConvert.parse(caCertDer, asn.Certificate).tbsCertificate;
  return {
    name: tbs.subject,
    authorityKeyIdentifier: extension(asn.id_ce_authorityKeyIdentifier, false, new asn.AuthorityKeyIdentifier({ keyIdentifier: new asn.KeyIdentifier(caKeyIdentifier) })),
  };
}

/** The BIT STRING contents of a SubjectPublicKeyInfo: what the key identifiers are the SHA-1 of. */
const subjectPublicKey = (spki: asn.SubjectPublicKeyInfo): Uint8Array => new Uint8Array(spki.subjectPublicKey);

/** Reads `caCertDer` once: AKI = SHA-1 of the CA's subjectPublicKey (as @peculiar/x509 computes it). */
export function leafIssuer(caCertDer: Uint8Array, crypto: { sign: SignTbs; sha1: Sha1 }): LeafIssuer {
  const spki = AsnConvert.parse(caCertDer, asn.Certificate).tbsCertificate.subjectPublicKeyInfo;
  return { ...issuerFields(caCertDer, crypto.sha1(subjectPublicKey(spki))), sign: crypto.sign, sha1: crypto.sha1 };
}

/** Hex serial → INTEGER contents, positive, without superfluous leading zero bytes (as @peculiar/x509 encodes it). */
function serialOctets(hex: string): ArrayBuffer {
  if (!/^(?:[0-9a-f]{2})+$/i.test(hex) || !/[1-9a-f]/i.test(hex)) throw new Error('a serial number must be non-zero hex bytes');
  const bytes = hex.replace(/^(?:00)+/, '').match(/../g)!.map((b) => parseInt(b, 16));
  return new Uint8Array(bytes[0]! > 0x7f ? [0, ...bytes] : bytes).buffer;
}

function leafSubject(profile: LeafProfile): { subject: asn.Name; extensions: asn.Extension[] } {
  if (profile.kind === 'client') return { subject: subjectForIdentity(profile.identity), extensions: [CLIENT_AUTH] };
  if (profile.kind === 'defender-client') return { subject: utf8Name([['CN', profile.hostName], ['O', DEFENDER_ORGANIZATION]]), extensions: [CLIENT_AUTH] };
  const names = [...profile.dnsNames.map((dNSName) => new asn.GeneralName({ dNSName })), ...profile.ips.map((iPAddress) => new asn.GeneralName({ iPAddress }))];
  if (names.length === 0) throw new Error('a server certificate needs at least one DNS name or IP address');
  const cn = ['CN', profile.dnsNames[0] ?? profile.ips[0]!] as const;
  return {
    subject: utf8Name(profile.kind === 'console-server' ? [cn, ['O', CONSOLE_ORGANIZATION] as const] : [cn]),
    extensions: [SERVER_AUTH, extension(asn.id_ce_subjectAltName, false, new asn.SubjectAlternativeName(names))],
  };
}

function leafTbs(issuer: IssuerFields, opts: LeafOptions, spki: asn.SubjectPublicKeyInfo, keyIdentifier: Uint8Array): asn.TBSCertificate {
  const { subject, extensions } = leafSubject(opts.profile);
  if (opts.notBefore.getTime() >= opts.notAfter.getTime()) throw new Error('notBefore must be before notAfter');
  return new asn.TBSCertificate({
    version: asn.Version.v3,
    serialNumber: serialOctets(opts.serialNumber),
    signature: ecdsaWithSHA256,
    issuer: issuer.name,
    validity: new asn.Validity({ notBefore: opts.notBefore, notAfter: opts.notAfter }),
    subject,
    subjectPublicKeyInfo: spki,
    extensions: new asn.Extensions([
      NOT_A_CA,
      DIGITAL_SIGNATURE,
      extension(asn.id_ce_subjectKeyIdentifier, false, new asn.SubjectKeyIdentifier(keyIdentifier)),
      issuer.authorityKeyIdentifier,
      ...extensions,
    ]),
  });
}

function signedCertificate(tbs: asn.TBSCertificate, signatureDer: Uint8Array): Uint8Array {
  const cert = new asn.Certificate({ tbsCertificate: tbs, signatureAlgorithm: ecdsaWithSHA256, signatureValue: new Uint8Array(signatureDer).buffer });
  return new Uint8Array(AsnConvert.serialize(cert));
}

/** Issues a leaf certificate for the key `spkiDer` (a SubjectPublicKeyInfo, e.g. readCsrWith's): its DER. */
export function issueLeafCertificateDer(issuer: LeafIssuer, opts: LeafOptions & { spki: Uint8Array }): Uint8Array {
  const spki = AsnConvert.parse(opts.spki, asn.SubjectPublicKeyInfo);
  const tbs = leafTbs(issuer, opts, spki, issuer.sha1(subjectPublicKey(spki)));
  return signedCertificate(tbs, issuer.sign(new Uint8Array(AsnConvert.serialize(tbs))));
}

/** The same certificate as issueLeafCertificateDer, signed with a WebCrypto key (tests, tools). */
export async function issueLeafCertificate(issuer: Issuer, opts: LeafOptions & { publicKey: PublicKey }): Promise<x509.X509Certificate> {
  const crypto = x509.cryptoProvider.get();
  const publicKey = await x509.PublicKey.create(opts.publicKey, crypto);
  const fields = issuerFields(new Uint8Array(issuer.cert.rawData), new Uint8Array(await issuer.cert.publicKey.getKeyIdentifier(crypto)));
  const tbs = leafTbs(fields, opts, AsnConvert.parse(publicKey.rawData, asn.SubjectPublicKeyInfo), new Uint8Array(await publicKey.getKeyIdentifier(crypto)));
  const ieee = await crypto.subtle.sign(SIGNING_ALGORITHM, issuer.key, AsnConvert.serialize(tbs));
  const signature = new x509.AsnEcSignatureFormatter().toAsnSignature({ ...SIGNING_ALGORITHM, ...EC_KEY_ALGORITHM }, ieee)!;
  return new x509.X509Certificate(signedCertificate(tbs, new Uint8Array(signature)));
}

/** CertificationRequestInfo that also keeps the DER of its SubjectPublicKeyInfo as sent (`subjectPKInfoRaw`). */
class CsrInfo extends CertificationRequestInfo {
  declare subjectPKInfoRaw?: ArrayBuffer | Uint8Array;
}
AsnProp({ type: asn.SubjectPublicKeyInfo, raw: true })(CsrInfo.prototype, 'subjectPKInfo');
class Csr extends CertificationRequest {
  declare certificationRequestInfo: CsrInfo;
}
AsnProp({ type: CsrInfo, raw: true })(Csr.prototype, 'certificationRequestInfo');

const CSR_NOT_PEM = 'the CSR is not a valid PEM "CERTIFICATE REQUEST"';
const CSR_NOT_P256 = 'the CSR key must be ECDSA P-256';
const CSR_NOT_SHA256 = 'the CSR must be signed with ECDSA and SHA-256';
const CSR_BAD_SIGNATURE = "the CSR's signature does not verify";

/** Decodes a CSR (PEM, or the other encodings @peculiar/x509 accepts) and checks its key and signature algorithm. */
function parseCsr(pem: string): { spki: Uint8Array; signedData: Uint8Array; signature: Uint8Array } {
  let csr: Csr;
  try {
    csr = AsnConvert.parse(x509.PemData.toArrayBuffer(pem), Csr);
  } catch {
    throw new Error(CSR_NOT_PEM);
  }
  const info = csr.certificationRequestInfo;
  const { algorithm } = info.subjectPKInfo;
  let curve: string | undefined;
  try {
    if (algorithm.algorithm === id_ecPublicKey && algorithm.parameters) curve = AsnConvert.parse(algorithm.parameters, ECParameters).namedCurve;
  } catch {
    // not named-curve parameters: refused below
  }
  if (curve !== id_secp256r1) throw new Error(CSR_NOT_P256);
  if (csr.signatureAlgorithm.algorithm !== id_ecdsaWithSHA256) throw new Error(CSR_NOT_SHA256);
  return { spki: new Uint8Array(info.subjectPKInfoRaw!), signedData: new Uint8Array(csr.certificationRequestInfoRaw!), signature: new Uint8Array(csr.signature) };
}

/**
 * Reads a PEM CSR and checks its self-signature with `verify`; returns its SubjectPublicKeyInfo DER as sent
 * (ECDSA P-256 only). The CSR's subject is ignored by design: the issuer sets the subject from the authenticated
 * identity. A `verify` that throws (a key that does not decode) counts as a signature that does not verify.
 */
export function readCsrWith(pem: string, verify: VerifySignature): Uint8Array {
  const csr = parseCsr(pem);
  let ok = false;
  try {
    ok = verify(csr.spki, csr.signedData, csr.signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new Error(CSR_BAD_SIGNATURE);
  return csr.spki;
}

/** readCsrWith, verifying with WebCrypto (`x509.cryptoProvider`); returns the CSR's public key. */
export async function readCsr(pem: string): Promise<x509.PublicKey> {
  const csr = parseCsr(pem);
  const crypto = x509.cryptoProvider.get();
  let ok = false;
  try {
    const key = await crypto.subtle.importKey('spki', csr.spki, EC_KEY_ALGORITHM, false, ['verify']);
    const signature = new x509.AsnEcSignatureFormatter().toWebSignature({ ...SIGNING_ALGORITHM, ...EC_KEY_ALGORITHM }, csr.signature)!;
    ok = await crypto.subtle.verify(SIGNING_ALGORITHM, key, signature, csr.signedData);
  } catch {
    ok = false;
  }
  if (!ok) throw new Error(CSR_BAD_SIGNATURE);
  return new x509.PublicKey(csr.spki);
}

/** A certificate (parsed, or DER) as PEM with `\n` line ends and one final newline. */
export function toPem(cert: x509.X509Certificate | Uint8Array): string {
  const der = cert instanceof Uint8Array ? cert : cert.rawData;
  return `${x509.PemConverter.encode(der, 'CERTIFICATE').replace(/\r\n/g, '\n').trimEnd()}\n`;
}
