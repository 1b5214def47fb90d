/**
 * HTTPS to the Console. Never without verifying who answers:
 *
 * - Once enrolled: the Console's certificate must chain to the CA received at enrolment (and nothing else) and
 *   name the host of `--console`; the Defender authenticates with its client certificate.
 * - While enrolling, the CA is not known yet. `--console-ca FILE` verifies as above; `--console-pin sha256//…`
 *   checks the SHA-256 of the certificate's public key (SPKI) instead, as curl's --pinnedpubkey does, before
 *   a single byte (the join token) is sent. With both, both are checked. With neither, enrolment is refused.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { IncomingMessage, ClientRequest } from 'node:http';
import { request, type RequestOptions } from 'node:https';
import { isIP, type Socket } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { carriesConsoleMark, CONSOLE_ORGANIZATION } from '../shared/identity/certificate-identity.js';

export interface ConsoleTls {
  /** PEM CA(s) the Console's certificate must chain to. */
  readonly ca?: string;
  /** `sha256//BASE64` pins of the Console's public key; any one must match. */
  readonly pins?: readonly string[];
  /** The Defender's client certificate and key (after enrolment). */
  readonly cert?: string;
  readonly key?: string;
}

export interface ConsoleResponse {
  readonly status: number;
  readonly body: unknown;
  readonly text: string;
}

export interface ConsoleLink {
  readonly url: string;
  /** A JSON request; rejects on network errors and after `timeoutMs`. */
  send(method: 'GET' | 'POST' | 'PUT', path: string, json?: unknown, timeoutMs?: number): Promise<ConsoleResponse>;
  /** A long-lived GET: resolves with the response once its head arrived; `abort` ends it. */
  openStream(path: string, headers?: Record<string, string>): Promise<{ res: IncomingMessage; abort(): void }>;
  /** Authenticates with this client certificate from now on (new connections; pooled ones are per certificate). */
  setClientCertificate(cert: string, key: string): void;
}

/** The pin of a DER certificate's public key, `sha256//BASE64`, as the Console shows it (curl's format). */
export function spkiPin(certDer: Uint8Array): string {
  const spki = new X509Certificate(certDer).publicKey.export({ type: 'spki', format: 'der' });
  return `sha256//${createHash('sha256').update(spki).digest('base64')}`;
}

function pinError(cert: PeerCertificate, pins: readonly string[]): Error | undefined {
  if (!cert.raw) return new Error('the Console presented no certificate');
  const pin = spkiPin(cert.raw);
  if (pins.includes(pin)) return undefined;
  return Object.assign(new Error(`the Console's public key (${pin}) does not match --console-pin; refusing to talk to it`), { code: 'ERR_DRAWBRIDGE_PIN_MISMATCH' });
}

/**
 * The Console is told from a Defender by its certificate's `O=Drawbridge Console`: the Console's CA also signs every
 * Defender's server certificate, with the names its enroller asked for, so chain and name alone would let whoever
 * held a join token stand in for the Console (and push a policy that allows everything).
 */
function consoleMarkError(cert: PeerCertificate): Error | undefined {
  if (carriesConsoleMark(cert.subject?.O)) return undefined;
  return Object.assign(new Error(`the server is not the Drawbridge Console: its certificate (${cert.subject?.CN ?? 'no CN'}) chains to the Console's CA but lacks O=${CONSOLE_ORGANIZATION} (a Defender's certificate?); check --console`), { code: 'ERR_DRAWBRIDGE_NOT_CONSOLE' });
}

/** TLS options for requests to the Console at `url`. */
function tlsOptions(url: URL, tls: ConsoleTls): RequestOptions {
  const pins = tls.pins ?? [];
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const base: RequestOptions = {
    host,
    port: Number(url.port || 443),
    minVersion: 'TLSv1.2',
    ...(isIP(host) ? {} : { servername: host }),
    ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
  };
  if (tls.ca) {
    return {
      ...base,
      ca: tls.ca,
      rejectUnauthorized: true,
      checkServerIdentity: (hostname, cert) => checkServerIdentity(hostname, cert) ?? consoleMarkError(cert) ?? (pins.length ? pinError(cert, pins) : undefined),
    };
  }
  if (pins.length === 0) throw new Error('no way to verify the Console: give its CA (--console-ca) or its public key pin (--console-pin)');
  // Chain verification cannot pass without the CA, so Node would never call checkServerIdentity: the pin is checked
  // on the finished handshake instead, and the socket is handed to the request only when it matches.
  const createConnection = (_opts: unknown, done: (err: Error | null, socket?: Socket) => void): undefined => {
    const socket = tlsConnect({ ...(base as object), rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    const onError = (err: Error): void => done(err);
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      const err = pinError(socket.getPeerCertificate(false), pins);
      if (err) {
        socket.destroy();
        done(err);
        return;
      }
      socket.off('error', onError);
      done(null, socket);
    });
    return undefined;
  };
  // No `agent`: with one (even `agent: false`, which makes a fresh Agent) Node would connect through the agent and
  // never call this createConnection.
  return { ...base, createConnection: createConnection as unknown as RequestOptions['createConnection'] };
}

function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (c: string) => {
      text += c;
      if (text.length > 4 * 1024 * 1024) res.destroy(new Error('the Console answered more than 4 MiB'));
    });
    res.on('end', () => resolve(text));
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('the Console closed the connection')));
  });
}

export function consoleLink(consoleUrl: string, tls: ConsoleTls): ConsoleLink {
  const url = new URL(consoleUrl);
  // Node's https agent pools connections by TLS options, the client certificate included: after a switch, requests
  // go on connections of their own, never on one authenticated with the previous certificate.
  let options = tlsOptions(url, tls);
  const pathOf = (path: string): string => `${url.pathname.replace(/\/+$/, '')}${path}`;
  return {
    url: consoleUrl,
    send(method, path, json, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const body = json === undefined ? undefined : JSON.stringify(json);
        const req: ClientRequest = request(
          {
            ...options,
            method,
            path: pathOf(path),
            headers: { accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}) },
          },
          (res) => {
            readAll(res).then((text) => {
              let parsed: unknown = text;
              try {
                parsed = text ? JSON.parse(text) : null;
              } catch {
                /* not JSON: kept as text */
              }
              resolve({ status: res.statusCode ?? 0, body: parsed, text });
            }, reject);
          },
        );
        req.setTimeout(timeoutMs, () => req.destroy(new Error(`the Console did not answer within ${timeoutMs / 1000} s`)));
        req.on('error', reject);
        req.end(body);
      });
    },
    openStream(path, headers = {}) {
      return new Promise((resolve, reject) => {
        // A connection of its own (never pooled), the pinned connection included (see tlsOptions).
        const req = request({ ...options, ...(options.createConnection ? {} : { agent: false }), method: 'GET', path: pathOf(path), headers }, (res) => {
          resolve({ res, abort: () => req.destroy() });
        });
        req.setTimeout(30_000, () => req.destroy(new Error('the Console did not answer within 30 s')));
        req.on('response', () => req.setTimeout(0));
        req.on('error', reject);
        req.end();
      });
    },
    setClientCertificate(cert, key) {
      options = tlsOptions(url, { ...tls, cert, key });
    },
  };
}
