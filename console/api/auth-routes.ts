/** Login, logout, and who am I. */
import { z } from 'zod';
import type { ConsoleContext } from '../context.js';
import { noteAuditTarget } from '../audit/console-audit.js';
import { passwordLogin } from '../auth/login-throttle.js';
import { consoleErrors } from '../errors.js';
import { ROLES, noContent, peerAddress, route } from './route.js';

export function authRoutes(ctx: ConsoleContext) {
  return [
    route({
      method: 'POST', path: '/api/v1/auth/login', tag: 'auth', access: 'public',
      summary: 'Log in with a local user name and password; returns a short-lived bearer token. After 5 failures in a row for a name, the next attempt waits 1 s, then 2 s, 4 s… (429 until then)',
      body: z.strictObject({ username: z.string().min(1).max(64), password: z.string().min(1).max(1024) }),
      async handler({ body, req }) {
        noteAuditTarget(req, { user: body.username }); // the Console's audit keeps who tried, not the password
        const user = await passwordLogin(ctx.logins, ctx.users, body.username, body.password, peerAddress(req.socket.remoteAddress));
        if (!user) throw consoleErrors.unauthenticated('wrong user name or password');
        const session = ctx.sessions.create(user);
        ctx.log.info('login', { user: user.name });
        return { token: session.token, expiresAt: session.expiresAt, user: { name: user.name, role: user.role, groups: user.groups } };
      },
    }),
    route({
      method: 'POST', path: '/api/v1/auth/logout', tag: 'auth', access: ROLES,
      summary: 'Revoke the current session token',
      handler({ principal }) {
        if (principal.kind === 'user') ctx.sessions.revoke(principal.sessionHash);
        return noContent();
      },
    }),
    route({
      method: 'GET', path: '/api/v1/auth/me', tag: 'auth', access: ROLES,
      summary: 'The authenticated user',
      handler({ principal }) {
        if (principal.kind !== 'user') throw consoleErrors.forbidden('not a user session');
        return { name: principal.name, role: principal.role, groups: principal.groups, sessionExpiresAt: principal.sessionExpiresAt };
      },
    }),
  ];
}
