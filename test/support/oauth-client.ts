/**
 * The app side of the Console's OAuth server for end-to-end tests: openid-client v6 with an injected fetch that
 * trusts only the Console's CA (the companion's own, main/companion/console-https.ts), the loopback redirect
 * receiver a native app runs (RFC 8252 §7.3), and the SPKI pin Chromium is told to accept for the Console.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createHash, X509Certificate } from 'node:crypto';
import { connect as tlsConnect } from 'node:tls';
import * as client from 'openid-client';
import { consoleFetch } from '../../main/index.js';
import type { ApiResponse } from './console-process.js';

/** A Fetch API function for openid-client that verifies the server against `ca` (and nothing else): the companion's own. */
export function pinnedFetch(ca: string): client.CustomFetch {
  return consoleFetch('the Console', ca) as client.CustomFetch;
}

/** openid-client configured by discovery of the Console's issuer (`<url>/oauth`) for the built-in CLI app. */
export function discoverConsole(consoleUrl: string, ca: string, clientId = 'drawbridge-cli'): Promise<client.Configuration> {
  return client.discovery(new URL(`${consoleUrl}/oauth`), clientId, undefined, client.None(), { [client.customFetch]: pinnedFetch(ca) });
}

export interface LoopbackReceiver {
  /** `http://127.0.0.1:<port>/callback` (or `[::1]`). */
  readonly redirectUri: string;
  /** The next redirect the browser brings (the full URL, with code and state or an error). */
  next(timeoutMs?: number): Promise<URL>;
  close(): Promise<void>;
}

/** A native app's loopback redirect receiver on an ephemeral port. */
export function loopbackReceiver(host: '127.0.0.1' | '::1' = '127.0.0.1'): Promise<LoopbackReceiver> {
  const arrived: URL[] = [];
  const waiters: ((u: URL) => void)[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const { port } = server.address() as AddressInfo;
    const url = new URL(req.url ?? '/', `http://${host === '::1' ? '[::1]' : host}:${port}`);
    res.writeHead(url.pathname === '/callback' ? 200 : 404, { 'Content-Type': 'text/plain; charset=utf-8' }).end(url.pathname === '/callback' ? 'Signed in; you can close this window.' : 'not found');
    if (url.pathname !== '/callback') return;
    const w = waiters.shift();
    if (w) w(url);
    else arrived.push(url);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject).listen(0, host, () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        redirectUri: `http://${host === '::1' ? '[::1]' : host}:${port}/callback`,
        next(timeoutMs = 30_000) {
          const ready = arrived.shift();
          if (ready) return Promise.resolve(ready);
          return new Promise((ok, fail) => {
            const timer = setTimeout(() => fail(new Error(`no loopback redirect within ${timeoutMs} ms`)), timeoutMs);
            waiters.push((u) => {
              clearTimeout(timer);
              ok(u);
            });
          });
        },
        close: () => new Promise((done) => server.close(() => done())),
      });
    });
  });
}

/** Chromium's `--ignore-certificate-errors-spki-list` value for a certificate: base64 SHA-256 of its SPKI. */
export function spkiPin(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/** The base64 SHA-256 of the SPKI of the certificate a TLS server on 127.0.0.1:`port` serves (Chromium's form; prefix `sha256//` for curl's and `drawbridge login --pin`). */
export function servedSpkiPin(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const pin = spkiPin(new X509Certificate(socket.getPeerCertificate().raw).toString());
      socket.end();
      resolve(pin);
    });
    socket.on('error', reject);
  });
}

/** A request to the Console with exactly these headers and nothing added (a browser's form post, with or without its cookies). */
export function exactRequest(consoleUrl: string, ca: string, method: string, path: string, headers: Record<string, string>, body?: string): Promise<ApiResponse<string>> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, consoleUrl), { method, headers, ca, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve({ status: res.statusCode ?? 0, body: text, text, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

