/**
 * Audit: Defenders deliver their events (mTLS, idempotent by seq); admins and auditors query them, and the
 * Console's own audit (console-audit.ts).
 */
import { auditBatch } from '../../shared/wire/defender-console.js';
import { AuditStore, auditQuery } from '../audit/audit-store.js';
import { consoleAuditQuery } from '../audit/console-audit.js';
import type { ConsoleContext } from '../context.js';
import { DefenderStore } from '../defenders/defender-store.js';
import { FieldError } from '../errors.js';
import { decodeCursor, page } from './pagination.js';
import { route, type Principal } from './route.js';

function defenderHost(principal: Principal): string {
  if (principal.kind !== 'defender') throw new Error('route access must be defender');
  return principal.hostName;
}

function cursorId(cursor: string | undefined): number | null {
  const raw = decodeCursor(cursor);
  if (raw === null) return null;
  if (!/^\d{1,15}$/.test(raw)) throw new FieldError('query.cursor', 'is not a cursor this list gave out');
  return Number(raw);
}

export function auditRoutes(ctx: ConsoleContext) {
  const audit = new AuditStore(ctx.db);
  const defenders = new DefenderStore(ctx.db, ctx.policy);
  return [
    route({
      method: 'POST', path: '/api/v1/defenders/audit', tag: 'defenders', access: 'defender',
      summary: "A Defender delivers audit events; a batch sent again stores nothing twice (answers what was new and the highest seq held for its enrolment; a seq far beyond it is refused)",
      body: auditBatch,
      handler({ principal, body }) {
        const host = defenderHost(principal);
        const ack = audit.append(host, body.events);
        defenders.touch(host);
        return ack;
      },
    }),
    route({
      method: 'GET', path: '/api/v1/console-audit', tag: 'audit', access: ['admin', 'auditor'],
      summary: "The Console's own audit, newest first (paginated): every request that can change something (users, rules, secrets, certificates, Defenders…) and every password sign-in, with who, from where, the route, what it named and the status; never a body. Filter by actor",
      query: consoleAuditQuery,
      handler({ query }) {
        const { limit, cursor, actor } = query;
        return page(ctx.consoleAudit.query(actor, limit, cursorId(cursor)), limit, (e) => String(e.id));
      },
    }),
    route({
      method: 'GET', path: '/api/v1/audit', tag: 'audit', access: ['admin', 'auditor'],
      summary: 'Audit events, newest first (paginated); filter by user, host, action, decision and time range [from, to)',
      query: auditQuery,
      handler({ query }) {
        const { limit, cursor, ...filters } = query;
        return page(audit.query(filters, limit, cursorId(cursor)), limit, (e) => String(e.id));
      },
    }),
  ];
}
