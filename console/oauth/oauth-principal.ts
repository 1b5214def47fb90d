/**
 * OAuth access tokens as Console API credentials: the token is looked up through oidc-provider's own AccessToken
 * model (so expiry and revocation are the provider's), then checked here.
 *
 * - Accepted only when: issued to one of the built-in apps, with the `drawbridge` scope, not sender-constrained
 *   (the API takes bearer tokens only), its grant still exists (revoking the refresh token deletes the grant and
 *   every token of it), and its user exists, is enabled, and is not a re-creation of an older account.
 * - The principal is an ordinary `user` principal with the user's current role and groups. Its "session" is the
 *   grant: `sessionHash` is `oauth:<grant id>` and `sessionExpiresAt` the grant's end, which bounds the lifetime
 *   of the certificates issued with it.
 */
import type Provider from 'oidc-provider';
import type { Principal } from '../api/route.js';
import type { ConsoleContext } from '../context.js';
import { activeUser, API_SCOPE, APPS } from './oauth-provider.js';

export type UserPrincipal = Extract<Principal, { kind: 'user' }>;

export const OAUTH_SESSION_PREFIX = 'oauth:';

export async function resolveAccessToken(ctx: ConsoleContext, provider: Provider, token: string): Promise<UserPrincipal | null> {
  const at = await provider.AccessToken.find(token);
  if (!at || at.isExpired || typeof at.accountId !== 'string' || typeof at.grantId !== 'string') return null;
  if (!Object.hasOwn(APPS, at.clientId ?? '') || !at.scopes.has(API_SCOPE) || at.isSenderConstrained()) return null;
  const grant = await provider.Grant.find(at.grantId);
  if (!grant || grant.accountId !== at.accountId || typeof grant.exp !== 'number') return null;
  const user = activeUser(ctx, at.accountId, grant.iat);
  if (!user) return null;
  return {
    kind: 'user',
    name: user.name,
    role: user.role,
    groups: user.groups,
    sessionHash: `${OAUTH_SESSION_PREFIX}${at.grantId}`,
    sessionExpiresAt: new Date(grant.exp * 1000).toISOString(),
  };
}
