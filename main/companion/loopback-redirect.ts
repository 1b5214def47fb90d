/**
 * The loopback redirect receiver of a native app (RFC 8252 §7.3): an HTTP server on 127.0.0.1, a random port,
 * paths `/start` and `/callback`.
 *
 * - The browser is opened on `/start`, which redirects it to the authorization URL. That URL carries `state` and
 *   the PKCE challenge, and a URL given to the browser opener is in its arguments, which every user of the machine
 *   can read (/proc/<pid>/cmdline): with them another user could sign in as themselves and send the code here,
 *   logging this user's CLI in as someone else (PKCE does not stop that; `state` is what does). `/start` holds
 *   no secret, so it answers once: a second visit means someone else is racing the browser, and the login ends
 *   with an error instead of going on (`wait` rejects).
 * - Only `/callback` with our `state`, after `/start`, counts; anything else gets a 404 or a 400 page and waiting
 *   goes on (a stray request or an old tab must not end the login).
 * - The browser's request is held open until the app has finished (`respond`), so the tab says whether the
 *   docker contexts are ready or what went wrong, then "you can close this tab".
 * - Pages are static text with no script and a CSP that allows nothing; nothing from the query is echoed.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LoopbackRedirect {
  /** `http://127.0.0.1:<port>/callback`. */
  readonly redirectUri: string;
  /** `http://127.0.0.1:<port>/start`: what the browser is opened on, once `begin` said where it leads. */
  readonly startUrl: string;
  /** Where `/start` sends the browser (the authorization URL). */
  begin(authorizationUrl: string): void;
  /** Resolves with the first redirect that carries `state` (or an error); the browser waits for `respond`. */
  wait(signal: AbortSignal): Promise<ArrivedRedirect>;
  close(): Promise<void>;
}

export interface ArrivedRedirect {
  /** The full URL the browser asked for. */
  readonly url: URL;
  /** When it arrived (performance.now()), for the benchmark. */
  readonly at: number;
  /** Answers the browser; call once. */
  respond(outcome: { ok: boolean; title: string; text: string }): void;
}

function page(title: string, text: string): string {
  const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>` +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    '<style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}</style></head>' +
    `<body><main><h1>${esc(title)}</h1><p>${esc(text)}</p><p>You can close this tab.</p></main></body></html>`;
}

function send(res: ServerResponse, status: number, title: string, text: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    'cache-control': 'no-store',
    'referrer-policy': 'no-referrer',
  });
  res.end(page(title, text));
}

/** The login ended because `/start` was visited twice. */
export class StartedTwiceError extends Error {}

/** Starts the receiver for one login with this `state`. */
export function startLoopbackRedirect(state: string): Promise<LoopbackRedirect> {
  let deliver: ((r: ArrivedRedirect) => void) | undefined;
  let fail: ((e: Error) => void) | undefined;
  let failure: Error | undefined;
  let delivered = false;
  let target: string | undefined;
  let started = false;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const { port } = server.address() as AddressInfo;
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    if (req.method === 'GET' && url.pathname === '/start' && target !== undefined) {
      if (started || failure) {
        failure ??= new StartedTwiceError('the sign-in address was opened twice, by the browser and by something else (another program or user on this machine?); nothing was signed in');
        fail?.(failure);
        return send(res, 409, 'Sign-in stopped', 'This sign-in was opened twice, so it was stopped to be safe. Run the drawbridge command again.');
      }
      started = true;
      res.writeHead(302, { location: target, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' });
      return res.end();
    }
    if (req.method !== 'GET' || url.pathname !== '/callback') return send(res, 404, 'Not found', 'This address only takes the Drawbridge sign-in redirect.');
    if (!started || failure || delivered || url.searchParams.get('state') !== state) {
      return send(res, 400, 'Not this sign-in', 'This sign-in link is not the one the drawbridge command is waiting for. Start again from the command.');
    }
    delivered = true;
    let answered = false;
    deliver?.({
      url,
      at: performance.now(),
      respond({ ok, title, text }) {
        if (answered) return;
        answered = true;
        send(res, ok ? 200 : 400, title, text);
      },
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        redirectUri: `http://127.0.0.1:${port}/callback`,
        startUrl: `http://127.0.0.1:${port}/start`,
        begin(authorizationUrl) {
          target = authorizationUrl;
        },
        wait(signal) {
          return new Promise((ok, reject) => {
            const onAbort = (): void => reject(signal.reason);
            if (signal.aborted) return onAbort();
            if (failure) return reject(failure);
            signal.addEventListener('abort', onAbort, { once: true });
            deliver = (r) => {
              signal.removeEventListener('abort', onAbort);
              ok(r);
            };
            fail = (e) => {
              signal.removeEventListener('abort', onAbort);
              reject(e);
            };
          });
        },
        close: () =>
          new Promise((done) => {
            server.close(() => done());
            server.closeIdleConnections(); // not the held redirect: it is answered by respond()
          }),
      });
    });
  });
}
