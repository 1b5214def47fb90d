/**
 * Defenders: join tokens, enrolment, the policy stream, heartbeats, the Defenders list, listener switching; with
 * audit delivery and queries (audit-routes.ts), the `defenders` route group.
 *
 * - Join tokens are admin-only; enrolment is public (the join token is the credential); stream, heartbeat and
 *   audit delivery need a Defender's client certificate; a user's bearer token never reaches them, and a
 *   Defender's certificate never reaches anything else.
 * - The wire shapes are shared/wire/defender-console.ts, imported, never restated.
 * - Renewal (`/defenders/renew`) needs the Defender's current client certificate; the first stream or heartbeat
 *   with the renewed one revokes the one it replaced (defender-store.ts `confirmCertificate`).
 * - `/defenders/policy`, `/heartbeat`, `/audit`, `/renew`, `/enroll` and `/join-tokens` are matched before
 *   `/defenders/{host}`; a Defender with one of those names is still reachable percent-encoded (`%70olicy`).
 */
import { z } from 'zod';
import { defenderStatus, enrollRequest, listenerConfig, renewRequest } from '../../shared/wire/defender-console.js';
import { getCertificate } from '../certs/certificate-register.js';
import { noteAuditTarget } from '../audit/console-audit.js';
import type { ConsoleContext } from '../context.js';
import { DefenderStore, type DefenderRecord } from '../defenders/defender-store.js';
import { enrollDefender } from '../defenders/enroll-defender.js';
import { createJoinTokenBody, JoinTokenStore } from '../defenders/join-tokens.js';
import { PolicyHub } from '../defenders/policy-hub.js';
import { renewDefender } from '../defenders/renew-defender.js';
import { consoleErrors } from '../errors.js';
import { auditRoutes } from './audit-routes.js';
import { decodeCursor, page, pageQuery } from './pagination.js';
import { created, noContent, peerAddress, RAW, route, type Principal, type Role } from './route.js';

const READERS: readonly Role[] = ['admin', 'operator', 'auditor'];
const MANAGERS: readonly Role[] = ['admin', 'operator'];

export interface DefenderView {
  readonly hostName: string;
  readonly address: string | null;
  readonly version: string | null;
  readonly connected: boolean;
  readonly lastSeen: string | null;
  /** The listener the Console wants it to run. */
  readonly listener: DefenderRecord['listener'];
  /** The listener it last reported running (null before its first heartbeat). */
  readonly activeListener: DefenderRecord['activeListener'];
  readonly policyVersion: number;
  readonly enrolledAt: string;
  readonly auditBacklog: number;
  /** Its current certificates (after a renewal, the renewed ones) and when they expire. */
  readonly clientCertSerial: string | null;
  readonly serverCertSerial: string | null;
  readonly certNotAfter: string | null;
}

function defenderOf(principal: Principal): { hostName: string; serial: string } {
  if (principal.kind !== 'defender') throw new Error('route access must be defender');
  return principal;
}

