/**
 * A small JSON-over-HTTP(S) client for the stores without an official Node client (HashiCorp Vault, CyberArk
 * CCP), and the TLS agent every provider uses for a private CA or a client certificate.
 *
 * Why node:http(s) and not fetch: fetch needs an undici dispatcher for a custom CA or a client certificate, and
 * undici is not a dependency of this repository (Node 20 does not expose the Agent of its bundled copy);
 * node:https takes `ca`/`cert`/`key` on an Agent directly.
 *
 * - Responses are capped (1 MiB) and parsed as JSON when they say so; the body text is kept only for the
 *   provider to interpret and never goes into an error message.
 * - The caller's AbortSignal ends the request (socket destroyed).
 */
import { request as httpRequest, Agent as HttpAgent, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { rootCertificates } from 'node:tls';
import type { StoreKind } from './store-config.js';
import { StoreError, transportError, underDeadline } from './store-error.js';

const MAX_BODY = 1 << 20;

export interface TlsMaterial {
  caPem?: string | undefined;
  clientCertPem?: string | undefined;
  clientKeyPem?: string | undefined;
}

/**
 * An https Agent trusting the public roots plus `caPem`, presenting the client certificate if any; undefined when
 * there is nothing to add (the SDK's own agent is right then).
 */
export function tlsAgent(tls: TlsMaterial): HttpsAgent | undefined {
  if (!tls.caPem && !tls.clientCertPem) return undefined;
  return new HttpsAgent({
    keepAlive: true,
    ...(tls.caPem ? { ca: [...rootCertificates, tls.caPem] } : {}),
    ...(tls.clientCertPem ? { cert: tls.clientCertPem, key: tls.clientKeyPem } : {}),
  });
}

/** A provider's own connection pool for `address` (closed with the provider), with the TLS material if any. */
export function connectionAgent(address: URL, tls: TlsMaterial): HttpsAgent | HttpAgent {
  return address.protocol === 'https:' ? (tlsAgent(tls) ?? new HttpsAgent({ keepAlive: true })) : new HttpAgent({ keepAlive: true });
}

export interface JsonResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The parsed JSON body; undefined when empty or not JSON. */
  readonly json: unknown;
}

export interface JsonRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: unknown;
  agent?: HttpsAgent | HttpAgent | undefined;
  signal: AbortSignal;
}

export function requestJson(url: URL, init: JsonRequest): Promise<JsonResponse> {
  const body = init.body === undefined ? undefined : Buffer.from(JSON.stringify(init.body));
  const headers: Record<string, string> = { accept: 'application/json', ...init.headers };
  if (body) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(body.length);
  }
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<JsonResponse>((resolve, reject) => {
    const req = send(url, { method: init.method ?? 'GET', headers, agent: init.agent, signal: init.signal }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY) req.destroy(Object.assign(new Error('response too large'), { code: 'BODY_TOO_LARGE' }));
        else chunks.push(chunk);
      });
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * requestJson under the provider's deadline, with transport failures turned into StoreErrors that name
 * `address` (never the full URL: a query string may carry an application id or a secret's name).
 */
export function storeRequest(kind: StoreKind, address: string, url: URL, init: Omit<JsonRequest, 'signal'>, timeoutMs: number, caller?: AbortSignal): Promise<JsonResponse> {
  return underDeadline(timeoutMs, caller, (signal) => requestJson(url, { ...init, signal }), (error, signals) =>
    transportError(kind, address, error, signals) ?? new StoreError('bad_response', kind, `the request to ${address} failed (${(error as { code?: string }).code ?? 'unknown error'})`));
}
