/**
 * The decision for one request, the same for ordinary and hijacked requests:
 *
 * - The caller's identity comes from its verified client certificate (read once per connection); a certificate
 *   without a usable identity gets every request refused, with the reason.
 * - The request target is classified by the shared route table (canonicalised as dockerd does); a target dockerd
 *   would not route as-is is rejected with 400 before any rule is consulted.
 * - A revoked certificate (by serial, against the list the Console pushes) gets every request refused, checked on
 *   every request because the list changes while keep-alive connections stay open.
 * - The shared policy engine decides; no rule → the default deny-all rule. No policy at all (a Console-managed
 *   Defender that has not received one yet) → everything denied, saying so: never a fallback to allow.
 * - Exactly one audit line per request, written by `record` once the outcome is final.
 */
import type { TLSSocket } from 'node:tls';
import { classifyRequest, RequestRejected, type Classification } from '../shared/docker/classify-request.js';
import type { DrawbridgeError } from '../shared/errors/drawbridge-error.js';
import { IdentityError, identityFromCertificate, type Identity } from '../shared/identity/certificate-identity.js';
import { denialMessage, explain, type Decision, type Policy } from '../shared/policy/evaluate-policy.js';
import type { AuditLog } from './audit-log.js';
import { defenderErrors } from './errors.js';
import type { IncomingRequest } from './incoming-request.js';
import type { Logger } from './log.js';
import type { DefenderMetrics } from './metrics.js';
import type { AuditSecrets, SecretsGuard } from './secrets/secrets-guard.js';

export interface DefenderContext {
  readonly hostName: string;
  readonly maxBody: number;
  readonly audit: AuditLog;
  readonly metrics: DefenderMetrics;
  readonly log: Logger;
  /** The rules in force; null while a Console-managed Defender has none yet (every request is then denied). */
  policy(): Policy | null;
  /** Whether a client certificate serial (lowercase hex, no leading zeros) is revoked; absent → none is. */
  isRevoked?(serial: string): boolean;
  /** Secret injection, redaction and leak-path checks (console mode); absent → none. */
  readonly secrets?: SecretsGuard;
}

export type Authorization =
  | { readonly ok: true; readonly identity: Identity; readonly classification: Classification; readonly decision: Decision }
  | { readonly ok: false; readonly identity: Identity | null; readonly action: string; readonly decision: Decision | null; readonly error: DrawbridgeError };

/** What the Defender knows about one verified TLS connection. */
interface Peer {
  readonly identity: Identity | IdentityError;
  readonly serial: string | undefined;
  /**
   * Decisions already taken for this connection's identity, by action, under `policy` (the rules in force when they
   * were taken): the same identity, host and action under the same rules always get the same decision, and a new
   * policy object (a reload, a new snapshot) empties the cache. Revocation is checked on every request, not cached.
   */
  policy: Policy | null;
  readonly decisions: Map<string, Decision>;
}

const peers = new WeakMap<TLSSocket, Peer>();

/** A certificate serial as revocation lists compare it: lowercase hex without leading zeros. */
export function normalizeSerial(serial: string): string {
  return serial.replace(/:/g, '').toLowerCase().replace(/^0+(?=.)/, '');
}

const NO_POLICY: Decision = { allowed: false, rule: null, index: null, reason: 'this Defender has no policy yet' };

/**
 * Identities already read, by certificate (DER, base64): parsing one with @peculiar/x509 takes 0.4 ms or more, on
 * every new connection, and the docker CLI opens one per command. The identity is a function of the certificate
 * alone (revocation is checked per request, by serial), so a certificate seen before needs no parsing. Bounded:
 * the oldest entry leaves when the map is full.
 */
const identities = new Map<string, Identity | IdentityError>();
const MAX_IDENTITIES = 1024;

function identityOfCertificate(der: Buffer): Identity | IdentityError {
  const key = der.toString('base64');
  let identity = identities.get(key);
  if (identity !== undefined) return identity;
  try {
    identity = identityFromCertificate(new Uint8Array(der));
  } catch (err) {
    identity = err instanceof IdentityError ? err : new IdentityError('the client certificate could not be read');
  }
  if (identities.size >= MAX_IDENTITIES) identities.delete(identities.keys().next().value!);
  identities.set(key, identity);
  return identity;
}

/** Reads the identity of a freshly verified TLS connection (call on 'secureConnection'). */
export function rememberIdentity(socket: TLSSocket): void {
  let serial: string | undefined;
  let identity: Identity | IdentityError;
  const cert = socket.getPeerX509Certificate();
  if (cert === undefined) identity = new IdentityError('the client certificate could not be read');
  else {
    serial = normalizeSerial(cert.serialNumber);
    identity = identityOfCertificate(cert.raw);
  }
  peers.set(socket, { identity, serial, policy: null, decisions: new Map() });
}

