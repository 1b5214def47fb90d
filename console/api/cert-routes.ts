/**
 * The CA, user certificates, their install command, revocation, and server certificates for hand-run Defenders.
 *
 * - Anyone logged in gets certificates for themselves only; the subject comes from their account, never the CSR.
 * - Access users and operators see and revoke only their own user certificates; admins and auditors list all;
 *   only admins revoke anyone's. A certificate the caller may not see is answered 404, as if it did not exist.
 * - The install script and its POST are public: the one-time token in the X-Drawbridge-Install-Token header is the
 *   credential (never the query string: see install-script.ts).
 * - Revocations bump the policy version (Defenders learn them from the push hub).
 */
import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import type { ConsoleContext } from '../context.js';
import { consoleErrors } from '../errors.js';
import { endLogins } from '../auth/end-logins.js';
import { userName } from '../auth/user-store.js';
import { getCertificate, hasUserCertificates, listCertificates, normaliseSerial, pageKey, revokeCertificate, revokeUserCertificates } from '../certs/certificate-register.js';
import { checkCsr, issueServerCertificate, issueUserCertificate, type CertificateResponse } from '../certs/issue-certificates.js';
import { INSTALL_TOKEN_HEADER, installCommand, installRefusalScript, installScript } from '../certs/install-script.js';
import { consumeInstallToken, createInstallToken, installTokenState } from '../certs/install-tokens.js';
import { decodeCursor, page, pageQuery } from './pagination.js';
import { created, ROLES, route, type Principal, type Reply } from './route.js';
import { foldName } from '../../shared/policy/match-pattern.js';

const csrBody = z.strictObject({ csr: z.string().min(1, 'is required').max(16_384) });
/** The install token of a request (INSTALL_TOKEN_HEADER); null when it has none. */
function installTokenOf(req: IncomingMessage): string | null {
  const value = req.headers[INSTALL_TOKEN_HEADER.toLowerCase()];
  return typeof value === 'string' && value !== '' ? value : null;
}
const NO_INSTALL_TOKEN = `the request carries no install token (${INSTALL_TOKEN_HEADER} header): copy the whole install command from the Console's Certificates page and run it again`;
const dnsName = z.string().max(253).regex(/^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$/, 'must be a DNS name (no wildcards)');
const ipAddress = z.union([z.ipv4(), z.ipv6()], { error: 'must be an IPv4 or IPv6 address' });

type UserPrincipal = Extract<Principal, { kind: 'user' }>;

function asUser(principal: Principal): UserPrincipal {
  if (principal.kind !== 'user') throw consoleErrors.forbidden('not a user session');
  return principal;
}

const seesAll = (p: UserPrincipal): boolean => p.role === 'admin' || p.role === 'auditor';
const sameName = (a: string, b: string): boolean => foldName(a) === foldName(b);

/** A PEM certificate for `Accept: application/x-pem-file` (the install script), JSON otherwise. */
function certificateReply(accept: string | undefined, issued: CertificateResponse): Reply {
  if (accept && /\bapplication\/x-pem-file\b/i.test(accept)) return { status: 201, text: issued.cert, contentType: 'application/x-pem-file' };
  return created(issued);
}

