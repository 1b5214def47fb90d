/**
 * Issuing certificates from CSRs.
 *
 * - User certificates: subject from the authenticated identity (CN = user, one OU per current group), whatever the
 *   CSR says; clientAuth only; lifetime = min(--cert-max-lifetime, what is left of the login session). A
 *   certificate therefore never outlives the session that obtained it, however it was obtained.
 * - Server certificates (Defenders run by hand): serverAuth only, the names the admin gives.
 * - A CSR must be ECDSA P-256 with a valid self-signature (ECDSA with SHA-256); otherwise 400 naming `body.csr`.
 */
import type { Identity } from '../../shared/identity/certificate-identity.js';
import { readCsrKey, type IssuedCertificate } from '../ca/console-ca.js';
import type { ConsoleContext } from '../context.js';
import { DEFENDER_SERVER_KIND } from '../defenders/defender-store.js';
import { consoleErrors, FieldError } from '../errors.js';

/**
 * The CA reads the clock again after parsing the CSR; this margin keeps notAfter at or before the session's end
 * even then (X.509 times have whole seconds anyway).
 */
const SESSION_MARGIN_MS = 2000;
const DAY_MS = 24 * 3600_000;

export interface CertificateResponse {
  readonly serial: string;
  readonly cert: string;
  readonly ca: string;
  readonly notAfter: string;
}

export interface SessionBound {
  readonly sessionHash: string;
  readonly sessionExpiresAt: string;
}

/** Checks the CSR without issuing (400 naming `body.csr` when it is not acceptable). */
export function checkCsr(csr: string): void {
  try {
    readCsrKey(csr);
  } catch (e) {
    throw new FieldError('body.csr', (e as Error).message);
  }
}

/** Re-labels the CA's `csr` field error with the request field it came from. */
async function withCsrField<T>(issue: () => Promise<T>): Promise<T> {
  try {
    return await issue();
  } catch (e) {
    if (e instanceof FieldError && e.field === 'csr') throw new FieldError('body.csr', e.message.replace(/^csr: /, ''));
    throw e;
  }
}

export function userCertificateLifetimeMs(ctx: ConsoleContext, sessionExpiresAt: string): number {
  const left = Date.parse(sessionExpiresAt) - Date.now() - SESSION_MARGIN_MS;
  if (left < 1000) throw consoleErrors.unauthenticated('your session is about to expire; log in again to get a certificate');
  return Math.min(ctx.config.certMaxLifetime * 1000, left);
}

export async function issueUserCertificate(ctx: ConsoleContext, identity: Identity, csr: string, session: SessionBound): Promise<CertificateResponse> {
  const lifetimeMs = userCertificateLifetimeMs(ctx, session.sessionExpiresAt);
  const issued = await withCsrField(() => ctx.ca.issueFromCsr(csr, { kind: 'client', identity }, lifetimeMs, { kind: 'user', sessionHash: session.sessionHash }));
  ctx.log.info('issued a user certificate', { user: identity.user, groups: identity.groups.join(',') || '-', serial: issued.serial, notAfter: issued.notAfter });
  return response(ctx, issued);
}

export async function issueServerCertificate(ctx: ConsoleContext, csr: string, names: { dnsNames: readonly string[]; ips: readonly string[] }, days: number, by: string): Promise<CertificateResponse> {
  if (names.dnsNames.length + names.ips.length === 0) throw new FieldError('body.dnsNames', 'give at least one DNS name or IP address (dnsNames or ips)');
  // Registered like an enrolled Defender's server certificate: a kind that never authenticates to the Console.
  const issued = await withCsrField(() => ctx.ca.issueFromCsr(csr, { kind: 'server', ...names }, days * DAY_MS, { kind: DEFENDER_SERVER_KIND }));
  ctx.log.info('issued a server certificate', { by, names: [...names.dnsNames, ...names.ips].join(','), serial: issued.serial, notAfter: issued.notAfter });
  return response(ctx, issued);
}

function response(ctx: ConsoleContext, issued: IssuedCertificate): CertificateResponse {
  return { serial: issued.serial.toLowerCase(), cert: issued.certPem, ca: ctx.ca.certPem, notAfter: issued.notAfter };
}
