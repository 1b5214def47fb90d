/**
 * The Console's own audit trail: who changed what through it, from where, and how it ended.
 *
 * - One entry per API request that can change something (every method but GET and HEAD), whoever sent it and
 *   whatever the answer (a 403 or 401 is recorded too), except Defenders' own calls with their certificate
 *   (heartbeats, audit delivery, renewal: the Defender list and its audit show those); and one per password sign-in
 *   on the companion's sign-in page, where the API's login route is not involved.
 * - What is kept is the route (`PATCH /api/v1/users/{name}`), its path parameters (the user, rule or store acted
 *   on), the status, the actor (the authenticated user; for a sign-in, the name typed) and the peer address. Never a
 *   body: bodies carry passwords and secret values.
 * - Admins and auditors read it newest first (GET /api/v1/console-audit), like the Defenders' audit.
 */
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { pageQuery } from '../api/pagination.js';
import { peerAddress } from '../api/route.js';
import type { RoutedRequest } from '../api/router.js';
import type { Db } from '../db/database.js';
import { nowIso } from '../db/database.js';

export interface ConsoleAuditEntry {
  readonly actor: string | null;
  readonly role: string | null;
  readonly address: string | null;
  readonly method: string;
  /** The route's path template, or `sign-in page`. */
  readonly route: string;
  /** The path parameters ({"name": "eve"}), or the name typed at a sign-in. */
  readonly target: Readonly<Record<string, string>>;
  readonly status: number;
}

export type ConsoleAuditRecord = ConsoleAuditEntry & { readonly id: number; readonly time: string };

interface Row {
  id: number;
  time: string;
  actor: string | null;
  role: string | null;
  address: string | null;
  method: string;
  route: string;
  target_json: string;
  status: number;
}

export const consoleAuditQuery = pageQuery.extend({ actor: z.string().min(1).max(256).optional() });

/** The name a route's request is about but does not carry in its path (the user name sent to the login route). */
const notes = new WeakMap<IncomingMessage, Record<string, string>>();
export function noteAuditTarget(req: IncomingMessage, target: Record<string, string>): void {
  notes.set(req, target);
}

export class ConsoleAuditStore {
  constructor(private readonly db: Db) {}

  /** Records an API request the router answered, unless it is a read or a Defender's own call (see the header). */
  recordRequest(req: IncomingMessage, { route, params, principal }: RoutedRequest, status: number): void {
    if (route.method === 'GET' || route.access === 'defender') return;
    const user = principal.kind === 'user' ? principal : null;
    this.append({
      actor: user?.name ?? null, role: user?.role ?? null, address: peerAddress(req.socket.remoteAddress),
      method: route.method, route: route.path, target: { ...params, ...(notes.get(req) ?? {}) }, status,
    });
  }

  append(e: ConsoleAuditEntry): void {
    this.db
      .prepare('INSERT INTO console_audit (time, actor, role, address, method, route, target_json, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(nowIso(), e.actor, e.role, e.address, e.method, e.route, JSON.stringify(e.target), e.status);
  }

  /** Newest first, `before` an id (the cursor); `actor` case-insensitive. */
  query(actor: string | undefined, limit: number, before: number | null): ConsoleAuditRecord[] {
    const rows = this.db
      .prepare(`SELECT * FROM console_audit WHERE id < ? ${actor === undefined ? '' : 'AND actor = ? COLLATE NOCASE'} ORDER BY id DESC LIMIT ?`)
      .all(...[before ?? Number.MAX_SAFE_INTEGER, ...(actor === undefined ? [] : [actor]), limit]) as Row[];
    return rows.map((r) => ({
      id: r.id, time: r.time, actor: r.actor, role: r.role, address: r.address, method: r.method, route: r.route,
      target: JSON.parse(r.target_json) as Record<string, string>, status: r.status,
    }));
  }
}