export function defenderRoutes(ctx: ConsoleContext) {
  const tokens = new JoinTokenStore(ctx.db);
  const defenders = new DefenderStore(ctx.db, ctx.policy);
  const hub = new PolicyHub(ctx);
  const view = (d: DefenderRecord): DefenderView => ({
    hostName: d.hostName,
    address: d.address,
    version: d.version,
    connected: hub.isConnected(d.hostName),
    lastSeen: d.lastSeen,
    listener: d.listener,
    activeListener: d.activeListener,
    policyVersion: d.policyVersion,
    enrolledAt: d.enrolledAt,
    auditBacklog: d.auditBacklog,
    clientCertSerial: d.clientCertSerial?.toLowerCase() ?? null,
    serverCertSerial: d.serverCertSerial?.toLowerCase() ?? null,
    certNotAfter: d.clientCertSerial ? (getCertificate(ctx.db, d.clientCertSerial)?.notAfter ?? null) : null,
  });
  const mustGet = (host: string): DefenderRecord => {
    const d = defenders.get(host);
    if (!d) throw consoleErrors.not_found(`no Defender named '${host}'`);
    return d;
  };
  /** A Defender authenticated: if with its renewed certificate for the first time, the replaced one is revoked. */
  const confirmed = (principal: Principal): { hostName: string; serial: string } => {
    const d = defenderOf(principal);
    const revoked = defenders.confirmCertificate(d.hostName, d.serial);
    if (revoked) ctx.log.info('defender uses its renewed certificate; the one it replaced is revoked', { host: d.hostName, serial: d.serial, revoked });
    return d;
  };

  return [
    route({
      method: 'POST', path: '/api/v1/defenders/join-tokens', tag: 'defenders', access: ['admin'],
      summary: 'Create a join token for enrolling a Defender (the token is shown only in this answer)',
      body: createJoinTokenBody,
      handler({ principal, body }) {
        const name = principal.kind === 'user' ? principal.name : '?';
        const t = tokens.create(name, body.ttlSeconds, body.singleUse, body.hostName ?? null);
        ctx.log.info('join token created', { id: t.id, by: name, expiresAt: t.expiresAt, singleUse: t.singleUse, host: t.hostName ?? '*' });
        return created(t);
      },
    }),
    route({
      method: 'GET', path: '/api/v1/defenders/join-tokens', tag: 'defenders', access: ['admin'],
      summary: 'List join tokens, newest first (without their values)', query: pageQuery,
      handler({ query }) {
        return page(tokens.list(query.limit, decodeCursor(query.cursor)), query.limit, (t) => `${t.createdAt} ${t.id}`);
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/defenders/join-tokens/{id}', tag: 'defenders', access: ['admin'],
      summary: 'Delete a join token (it can no longer enrol anything)',
      handler({ params }) {
        if (!tokens.delete(params.id!)) throw consoleErrors.not_found(`no join token with id '${params.id}'`);
        return noContent();
      },
    }),
    route({
      method: 'POST', path: '/api/v1/defenders/enroll', tag: 'defenders', access: 'public',
      summary: "Enrol a Defender with a join token: CSRs in, its server and client certificates and the CA out",
      body: enrollRequest,
      handler({ body, req }) {
        noteAuditTarget(req, { hostName: body.hostName }); // the Console's audit names the host enrolled
        return enrollDefender(ctx, { tokens, defenders }, body, peerAddress(req.socket.remoteAddress));
      },
    }),
    route({
      method: 'POST', path: '/api/v1/defenders/renew', tag: 'defenders', access: 'defender',
      summary: "A Defender renews its certificates with its current client certificate: CSRs for new keys in, new server and client certificates and the CA out",
      body: renewRequest,
      handler({ principal, body }) {
        return renewDefender(ctx, defenders, defenderOf(principal), body);
      },
    }),
    route({
      method: 'GET', path: '/api/v1/defenders/policy', tag: 'defenders', access: 'defender',
      summary: 'The policy stream (NDJSON): a snapshot at once when newer than `since`, one per change, a heartbeat every 15 s',
      query: z.strictObject({ since: z.coerce.number().int().min(0).default(0).describe('the policy version the Defender has (0: none)') }),
      handler({ principal, query, req, res }) {
        hub.open(confirmed(principal), query.since, req, res);
        return RAW;
      },
    }),
    route({
      method: 'POST', path: '/api/v1/defenders/heartbeat', tag: 'defenders', access: 'defender',
      summary: 'A Defender reports what it runs and enforces',
      body: defenderStatus,
      handler({ principal, body }) {
        const { hostName } = confirmed(principal);
        if (!defenders.recordStatus(hostName, body)) throw consoleErrors.not_found(`the Defender '${hostName}' is not registered; enrol it again`);
        return noContent();
      },
    }),
    route({
      method: 'GET', path: '/api/v1/defenders', tag: 'defenders', access: READERS,
      summary: 'Enrolled Defenders by host name (paginated): address, version, connected, last seen, listener, policy version',
      query: pageQuery,
      handler({ query }) {
        return page(defenders.list(query.limit, decodeCursor(query.cursor)).map(view), query.limit, (d) => d.hostName);
      },
    }),
    route({
      method: 'GET', path: '/api/v1/defenders/{host}', tag: 'defenders', access: READERS,
      summary: 'One Defender',
      handler({ params }) {
        return view(mustGet(params.host!));
      },
    }),
    route({
      method: 'DELETE', path: '/api/v1/defenders/{host}', tag: 'defenders', access: ['admin'],
      summary: 'Remove a Defender: its certificates are revoked and its policy stream ends',
      handler({ params }) {
        if (!defenders.delete(params.host!)) throw consoleErrors.not_found(`no Defender named '${params.host}'`);
        ctx.log.info('defender removed', { host: params.host });
        return noContent();
      },
    }),
    route({
      method: 'PUT', path: '/api/v1/defenders/{host}/listener', tag: 'defenders', access: MANAGERS,
      summary: "Switch a Defender's listener (TCP with RBAC, or a local UNIX socket); it applies it without restarting",
      body: listenerConfig,
      handler({ params, body }) {
        const r = defenders.setListener(params.host!, body);
        if (!r) throw consoleErrors.not_found(`no Defender named '${params.host}'`);
        ctx.log.info('defender listener changed', { host: r.defender.hostName, listener: JSON.stringify(body), version: r.version });
        return { ...view(r.defender), version: r.version };
      },
    }),
    ...auditRoutes(ctx),
  ];
}