export function certRoutes(ctx: ConsoleContext) {
  const consoleUrl = ctx.config.publicUrl.replace(/\/+$/, '');
  const caFingerprint = new X509Certificate(ctx.ca.certPem).fingerprint256;
  return [
    route({
      method: 'GET', path: '/api/v1/ca', tag: 'certificates', access: 'public',
      summary: "The Console CA certificate (PEM) and its SHA-256 fingerprint: what Defenders and the docker CLI trust",
      handler: () => ({ pem: ctx.ca.certPem, fingerprintSha256: caFingerprint }),
    }),
    route({
      method: 'POST', path: '/api/v1/certs', tag: 'certificates', access: ROLES,
      summary: 'Issue a client certificate for yourself from a CSR (ECDSA P-256): CN = your user name, one OU per group, whatever the CSR says; valid until the earlier of --cert-max-lifetime and your session\'s end',
      body: csrBody,
      async handler({ principal, body }) {
        const me = asUser(principal);
        return created(await issueUserCertificate(ctx, { user: me.name, groups: me.groups }, body.csr, { sessionHash: me.sessionHash, sessionExpiresAt: me.sessionExpiresAt }));
      },
    }),
    route({
      method: 'GET', path: '/api/v1/certs', tag: 'certificates', access: ROLES,
      summary: 'List certificates, newest first (paginated): yours, or everyone\'s for admins and auditors (filter by ?user= or ?kind=)',
      query: pageQuery.extend({ user: userName.optional(), kind: z.enum(['user', 'defender', 'defender-server', 'console']).optional() }),
      handler({ principal, query }) {
        const me = asUser(principal);
        if (!seesAll(me) && query.user !== undefined && !sameName(query.user, me.name)) throw consoleErrors.forbidden("you may list only your own certificates");
        const filter = seesAll(me) ? { user: query.user, kind: query.kind } : { user: me.name, kind: undefined };
        return page(listCertificates(ctx.db, filter, query.limit, decodeCursor(query.cursor)), query.limit, pageKey);
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/certs/{serial}', tag: 'certificates', access: ROLES,
      summary: 'Revoke a certificate (admins: any; everyone else: their own user certificates); answers the certificate as it is now',
      handler({ principal, params }) {
        const me = asUser(principal);
        const serial = normaliseSerial(params.serial!);
        const cert = getCertificate(ctx.db, serial);
        const own = cert !== null && cert.kind === 'user' && sameName(cert.subject, me.name);
        if (!cert || (!own && !seesAll(me))) throw consoleErrors.not_found(`no certificate with serial ${serial}`);
        if (!own && me.role !== 'admin') throw consoleErrors.forbidden('only admins revoke other users\' certificates');
        // It would change nothing (the Console keeps serving it) while looking as if it did.
        if (cert.kind === 'console') throw consoleErrors.conflict("the Console's own TLS certificate is not revoked here; it is renewed at start");
        const revoked = revokeCertificate(ctx, serial)!;
        if (cert.revokedAt === null) ctx.log.info('revoked a certificate', { by: me.name, serial, subject: cert.subject });
        return revoked;
      },
    }),
    route({
      method: 'POST', path: '/api/v1/users/{name}/revoke-certs', tag: 'certificates', access: ['admin'],
      summary: "Revoke all of a user's unexpired certificates and end their logins (API sessions, the companion's OAuth logins), so nothing renews them",
      handler({ principal, params }) {
        const name = params.name!;
        if (!ctx.users.get(name) && !hasUserCertificates(ctx.db, name)) throw consoleErrors.not_found(`no user named '${name}' and no certificates for that name`);
        // A login left running would renew the certificates at once (the companion's agent does): end it too.
        endLogins(ctx, name);
        const serials = revokeUserCertificates(ctx, name);
        if (serials.length) ctx.log.info('revoked a user\'s certificates', { by: asUser(principal).name, user: name, count: serials.length });
        return { revoked: serials.length, serials };
      },
    }),
    route({
      method: 'POST', path: '/api/v1/certs/install-command', tag: 'certificates', access: ROLES,
      summary: 'A one-time `curl … | sh` command that installs ca.pem, cert.pem and key.pem for you in ~/.docker (key generated on your machine); single use, expires after --install-token-ttl or with your session',
      handler({ principal }) {
        const me = asUser(principal);
        const { token, expiresAt } = createInstallToken(ctx.db, { userName: me.name, sessionHash: me.sessionHash, sessionExpiresAt: me.sessionExpiresAt }, ctx.config.installTokenTtl);
        return created({ command: installCommand(`${consoleUrl}/api/v1/certs/install.sh`, ctx.tlsPin, token), expiresAt });
      },
    }),
    route({
      method: 'GET', path: '/api/v1/certs/install.sh', tag: 'certificates', access: 'public',
      summary: 'The install script for a one-time token (fetching it does not use the token up; a refused token gets a script that says why and exits 1)',
      handler({ req }): Reply {
        const token = installTokenOf(req);
        const state = token === null ? null : installTokenState(ctx.db, token);
        const text = state?.ok
          ? installScript({ consoleUrl, pin: ctx.tlsPin, token: token!, user: state.grant.userName, caPem: ctx.ca.certPem })
          : installRefusalScript(state === null ? NO_INSTALL_TOKEN : state.error.message);
        return { status: 200, text, contentType: 'text/x-shellscript; charset=utf-8' };
      },
    }),
    route({
      method: 'POST', path: '/api/v1/certs/install', tag: 'certificates', access: 'public',
      summary: "Use a one-time install token: issue the token user's certificate from a CSR (JSON, or PEM with Accept: application/x-pem-file); unknown token → 401, used or expired → 410",
      body: csrBody,
      async handler({ body, req }) {
        const token = installTokenOf(req);
        if (token === null) throw consoleErrors.unauthenticated(NO_INSTALL_TOKEN);
        const state = installTokenState(ctx.db, token);
        if (!state.ok) throw state.error;
        // A bad CSR must not burn the token: check it before using the token up.
        checkCsr(body.csr);
        const grant = consumeInstallToken(ctx.db, token);
        const user = ctx.users.get(grant.userName);
        if (!user || user.disabled) throw consoleErrors.gone('the user of this install command no longer exists or is disabled');
        const issued = await issueUserCertificate(ctx, { user: user.name, groups: user.groups }, body.csr, grant);
        return certificateReply(req.headers.accept, issued);
      },
    }),
    route({
      method: 'POST', path: '/api/v1/certs/server', tag: 'certificates', access: ['admin'],
      summary: 'Issue a TLS server certificate (serverAuth) from a CSR, for operators who run a Defender by hand (registered as kind "defender-server", which never authenticates to the Console)',
      body: z.strictObject({
        csr: csrBody.shape.csr,
        dnsNames: z.array(dnsName).max(100).default([]),
        ips: z.array(ipAddress).max(100).default([]),
        days: z.number().int().min(1).max(825).default(365),
      }),
      async handler({ principal, body }) {
        return created(await issueServerCertificate(ctx, body.csr, { dnsNames: body.dnsNames, ips: body.ips }, body.days, asUser(principal).name));
      },
    }),
  ];
}

