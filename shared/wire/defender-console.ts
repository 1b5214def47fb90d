/**
 * The wire contract between the Console and its Defenders (both sides import these schemas; nothing else
 * defines these shapes).
 *
 * Enrolment (public endpoint, authorised by a join token):
 *   POST /api/v1/defenders/enroll   EnrollRequest → EnrollResponse
 *     The Defender generates both keys itself and sends CSRs; the Console returns its server certificate
 *     (serverAuth, SANs = hostName + addresses) and its client certificate (CN = hostName, O = Drawbridge
 *     Defender), plus the CA that also signs user certificates.
 * Everything else with the Defender's client certificate (mTLS) on the Console's HTTPS port:
 *   POST /api/v1/defenders/renew            RenewRequest → RenewResponse: new certificates for new keys, before
 *        the current ones expire. Same profiles as enrolment; the subject and the server certificate's SANs come
 *        from the Console's record, never from the CSRs.
 *   GET  /api/v1/defenders/policy?since=N   long-lived NDJSON stream of PolicyStreamLine: a snapshot at once when
 *        the Console's version is newer than N, then one per change, and a heartbeat every 15 s.
 *   POST /api/v1/defenders/heartbeat         DefenderStatus → 204 (what the Defender runs and enforces)
 *   POST /api/v1/defenders/audit             AuditBatch → AuditAck; idempotent by (defender, seq), so a batch
 *        resent after a lost answer is stored once.
 */
import { z } from 'zod';
import { ACTIONS } from '../docker/route-table.js';
import { secretRef, secretRuleSchema } from '../secrets/secret-rules.js';

const pem = (label: string) => z.string().max(16_384).regex(new RegExp(`-----BEGIN ${label}-----`), `must be a PEM ${label}`);

export const hostName = z
  .string()
  .trim()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/, 'must be a host name: letters, digits, dots and dashes');

export const listenerConfig = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('tcp'), address: z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/, 'must be HOST:PORT') }),
  z.strictObject({ type: z.literal('unix'), path: z.string().regex(/^\/[^\0-\x1f\x7f]{1,106}$/, 'must be an absolute socket path (at most 107 bytes, no control characters)') }),
]);
export type ListenerConfig = z.infer<typeof listenerConfig>;

export const enrollRequest = z.strictObject({
  joinToken: z.string().min(10).max(200),
  hostName,
  /** Extra DNS names / IPs users reach this Defender by (its server certificate's SANs). */
  addresses: z.array(z.string().trim().min(1).max(253)).max(32).default([]),
  version: z.string().max(64),
  serverCsr: pem('CERTIFICATE REQUEST'),
  clientCsr: pem('CERTIFICATE REQUEST'),
  listener: listenerConfig,
});
export type EnrollRequest = z.input<typeof enrollRequest>;

/** What enrolment and renewal both hand out: the host's two new certificates and the CA. */
const issuedCertificates = z.strictObject({
  hostName,
  ca: pem('CERTIFICATE'),
  serverCert: pem('CERTIFICATE'),
  clientCert: pem('CERTIFICATE'),
});

export const enrollResponse = issuedCertificates.extend({
  /** The listener the Console wants (the one requested unless an admin set another before). */
  listener: listenerConfig,
});
export type EnrollResponse = z.infer<typeof enrollResponse>;

export const renewRequest = z.strictObject({
  serverCsr: pem('CERTIFICATE REQUEST'),
  clientCsr: pem('CERTIFICATE REQUEST'),
});
export type RenewRequest = z.infer<typeof renewRequest>;

export const renewResponse = issuedCertificates;
export type RenewResponse = z.infer<typeof renewResponse>;

const accessRuleWire = z.strictObject({
  name: z.string(),
  effect: z.enum(['allow', 'deny']),
  users: z.array(z.string()),
  groups: z.array(z.string()),
  hosts: z.array(z.string()),
  actions: z.array(z.string()),
});

/** One secret's current value, by (store, path, key). */
export const secretValue = z.strictObject({
  store: secretRef.shape.store,
  path: secretRef.shape.path,
  key: secretRef.shape.key,
  value: z.string().max(1024 * 1024),
});
export type SecretValue = z.infer<typeof secretValue>;

export const policySnapshot = z.strictObject({
  version: z.number().int().positive(),
  issuedAt: z.string(),
  /** All rules in order (the Defender matches `hosts` against its own host name with the shared engine). */
  rules: z.array(accessRuleWire),
  /** Serials (lowercase hex) of revoked certificates, until a day after they expired (a Defender's clock may be behind). */
  revokedSerials: z.array(z.string().regex(/^[0-9a-f]+$/)),
  listener: listenerConfig,
  /**
   * The secret rules whose hosts match this Defender, in order, and the values they need: only those, never
   * another host's. Values travel inside the mTLS channel and are kept encrypted at rest on both ends.
   */
  secrets: z
    .strictObject({
      rules: z.array(secretRuleSchema),
      values: z.array(secretValue),
    })
    .default({ rules: [], values: [] }),
});
export type PolicySnapshot = z.infer<typeof policySnapshot>;

export const policyStreamLine = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('snapshot'), snapshot: policySnapshot }),
  z.strictObject({ type: z.literal('heartbeat'), version: z.number().int().positive() }),
]);
export type PolicyStreamLine = z.infer<typeof policyStreamLine>;

export const defenderStatus = z.strictObject({
  version: z.string().max(64),
  policyVersion: z.number().int().min(0),
  listener: listenerConfig,
  /** Audit events waiting in the Defender's spool. */
  auditBacklog: z.number().int().min(0),
});
export type DefenderStatus = z.infer<typeof defenderStatus>;

export const auditEventWire = z.strictObject({
  /** 1, 2, 3… per Defender; the Console refuses one far beyond the highest it holds for the enrolment (audit-store.ts). */
  seq: z.number().int().positive(),
  time: z.string().max(40),
  user: z.string().max(256).nullable(),
  groups: z.array(z.string().max(256)).max(256),
  host: z.string().max(253),
  action: z.string().refine((a) => ACTIONS.includes(a), 'unknown action'),
  method: z.string().max(16),
  path: z.string().max(8192),
  decision: z.enum(['allow', 'deny', 'reject']),
  rule: z.string().max(200).nullable(),
  status: z.number().int().nullable(),
  client: z.string().max(128).nullable(),
  reason: z.string().max(1024).optional(),
  /** Requests that injected secrets or were decided by secret rules: the rule and secret names, never a value. */
  secrets: z
    .strictObject({
      rules: z.array(z.string().max(100)).max(100),
      names: z.array(z.string().max(128)).max(1000),
    })
    .optional(),
});
export type AuditEventWire = z.infer<typeof auditEventWire>;

export const auditBatch = z.strictObject({ events: z.array(auditEventWire).min(1).max(1000) });
/**
 * The most a Defender puts in one audit batch, as JSON text: the Console refuses request bodies over 1 MiB, and one
 * event at the contract's limits (256 groups of 256 characters, an 8 KiB path, 1000 secret names…) stays well under
 * this, so a batch always holds at least one whole event.
 */
export const AUDIT_BATCH_MAX_BYTES = 512 * 1024;
export type AuditBatch = z.infer<typeof auditBatch>;

export const auditAck = z.strictObject({
  /** How many events of the batch were new (the rest were already stored). */
  stored: z.number().int().min(0),
  /** The highest seq the Console holds for this Defender's enrolment; the Defender drops its spool up to here. */
  ackedSeq: z.number().int().min(0),
});
export type AuditAck = z.infer<typeof auditAck>;
