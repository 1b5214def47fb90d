/** Ends every login of a user: API sessions and the companion's OAuth logins (grants and their tokens). */
import type { ConsoleContext } from '../context.js';
import { OAuthStore } from '../oauth/oauth-store.js';

export function endLogins(ctx: ConsoleContext, name: string): void {
  ctx.sessions.revokeAllFor(name);
  new OAuthStore(ctx.db, ctx.masterKey).revokeUserGrants(name);
}
