/**
 * What a Defender enforces, read from the database and encoded once per policy version.
 *
 * - Rules, revocations, listeners and the version are read in one transaction, so a snapshot never pairs a
 *   version with rules or revocations from another.
 * - The shared part (rules, revoked serials) is serialised once per version; each distinct listener adds one
 *   encoded line, reused by every Defender that has the same listener. Hundreds of Defenders cost a handful of
 *   encodings, not hundreds.
 * - Lines are NDJSON `PolicyStreamLine`s (shared/wire/defender-console.ts).
 */
import type { AccessRule } from '../../shared/policy/access-rules.js';
import type { PolicyStreamLine } from '../../shared/wire/defender-console.js';
import { revokedSerials } from '../certs/certificate-register.js';
import type { ConsoleContext } from '../context.js';
import { RuleStore } from '../rules/rule-store.js';
import { DefenderStore } from './defender-store.js';

/** The rules in evaluation order (the implied default deny-all is the Defender's engine's own fallback). */
function orderedRules(ctx: ConsoleContext): AccessRule[] {
  return new RuleStore(ctx.db, ctx.policy).list();
}

/** Serials of revoked, unexpired certificates (lowercase hex). */
function currentRevokedSerials(ctx: ConsoleContext): string[] {
  return revokedSerials(ctx.db);
}

export class EncodedPolicy {
  private readonly lines = new Map<string, Buffer>();
  readonly revoked: ReadonlySet<string>;

  private constructor(
    readonly version: number,
    /** `{"type":"snapshot","snapshot":{"version":…,"issuedAt":…,"rules":…,"revokedSerials":…,"listener":` */
    private readonly prefix: string,
    revoked: readonly string[],
    /** Wanted listener (JSON text) per lower-case host name, as of this version. */
    readonly listeners: ReadonlyMap<string, string>,
  ) {
    this.revoked = new Set(revoked);
  }

  static read(ctx: ConsoleContext): EncodedPolicy {
    const defenders = new DefenderStore(ctx.db, ctx.policy);
    return ctx.db.transaction(() => {
      const version = ctx.policy.current();
      const rules = orderedRules(ctx).map((r) => ({ name: r.name, effect: r.effect, users: r.users, groups: r.groups, hosts: r.hosts, actions: r.actions }));
      const revoked = currentRevokedSerials(ctx);
      const head = JSON.stringify({ version, issuedAt: new Date().toISOString(), rules, revokedSerials: revoked });
      return new EncodedPolicy(version, `{"type":"snapshot","snapshot":${head.slice(0, -1)},"listener":`, revoked, defenders.listenerJsonByHost());
    })();
  }

  /** The snapshot line for a Defender with this listener (JSON text as stored). */
  snapshotLine(listenerJson: string): Buffer {
    let line = this.lines.get(listenerJson);
    if (!line) {
      line = Buffer.from(`${this.prefix}${listenerJson}}}\n`);
      this.lines.set(listenerJson, line);
    }
    return line;
  }

  heartbeatLine(): Buffer {
    return encodeLine({ type: 'heartbeat', version: this.version });
  }
}

export function encodeLine(line: PolicyStreamLine): Buffer {
  return Buffer.from(`${JSON.stringify(line)}\n`);
}