/** The verified identity of a connection, or null when its certificate carries none (for audit lines). */
export function identityOf(socket: TLSSocket): Identity | null {
  const id = peers.get(socket)?.identity;
  return id === undefined || id instanceof IdentityError ? null : id;
}

function decide(peer: Peer, policy: Policy, identity: Identity, host: string, action: string): Decision {
  if (peer.policy !== policy) {
    peer.policy = policy;
    peer.decisions.clear();
  }
  let decision = peer.decisions.get(action);
  if (decision === undefined) {
    decision = explain(policy, identity, host, action);
    peer.decisions.set(action, decision);
  }
  return decision;
}

export function authorizeRequest(ctx: DefenderContext, req: IncomingRequest): Authorization {
  const peer = peers.get(req.socket);
  const id = peer?.identity ?? new IdentityError('the connection has no verified client certificate');
  const serial = peer?.serial;
  if (serial !== undefined && ctx.isRevoked?.(serial)) {
    const error = defenderErrors.revoked('[Drawbridge] your certificate has been revoked; get a new one from the Console');
    let action = 'unknown'; // for the audit line only
    try {
      action = classifyRequest(req.method, req.url).action;
    } catch {
      /* rejected anyway */
    }
    return { ok: false, identity: id instanceof IdentityError ? null : id, action, decision: null, error };
  }
  if (id instanceof IdentityError) {
    return { ok: false, identity: null, action: 'unknown', decision: null, error: defenderErrors.bad_identity(`[Drawbridge] ${id.message}; ask your administrator for a Drawbridge certificate`) };
  }
  let classification: Classification;
  try {
    classification = classifyRequest(req.method, req.url);
  } catch (err) {
    if (err instanceof RequestRejected) {
      return { ok: false, identity: id, action: 'unknown', decision: null, error: defenderErrors.bad_request(`[Drawbridge] ${err.reason}`) };
    }
    throw err;
  }
  const policy = ctx.policy();
  if (policy === null) {
    const error = defenderErrors.denied('[Drawbridge] this Defender has no policy yet (cannot reach the Console)');
    return { ok: false, identity: id, action: classification.action, decision: NO_POLICY, error };
  }
  const decision = decide(peer!, policy, id, ctx.hostName, classification.action); // peer exists: id is not an IdentityError
  if (!decision.allowed) {
    if (classification.action === 'unknown') ctx.log.warn('request to a route Drawbridge does not know was denied', { user: id.user, method: req.method, path: classification.path });
    return { ok: false, identity: id, action: classification.action, decision, error: defenderErrors.denied(denialMessage(classification.action, id.user, decision)) };
  }
  if (classification.action === 'unknown') {
    ctx.log.warn('ALLOWED a request to a route Drawbridge does not know, by an explicit rule on "unknown"', { user: id.user, rule: decision.rule, method: req.method, path: classification.path });
  }
  return { ok: true, identity: id, classification, decision };
}

/** The request path as received, never the query string (it may carry values). */
function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/**
 * The audit line of a request the HTTP parser refused (`culprit`: its head, when that was parsed), with the
 * connection's user even though what was asked cannot be told.
 */
export function recordMalformed(ctx: DefenderContext, socket: TLSSocket, culprit: IncomingRequest | null, reason: string): void {
  const identity = identityOf(socket);
  ctx.audit.write({
    time: new Date().toISOString(), user: identity?.user ?? null, groups: identity?.groups ?? [], host: ctx.hostName, action: 'unknown',
    method: culprit?.method ?? '', path: pathOf(culprit?.url ?? ''), decision: 'reject', rule: null, status: 400,
    client: socket.remoteAddress ?? null, reason,
  });
  ctx.metrics.countRequest('unknown', 'reject');
}

/** Writes the one audit line and counts the request. */
export function record(ctx: DefenderContext, req: IncomingRequest, auth: Authorization, outcome: { status: number | null; error?: DrawbridgeError; secrets?: AuditSecrets }, startedAt: number): void {
  const action = auth.ok ? auth.classification.action : auth.action;
  const decision = outcome.error === undefined ? 'allow' : auth.ok || auth.decision === null ? 'reject' : 'deny';
  const d = auth.ok ? auth.decision : auth.decision;
  const path = pathOf(req.url);
  ctx.audit.write({
    time: new Date().toISOString(),
    user: auth.identity?.user ?? null,
    groups: auth.identity?.groups ?? [],
    host: ctx.hostName,
    action,
    method: req.method,
    path,
    decision,
    rule: d?.rule ?? (decision === 'deny' ? 'default-deny-all' : null),
    status: outcome.status,
    client: req.socket.remoteAddress ?? null,
    ...(decision === 'reject' && outcome.error ? { reason: outcome.error.message.replace(/^\[Drawbridge\] /, '') } : {}),
    ...(outcome.secrets ? { secrets: outcome.secrets } : {}),
  });
  ctx.metrics.countRequest(action, decision);
  ctx.metrics.observeLatency((performance.now() - startedAt) / 1000);
}
