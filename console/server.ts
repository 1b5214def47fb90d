/**
 * The Console's HTTPS server: `buildConsole()` wires the route table, `listen()` binds.
 *
 * - TLS with the Console's own certificate; client certificates are requested but optional: browsers and curl
 *   come without one, Defenders present theirs (checked against the CA and the register, revocation included).
 * - Bearer tokens authenticate API users; an unknown, expired or revoked token is treated as no token. A bearer
 *   token is a Console session token or an OAuth access token (console/oauth, served under /oauth).
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ConsoleContext } from './context.js';
import { authRoutes } from './api/auth-routes.js';
import { openApiRoute } from './api/openapi.js';
import type { ApiRoute, Principal } from './api/route.js';
import { createRouter } from './api/router.js';
import { userRoutes } from './api/user-routes.js';
import { mountOAuth, type OAuthMount } from './oauth/mount-oauth.js';

export const CONSOLE_VERSION = '0.1.0';

export interface ConsoleServer {
  readonly server: Server;
  readonly routes: readonly ApiRoute[];
  listen(port: number, host?: string): Promise<AddressInfo>;
  close(): Promise<void>;
}

/** Route groups register here; each is a function of the context returning its routes. */
export type RouteGroup = (ctx: ConsoleContext) => ApiRoute[];

export async function authenticate(ctx: ConsoleContext, oauth: OAuthMount, req: IncomingMessage): Promise<Principal> {
  const socket = req.socket as TLSSocket;
  if (socket.authorized) {
    const cert = socket.getPeerCertificate();
    const serial = cert.serialNumber?.toLowerCase();
    const row = serial
      ? (ctx.db.prepare("SELECT subject_name FROM certificates WHERE lower(serial) = ? AND kind = 'defender' AND revoked_at IS NULL AND not_after > ?").get(serial, new Date().toISOString()) as { subject_name: string } | undefined)
      : undefined;
    if (row) return { kind: 'defender', hostName: row.subject_name, serial: serial! };
  }
  const auth = req.headers.authorization;
  const m = auth ? /^Bearer\s+(\S+)$/i.exec(auth) : null;
  if (m) {
    const byOAuth = await oauth.principalOf(req); // an OAuth access token (console/oauth/mount-oauth.ts)
    if (byOAuth) return byOAuth;
    const session = ctx.sessions.resolve(m[1]!);
    const user = session ? ctx.users.get(session.userName) : null;
    if (session && user && !user.disabled) {
      return { kind: 'user', name: user.name, role: user.role, groups: user.groups, sessionHash: session.tokenHash, sessionExpiresAt: session.expiresAt };
    }
  }
  return { kind: 'anonymous' };
}

export function buildConsole(ctx: ConsoleContext, tls: { cert: string; key: string }, groups: readonly RouteGroup[] = []): ConsoleServer {
  const routes: ApiRoute[] = [];
  routes.push(...authRoutes(ctx), ...userRoutes(ctx), ...groups.flatMap((g) => g(ctx)), openApiRoute(() => routes, CONSOLE_VERSION));
  const oauth = mountOAuth(ctx);
  const handler = createRouter(routes, {
    authenticate: (req) => authenticate(ctx, oauth, req),
    log: (m, f) => ctx.log.error(m, f),
    finished: (req, routed, status) => ctx.consoleAudit.recordRequest(req, routed, status),
  });
  const server = createServer({ cert: tls.cert, key: tls.key, ca: ctx.ca.certPem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, oauth.wrap(handler));
  return {
    server,
    routes,
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
