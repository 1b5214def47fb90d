/**
 * The Console's OAuth 2.0 / OpenID Connect server for native apps (oidc-provider), issuer `<public URL>/oauth`.
 *
 * - One built-in public client, `drawbridge-cli`: no secret, PKCE (S256) always, redirect to
 *   `http://127.0.0.1:<any port>/callback` or `http://[::1]:<any port>/callback` (RFC 8252 §7.3: oidc-provider
 *   ignores the port of loopback redirect URIs for `application_type: native`), grants authorization_code,
 *   refresh_token and the device grant (RFC 8628). No dynamic registration.
 * - Scopes `openid offline_access drawbridge`; only an access token with `drawbridge` may call the Console API
 *   (oauth-principal.ts), and a `drawbridge` login always gets a refresh token, `offline_access` or not. Bearer
 *   tokens only: DPoP is off, so no token is sender-constrained.
 * - A login is a grant with a fixed lifetime (OAUTH_SESSION_TTL_S). Refresh tokens rotate on every use and never
 *   outlive their grant; access tokens live 15 minutes at most, and never past the grant either. Certificates
 *   obtained with an access token end with the grant too (issue-certificates.ts bounds them by the session).
 * - Tokens are not bound to the browser session (`expiresWithSession` false): the browser session only lasts
 *   the sign-in, and the sign-in page asks for the password every time (login-interaction.ts).
 * - A disabled or deleted user's tokens stop working: `findAccount` refuses them (refresh, userinfo), and so does
 *   the API (oauth-principal.ts). A user re-created under the same name does not inherit older tokens.
 * - Access tokens carry the user's groups and role at issue time (`extra`, what introspection would show); the
 *   API itself reads the current ones, like for any other session.
 */
