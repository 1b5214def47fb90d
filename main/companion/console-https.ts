/**
 * HTTPS to the Console, trusting what the user said to trust — the way Defenders enrol and the install command
 * works (README "Getting a certificate").
 *
 * - `--ca FILE`: the Console's CA (PEM, `GET /api/v1/ca`); `--pin sha256//…`: the SHA-256 of the Console's TLS
 *   public key (curl's --pinnedpubkey format, what the Console prints). With a pin the CA is fetched over a
 *   connection that is accepted only when the server's key has that hash; from then on only that CA is trusted.
 *   Neither: the system's trust store (a Console behind a publicly trusted certificate).
 * - After login the CA is kept in the state file, so later commands trust exactly it.
 * - Network failures become CONSOLE_UNREACHABLE and TLS failures CONSOLE_UNTRUSTED, each saying what to do.
 * - `consoleFetch` is a Fetch API function over node:https (openid-client's injected fetch takes it too).
 */
import { createHash, X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import { checkServerIdentity, type PeerCertificate, type TLSSocket } from 'node:tls';
import { carriesConsoleMark, CONSOLE_CA_COMMON_NAME, CONSOLE_ORGANIZATION } from '../../shared/identity/certificate-identity.js';
import { CompanionError } from './companion-errors.js';

export type ConsoleFetch = (url: string | URL, init?: { method?: string; headers?: Record<string, string> | Headers; body?: unknown; signal?: AbortSignal | null }) => Promise<Response>;

const TLS_ERRORS = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS|HOSTNAME|DEPTH_ZERO|PIN_MISMATCH/;
const PIN = /^sha256\/\/[A-Za-z0-9+/]{43}=$/;

/** Turns a socket-level failure into what the user should do about it. */
export function consoleNetworkError(consoleUrl: string, error: unknown): CompanionError {
  if (error instanceof CompanionError) return error;
  const e = error as NodeJS.ErrnoException;
  const code = e.code ?? '';
  if (TLS_ERRORS.test(code) || /certificate/i.test(e.message ?? '')) {
    return new CompanionError(
      'CONSOLE_UNTRUSTED',
      `the Console at ${consoleUrl} could not be verified (${e.message}); give its CA with --ca FILE (GET /api/v1/ca) or its key pin with --pin sha256//… (shown with its install command)`,
    );
  }
  if (e.name === 'AbortError') return new CompanionError('CANCELLED', 'cancelled');
  return new CompanionError('CONSOLE_UNREACHABLE', `cannot reach the Console at ${consoleUrl} (${e.message}); check the URL and your network, then try again`);
}

function headerRecord(headers: Record<string, string> | Headers | undefined): Record<string, string> {
  if (!headers) return {};
  if (headers instanceof Headers) return Object.fromEntries(headers.entries());
  return { ...headers };
}

function bodyBytes(body: unknown): Buffer | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string' || body instanceof URLSearchParams) return Buffer.from(String(body));
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError('consoleFetch: unsupported body');
}

interface TlsTrust {
  readonly ca?: string;
  readonly pin?: string;
}

/** SHA-256 of a certificate's SPKI in curl's pin format. */
export function spkiPinOf(raw: Buffer): string {
  const spki = new X509Certificate(raw).publicKey.export({ type: 'spki', format: 'der' });
  return `sha256//${createHash('sha256').update(spki).digest('base64')}`;
}

/**
 * The server's name, and, when a Console CA issued its certificate, its `O=Drawbridge Console`: that CA also signs
 * Defenders' server certificates with names their enrollers chose, so a name alone does not make the Console. The
 * issuer decides, not the trusted file: a bundle may hold the Console's CA after a company CA (the Console behind a
 * proxy with a company certificate is then vouched for by name).
 */
function consoleIdentity(hostname: string, cert: PeerCertificate): Error | undefined {
  const wrongName = checkServerIdentity(hostname, cert);
  if (wrongName) return wrongName;
  if (cert.issuer?.CN !== CONSOLE_CA_COMMON_NAME || carriesConsoleMark(cert.subject?.O)) return undefined;
  return new Error(`${hostname} is not the Drawbridge Console: its certificate chains to the Console's CA but lacks O=${CONSOLE_ORGANIZATION}`);
}

function httpsFetch(consoleUrl: string, trust: TlsTrust): ConsoleFetch {
  return (url, init = {}) =>
    new Promise<Response>((resolve, reject) => {
      const bytes = bodyBytes(init.body);
      const headers = headerRecord(init.headers);
      if (bytes) headers['content-length'] = String(bytes.length);
      // With a pin the chain is not checked (as curl -k --pinnedpubkey): the key check on 'secureConnect' is all.
      const tls = trust.pin ? { rejectUnauthorized: false } : trust.ca ? { ca: trust.ca, checkServerIdentity: consoleIdentity } : {};
      const req = request(url, { method: init.method ?? 'GET', headers, agent: false, ...tls, ...(init.signal ? { signal: init.signal } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const out = new Headers();
          for (const [k, v] of Object.entries(res.headers)) for (const one of Array.isArray(v) ? v : v === undefined ? [] : [v]) out.append(k, one);
          const status = res.statusCode ?? 0;
          resolve(new Response(status === 204 || status === 304 ? null : Buffer.concat(chunks), { status, headers: out }));
        });
        res.on('error', (e) => reject(consoleNetworkError(consoleUrl, e)));
      });
      if (trust.pin) {
        req.on('socket', (socket) =>
          socket.once('secureConnect', () => {
            const peer = (socket as TLSSocket).getPeerCertificate();
            if (!peer?.raw || spkiPinOf(peer.raw) !== trust.pin) req.destroy(Object.assign(new Error(`the Console's key does not match ${trust.pin}`), { code: 'PIN_MISMATCH' }));
          }),
        );
      }
      req.on('error', (e) => reject(consoleNetworkError(consoleUrl, e)));
      req.end(bytes);
    });
}

/** A fetch that trusts exactly `ca` (or the system store when undefined). */
export const consoleFetch = (consoleUrl: string, ca: string | undefined): ConsoleFetch => httpsFetch(consoleUrl, ca ? { ca } : {});

/**
 * The CA to trust from now on: the `--ca` PEM as given, or the Console's CA fetched over a pinned connection, or
 * the Console's CA fetched with the system trust store.
 */
export async function establishConsoleTrust(consoleUrl: string, opts: { ca?: string; pin?: string }): Promise<string | undefined> {
  if (opts.ca && opts.pin) throw new CompanionError('USAGE', 'give either --ca or --pin, not both');
  if (opts.ca) {
    try {
      new X509Certificate(opts.ca);
    } catch {
      throw new CompanionError('USAGE', 'the --ca file does not hold a PEM certificate');
    }
    return opts.ca;
  }
  if (opts.pin) {
    if (!PIN.test(opts.pin)) throw new CompanionError('USAGE', `--pin must look like sha256//<base64 of 32 bytes>, not ${opts.pin}`);
    const r = await httpsFetch(consoleUrl, { pin: opts.pin })(`${consoleUrl}/api/v1/ca`);
    const body = (await r.json().catch(() => null)) as { pem?: unknown } | null;
    if (r.status !== 200 || typeof body?.pem !== 'string') throw new CompanionError('CONSOLE_ERROR', `${consoleUrl}/api/v1/ca answered ${r.status}: is this a Drawbridge Console?`);
    return body.pem;
  }
  return undefined;
}
