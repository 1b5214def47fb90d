/**
 * The user's key pair and its certificate request, made on this machine: the private key never leaves it.
 *
 * - ECDSA P-256 (what the Console signs and the docker CLI accepts), PKCS#8 PEM, unencrypted (the CLI refuses
 *   encrypted keys). A new key for every certificate: renewal never reuses one.
 * - The CSR's subject is a placeholder: the Console puts the user's identity in the certificate, whatever the
 *   CSR says.
 */
import 'reflect-metadata'; // @peculiar/x509 resolves its providers through tsyringe, which needs it first
import { webcrypto, X509Certificate } from 'node:crypto';
import * as x509 from '@peculiar/x509';

export interface ClientKey {
  /** PEM "PRIVATE KEY" (PKCS#8). */
  readonly key: string;
  /** PEM "CERTIFICATE REQUEST". */
  readonly csr: string;
}

export async function generateClientKey(): Promise<ClientKey> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256' } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: 'CN=drawbridge-companion', keys: keys as never, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } },
    webcrypto as never,
  );
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { key: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'), csr: csr.toString('pem') };
}

/** What the companion shows about a certificate: serial and validity. */
export function describeCertificate(pem: string): { serial: string; notBefore: string; notAfter: string } {
  const cert = new X509Certificate(pem);
  return { serial: cert.serialNumber.toLowerCase(), notBefore: new Date(cert.validFrom).toISOString(), notAfter: new Date(cert.validTo).toISOString() };
}
