/**
 * The Console as a Defender sees it, for end-to-end tests of the Console side of shared/wire/defender-console.ts:
 * key pairs and CSRs made here (the keys never leave the test), enrolment, mTLS calls with the enrolled client
 * certificate, and a reader for the NDJSON policy stream that validates every line against the shared schema.
 */
import 'reflect-metadata'; // @peculiar/x509 (tsyringe) needs it loaded first
import { webcrypto } from 'node:crypto';
import { request, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import * as x509 from '@peculiar/x509';
import { EC_KEY_ALGORITHM, SIGNING_ALGORITHM } from '../../shared/identity/certificate-profiles.js';
import { enrollResponse, policyStreamLine, type EnrollRequest, type EnrollResponse, type PolicyStreamLine } from '../../shared/wire/defender-console.js';
import type { ApiResponse, ConsoleClient } from './console-process.js';

x509.cryptoProvider.set(webcrypto);

export interface KeyAndCsr {
  /** PKCS#8 PEM. */
  readonly key: string;
  readonly csr: string;
}

/** A fresh ECDSA P-256 key and a CSR for it; the CSR's subject is deliberately not what the Console will issue. */
export async function newKeyAndCsr(subject = 'CN=ignored-by-the-console, O=Evil Corp'): Promise<KeyAndCsr> {
  const keys = (await webcrypto.subtle.generateKey(EC_KEY_ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: subject, keys: keys as never, signingAlgorithm: SIGNING_ALGORITHM });
  const key = x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
  return { key, csr: csr.toString('pem') };
}

export interface EnrolledDefender {
  readonly hostName: string;
  readonly response: EnrollResponse;
  readonly serverKey: string;
  readonly clientKey: string;
}

/** A join token the admin (`adminToken`) makes (`body`: hostName, singleUse, ttlSeconds); fails unless 201. */
export async function joinToken(console: ConsoleClient, adminToken: string, body: Record<string, unknown> = {}): Promise<{ id: string; token: string; expiresAt: string; singleUse: boolean }> {
  const r = await console.call('POST', '/api/v1/defenders/join-tokens', { token: adminToken, json: body });
  if (r.status !== 201) throw new Error(`join token: ${r.status} ${r.text}`);
  return r.body as { id: string; token: string; expiresAt: string; singleUse: boolean };
}

/** Enrols `hostName` with a join token made for it (which may also enrol it again); fails unless 200. */
export async function enrolAsAdmin(console: ConsoleClient, adminToken: string, hostName: string, extra: Partial<EnrollRequest> = {}): Promise<EnrolledDefender> {
  const r = await enrollDefender(console, (await joinToken(console, adminToken, { hostName })).token, hostName, extra);
  if (!r.ok) throw new Error(`enrolment of ${hostName} failed: ${r.res.status} ${r.res.text}`);
  return r.defender;
}

/** Enrols `hostName`; on anything but 200 resolves with the raw answer instead (for negative tests). */
export async function enrollDefender(
  console: ConsoleClient,
  joinToken: string,
  hostName: string,
  extra: Partial<EnrollRequest> = {},
): Promise<{ ok: true; defender: EnrolledDefender } | { ok: false; res: ApiResponse<any> }> {
  const server = await newKeyAndCsr();
  const client = await newKeyAndCsr();
  const body: EnrollRequest = { joinToken, hostName, version: 'test-0.0.1', serverCsr: server.csr, clientCsr: client.csr, listener: { type: 'tcp', address: '0.0.0.0:9998' }, ...extra };
  const res = await console.call('POST', '/api/v1/defenders/enroll', { json: body });
  if (res.status !== 200) return { ok: false, res };
  return { ok: true, defender: { hostName, response: enrollResponse.parse(res.body), serverKey: server.key, clientKey: client.key } };
}

export interface Mtls {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

export const clientTls = (d: EnrolledDefender): Mtls => ({ ca: d.response.ca, cert: d.response.clientCert, key: d.clientKey });

function tlsOptions(tls: Mtls): RequestOptions {
  // A fresh agent-less request each time: a pooled TLS session must not carry one identity into another test.
  return { ca: tls.ca, cert: tls.cert, key: tls.key, agent: false };
}

/** One JSON call with a client certificate (and optionally a bearer token as well). */
export function mtlsCall<T = any>(url: string, tls: Mtls, method: string, path: string, opts: { json?: unknown; token?: string } = {}): Promise<ApiResponse<T>> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (opts.json !== undefined) headers['content-type'] = 'application/json';
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    const req = request(new URL(path, url), { method, headers, ...tlsOptions(tls) }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => {
        let body: unknown = text;
        try {
          body = text ? JSON.parse(text) : null;
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode ?? 0, body: body as T, text, headers: res.headers });
      });
    });
    req.on('error', reject);
    req.end(opts.json !== undefined ? JSON.stringify(opts.json) : undefined);
  });
}

export interface PolicyStream {
  readonly status: number;
  readonly contentType: string | undefined;
  /** Every line received so far, validated. */
  readonly lines: readonly PolicyStreamLine[];
  /** Resolves with the first line (received earlier or later) that satisfies `match`. */
  next(match: (line: PolicyStreamLine) => boolean, timeoutMs?: number): Promise<PolicyStreamLine>;
  /** Resolves when the Console ends the stream. */
  readonly ended: Promise<void>;
  close(): void;
}

/** Opens `GET /api/v1/defenders/policy?since=N` and reads it line by line. */
export function openPolicyStream(url: string, tls: Mtls, since: number): Promise<PolicyStream> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(`/api/v1/defenders/policy?since=${since}`, url), { method: 'GET', ...tlsOptions(tls) }, (res: IncomingMessage) => {
      const lines: PolicyStreamLine[] = [];
      const waiters = new Set<() => void>();
      let buffer = '';
      let failure: Error | null = null;
      let endedResolve!: () => void;
      const ended = new Promise<void>((r) => (endedResolve = r));
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let i: number;
        while ((i = buffer.indexOf('\n')) >= 0) {
          const text = buffer.slice(0, i);
          buffer = buffer.slice(i + 1);
          try {
            lines.push(policyStreamLine.parse(JSON.parse(text)));
          } catch (e) {
            failure = new Error(`a policy stream line does not match the wire contract: ${(e as Error).message}\n${text}`);
          }
        }
        for (const w of waiters) w();
      });
      const finish = (): void => {
        endedResolve();
        for (const w of waiters) w();
      };
      res.on('end', finish).on('close', finish).on('error', finish);
      resolve({
        status: res.statusCode ?? 0,
        contentType: res.headers['content-type'],
        lines,
        ended,
        next(match, timeoutMs = 10_000) {
          return new Promise((ok, fail) => {
            const check = (): boolean => {
              if (failure) {
                fail(failure);
                return true;
              }
              const hit = lines.find(match);
              if (hit) ok(hit);
              return hit !== undefined;
            };
            if (check()) return;
            const timer = setTimeout(() => {
              waiters.delete(waiter);
              fail(new Error(`no matching policy stream line within ${timeoutMs} ms; received: ${JSON.stringify(lines).slice(0, 2000)}`));
            }, timeoutMs);
            const waiter = (): void => {
              if (check()) {
                clearTimeout(timer);
                waiters.delete(waiter);
              }
            };
            waiters.add(waiter);
          });
        },
        close() {
          req.destroy();
        },
      });
    });
    req.on('error', reject);
    req.end();
  });
}
