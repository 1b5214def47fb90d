/**
 * The loopback redirect receiver of a native app (RFC 8252 §7.3): an HTTP server on 127.0.0.1, a random port,
 * path `/callback`.
 *
 * - Only `/callback` with our `state` counts; anything else gets a 404 or a 400 page and waiting goes on (a stray
 *   request or an old tab must not end the login).
 * - The browser's request is held open until the app has finished (`respond`), so the tab says whether the
 *   docker contexts are ready or what went wrong, then "you can close this tab".
 * - Pages are static text with no script and a CSP that allows nothing; nothing from the query is echoed.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LoopbackRedirect {
  /** `http://127.0.0.1:<port>/callback`. */
  readonly redirectUri: string;
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

/** Starts the receiver for one login with this `state`. */
export function startLoopbackRedirect(state: string): Promise<LoopbackRedirect> {
  let deliver: ((r: ArrivedRedirect) => void) | undefined;
  let delivered = false;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const { port } = server.address() as AddressInfo;
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    if (req.method !== 'GET' || url.pathname !== '/callback') return send(res, 404, 'Not found', 'This address only takes the Drawbridge sign-in redirect.');
    if (delivered || url.searchParams.get('state') !== state) {
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
        wait(signal) {
          return new Promise((ok, fail) => {
            const onAbort = (): void => fail(signal.reason);
            if (signal.aborted) return onAbort();
            signal.addEventListener('abort', onAbort, { once: true });
            deliver = (r) => {
              signal.removeEventListener('abort', onAbort);
              ok(r);
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