import Provider, { type Account, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { ConsoleContext } from '../context.js';
import type { User } from '../auth/user-store.js';
import { loadOAuthKeys } from './oauth-keys.js';
import { deviceCodePage, deviceConfirmPage, deviceSuccessPage, errorPage, type AppAsking, type HtmlPage } from './oauth-pages.js';
import type { OAuthStore } from './oauth-store.js';

export const OAUTH_PREFIX = '/oauth';
export const CLI_CLIENT_ID = 'drawbridge-cli';
export const API_SCOPE = 'drawbridge';
export const OAUTH_SCOPES: readonly string[] = ['openid', 'offline_access', API_SCOPE];
export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
/** How long one app login lasts (its grant, and so its refresh tokens and the certificates it gets). */
export const OAUTH_SESSION_TTL_S = 14 * 24 * 3600;
export const ACCESS_TOKEN_TTL_S = 15 * 60;

/** The built-in apps and what the sign-in pages say they want. */
export const APPS: Readonly<Record<string, AppAsking>> = Object.freeze({
  [CLI_CLIENT_ID]: { name: 'Drawbridge CLI', purpose: 'wants to get Docker certificates for you' },
});

export function appAsking(clientId: unknown): AppAsking {
  return (typeof clientId === 'string' && APPS[clientId]) || { name: 'An unknown app', purpose: 'wants to sign you in' };
}

export function oauthIssuer(publicUrl: string): string {
  return `${publicUrl.replace(/\/+$/, '')}${OAUTH_PREFIX}`;
}

const epoch = (): number => Math.floor(Date.now() / 1000);

/** `cap` seconds, or less so as to end with the grant being used (the Grant entity of a token request). */
function withinGrant(ctx: KoaContextWithOIDC | undefined, cap: number): number {
  const exp = ctx?.oidc?.entities?.Grant?.exp;
  return typeof exp === 'number' ? Math.max(1, Math.min(cap, exp - epoch())) : cap;
}

/** The user behind `accountId`, when enabled and not re-created after `issuedAt` (epoch seconds). */
export function activeUser(ctx: ConsoleContext, accountId: string, issuedAt: number | undefined): User | null {
  const user = ctx.users.get(accountId);
  if (!user || user.disabled) return null;
  if (issuedAt !== undefined && Math.floor(Date.parse(user.createdAt) / 1000) > issuedAt) return null;
  return user;
}

function render(ctx: KoaContextWithOIDC, page: HtmlPage, status?: number): void {
  for (const [k, v] of Object.entries(page.headers)) ctx.set(k, v);
  if (status !== undefined) ctx.status = status;
  ctx.body = page.html;
}

function xsrfOf(ctx: KoaContextWithOIDC): string {
  const secret = (ctx.oidc.session?.state as { secret?: unknown } | undefined)?.secret;
  return typeof secret === 'string' ? secret : '';
}

function userCodeError(err: Error | undefined): string | undefined {
  switch (err?.name) {
    case undefined:
      return undefined;
    case 'NoCodeError':
      return 'Enter the code the app shows.';
    case 'NotFoundError':
      return 'There is no such code. Check it against the app and try again.';
    case 'ExpiredError':
      return 'That code has expired. Start again from the app.';
    case 'AlreadyUsedError':
      return 'That code was already used. Start again from the app.';
    case 'AbortedError':
      return 'Sign-in was cancelled. Start again from the app if you want to connect it.';
    default:
      return 'Something went wrong. Start again from the app.';
  }
}

export function createOAuthProvider(ctx: ConsoleContext, store: OAuthStore): Provider {
  const keys = loadOAuthKeys(ctx.db, ctx.masterKey);
  const configuration: Configuration = {
    adapter: (name: string) => store.adapterFor(name),
    clients: [
      {
        client_id: CLI_CLIENT_ID,
        client_name: APPS[CLI_CLIENT_ID]!.name,
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        redirect_uris: ['http://127.0.0.1/callback', 'http://[::1]/callback'],
        grant_types: ['authorization_code', 'refresh_token', DEVICE_CODE_GRANT],
        response_types: ['code'],
        scope: OAUTH_SCOPES.join(' '),
      },
    ],
    scopes: [...OAUTH_SCOPES],
    claims: { openid: ['sub'], [API_SCOPE]: ['preferred_username', 'groups', 'role'] },
    responseTypes: ['code'],
    pkce: { required: () => true },
    jwks: keys.jwks,
    cookies: { keys: keys.cookieKeys },
    features: {
      devInteractions: { enabled: false },
      deviceFlow: {
        enabled: true,
        userCodeInputSource(octx, _form, _out, err) {
          render(octx, deviceCodePage({ action: octx.oidc.urlFor('code_verification'), xsrf: xsrfOf(octx), userCode: (err as { userCode?: string } | undefined)?.userCode, error: userCodeError(err) }));
        },
        userCodeConfirmSource(octx, _form, client, deviceInfo, userCode) {
          const ip = typeof deviceInfo?.ip === 'string' ? deviceInfo.ip : undefined;
          render(octx, deviceConfirmPage({ app: appAsking(client.clientId), action: octx.oidc.urlFor('code_verification'), xsrf: xsrfOf(octx), userCode, from: ip }));
        },
        successSource(octx) {
          render(octx, deviceSuccessPage(appAsking(octx.oidc.client?.clientId)));
        },
      },
      // A public client may revoke only its own tokens; a foreign one is answered 200 and left alone (RFC 7009 §2.2).
      revocation: { enabled: true, allowedPolicy: (_octx, client, token) => token.clientId === client.clientId },
      dPoP: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      introspection: { enabled: false },
      registration: { enabled: false },
    },
    interactions: { url: (_octx, interaction) => `${OAUTH_PREFIX}/interaction/${interaction.uid}` },
    expiresWithSession: () => false,
    // OpenID drops `offline_access` from an authorization request without prompt=consent (Core §11, and
    // oidc-provider does); a login for the Drawbridge API gets a refresh token either way: renewing
    // certificates without the user is what it is for.
    issueRefreshToken: (_octx, client, source) => client.grantTypeAllowed('refresh_token') && (source.scopes.has('offline_access') || source.scopes.has(API_SCOPE)),
    ttl: {
      AccessToken: (octx) => withinGrant(octx, ACCESS_TOKEN_TTL_S),
      IdToken: ACCESS_TOKEN_TTL_S,
      AuthorizationCode: 60,
      DeviceCode: 10 * 60,
      Interaction: 15 * 60,
      Session: 60 * 60,
      Grant: OAUTH_SESSION_TTL_S,
      RefreshToken: (octx) => withinGrant(octx, OAUTH_SESSION_TTL_S),
    },
    async findAccount(_octx, sub, token): Promise<Account | undefined> {
      const issuedAt = token ? ((token as { iiat?: number }).iiat ?? token.iat) : undefined;
      const user = activeUser(ctx, sub, issuedAt);
      if (!user) return undefined;
      return {
        accountId: user.name,
        claims: () => ({ sub: user.name, preferred_username: user.name, groups: [...user.groups], role: user.role }),
      };
    },
    async extraTokenClaims(_octx, token) {
      if (token.kind !== 'AccessToken' || typeof token.accountId !== 'string') return undefined;
      const user = ctx.users.get(token.accountId);
      return user ? { groups: [...user.groups], role: user.role } : undefined;
    },
    clientBasedCORS: () => false,
    renderError(octx, out) {
      const detail = out.error_description ?? out.error;
      render(octx, errorPage(octx.status >= 400 ? octx.status : 400, 'Sign-in failed', `${detail}. Start again from the app.`), octx.status >= 400 ? octx.status : 400);
    },
  };
  const provider = new Provider(oauthIssuer(ctx.config.publicUrl), configuration);
  provider.on('server_error', (_octx: unknown, err: Error) => ctx.log.error('oauth server error', { error: err.stack ?? err.message }));
  provider.on('grant.revoked', (_octx: unknown, grantId: string) => ctx.log.info('oauth login revoked', { grant: grantId }));
  return provider;
}
