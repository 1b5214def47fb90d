/**
 * Puts the OAuth server in front of the Console's route table, on the same HTTPS server.
 *
 * - `/oauth/interaction/…` is the sign-in page (login-interaction.ts); everything else under `/oauth/` is
 *   oidc-provider's (discovery at `/oauth/.well-known/openid-configuration`, `/oauth/auth`, `/oauth/token`,
 *   `/oauth/token/revocation`, `/oauth/device/auth`, `/oauth/device`, `/oauth/jwks`, `/oauth/me`).
 * - Any other request goes to the route table. When it carries a bearer token that is not a Console session
 *   token (`dbs_…`), the token is first resolved as an OAuth access token (oidc-provider's models are async,
 *   `authenticate()` is not); `authenticate()` then finds the principal with `oauthPrincipalOf(req)`.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import type { ConsoleContext } from '../context.js';
import { loginInteraction } from './login-interaction.js';
import { resolveAccessToken, type UserPrincipal } from './oauth-principal.js';
import { createOAuthProvider, OAUTH_PREFIX } from './oauth-provider.js';
import { OAuthStore } from './oauth-store.js';

const SESSION_TOKEN = /^dbs_/;
const principals = new WeakMap<IncomingMessage, UserPrincipal>();

/** The user an OAuth access token on this request stands for, once `wrap()` has resolved it. */
export function oauthPrincipalOf(req: IncomingMessage): UserPrincipal | undefined {
  return principals.get(req);
}

export interface OAuthMount {
  readonly provider: Provider;
  readonly store: OAuthStore;
  /** The HTTPS server's request listener: `/oauth/…` here, the rest to `next` (the route table). */
  wrap(next: RequestListener): RequestListener;
}

function bearerToken(req: IncomingMessage): string | null {
  const m = req.headers.authorization ? /^Bearer\s+(\S+)$/i.exec(req.headers.authorization) : null;
  return m ? m[1]! : null;
}

export function mountOAuth(ctx: ConsoleContext): OAuthMount {
  const store = new OAuthStore(ctx.db, ctx.masterKey);
  const provider = createOAuthProvider(ctx, store);
  const serveProvider = provider.callback();
  const serveInteraction = loginInteraction(ctx, provider);

  async function serveOAuth(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (await serveInteraction(req, res, url.pathname)) return;
    // oidc-provider routes without the prefix and takes its mount path from `baseUrl` (as under express).
    req.url = `${url.pathname.slice(OAUTH_PREFIX.length) || '/'}${url.search}`;
    (req as IncomingMessage & { baseUrl?: string }).baseUrl = OAUTH_PREFIX;
    await serveProvider(req, res);
  }

  return {
    provider,
    store,
    wrap(next) {
      return (req, res) => {
        const url = new URL(req.url ?? '/', 'https://console');
        if (url.pathname === OAUTH_PREFIX || url.pathname.startsWith(`${OAUTH_PREFIX}/`)) {
          serveOAuth(req, res, url).catch((e: unknown) => {
            ctx.log.error('oauth request failed', { path: url.pathname, error: (e as Error).stack ?? String(e) });
            if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('internal error');
            else res.destroy();
          });
          return;
        }
        const token = bearerToken(req);
        if (token === null || SESSION_TOKEN.test(token)) return next(req, res);
        void resolveAccessToken(ctx, provider, token)
          .then(
            (principal) => {
              if (principal) principals.set(req, principal);
            },
            (e: unknown) => ctx.log.error('oauth access token lookup failed', { error: (e as Error).stack ?? String(e) }),
          )
          .finally(() => next(req, res));
      };
    },
  };
}
