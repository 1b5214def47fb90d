/**
 * Puts the OAuth server in front of the Console's route table, on the same HTTPS server.
 *
 * - `/oauth/interaction/…` is the sign-in page (login-interaction.ts); everything else under `/oauth/` is
 *   oidc-provider's (discovery at `/oauth/.well-known/openid-configuration`, `/oauth/auth`, `/oauth/token`,
 *   `/oauth/token/revocation`, `/oauth/device/auth`, `/oauth/device`, `/oauth/jwks`, `/oauth/me`).
 * - Any other request goes to the route table. A bearer token that is not a Console session token (`dbs_…`) is
 *   an OAuth access token: the Console's authentication resolves it with `principalOf` (oidc-provider's models are
 *   async), each time it authenticates the request.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import type { ConsoleContext } from '../context.js';
import { loginInteraction } from './login-interaction.js';
import { resolveAccessToken, type UserPrincipal } from './oauth-principal.js';
import { createOAuthProvider, OAUTH_PREFIX } from './oauth-provider.js';
import { OAuthStore } from './oauth-store.js';

const SESSION_TOKEN = /^dbs_/;

export interface OAuthMount {
  readonly provider: Provider;
  readonly store: OAuthStore;
  /** The HTTPS server's request listener: `/oauth/…` here, the rest to `next` (the route table). */
  wrap(next: RequestListener): RequestListener;
  /** The user the request's OAuth access token stands for now; null without one (a session token, no token). */
  principalOf(req: IncomingMessage): Promise<UserPrincipal | null>;
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
        next(req, res);
      };
    },
    async principalOf(req) {
      const token = bearerToken(req);
      if (token === null || SESSION_TOKEN.test(token)) return null;
      try {
        return await resolveAccessToken(ctx, provider, token);
      } catch (e) {
        ctx.log.error('oauth access token lookup failed', { error: (e as Error).stack ?? String(e) });
        return null;
      }
    },
  };
}
