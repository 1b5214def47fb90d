/** Certificate requests for tests: a fresh key (ECDSA P-256 unless asked otherwise) and its PEM CSR. */
import 'reflect-metadata'; // @peculiar/x509 (tsyringe) needs it loaded first
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);

export interface TestCsr {
  /** PEM "CERTIFICATE REQUEST". */
  readonly csr: string;
  /** PEM "PRIVATE KEY" (PKCS#8). */
  readonly key: string;
  /** The public key as SPKI DER, to compare with what a certificate carries. */
  readonly spki: Uint8Array;
}

export async function makeCsr(subject = 'CN=test', algorithm: 'p256' | 'p384' | 'rsa' = 'p256'): Promise<TestCsr> {
  const [keyAlg, signAlg] =
    algorithm === 'rsa'
      ? [{ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, { name: 'RSASSA-PKCS1-v1_5' }]
      : [{ name: 'ECDSA', namedCurve: algorithm === 'p384' ? 'P-384' : 'P-256' }, { name: 'ECDSA', hash: 'SHA-256' }];
  const keys = (await webcrypto.subtle.generateKey(keyAlg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: subject, keys: keys as never, signingAlgorithm: signAlg });
  return {
    csr: csr.toString('pem'),
    key: x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'),
    spki: new Uint8Array(await webcrypto.subtle.exportKey('spki', keys.publicKey)),
  };
}

/** The same CSR with one bit of its signature flipped: well-formed, but the self-signature no longer verifies. */
export function tamperCsrSignature(pem: string): string {
  const der = new Uint8Array(x509.PemConverter.decodeFirst(pem));
  der[der.length - 1]! ^= 0x01;
  return x509.PemConverter.encode(der.buffer, 'CERTIFICATE REQUEST');
}
