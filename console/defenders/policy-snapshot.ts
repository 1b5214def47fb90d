/**
 * What a Defender enforces, read from the database and encoded once per policy version.
 *
 * - Rules, revocations, listeners and the version are read in one transaction, so a snapshot never pairs a
 *   version with rules or revocations from another.
 * - The shared part (rules, revoked serials) is serialised once per version; each distinct listener adds one
 *   encoded line, reused by every Defender that has the same listener. Hundreds of Defenders cost a handful of
 *   encodings, not hundreds.
 * - Secrets are per host: a Defender gets the secret rules whose `hosts` match its name and the values those
 *   rules need, never another host's. Their encoding is shared by every host that matches the same rules. The
 *   values are read (unsealed) once per version and held only while some Defender is connected.
 * - Lines are NDJSON `PolicyStreamLine`s (shared/wire/defender-console.ts).
 */
import type { AccessRule } from '../../shared/policy/access-rules.js';
import { matchPatternList } from '../../shared/policy/match-pattern.js';
import { compileSecretRules, secretRefKey, type CompiledSecretRule } from '../../shared/secrets/secret-rules.js';
import type { PolicyStreamLine, SecretValue } from '../../shared/wire/defender-console.js';
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
  private readonly secretSections = new Map<string, string>();
  readonly revoked: ReadonlySet<string>;

  private constructor(
    readonly version: number,
    /** `{"type":"snapshot","snapshot":{"version":…,"issuedAt":…,"rules":…,"revokedSerials":…,"listener":` */
    private readonly prefix: string,
    revoked: readonly string[],
    /** Wanted listener (JSON text) per lower-case host name, as of this version. */
    readonly listeners: ReadonlyMap<string, string>,
    private readonly secretRules: readonly CompiledSecretRule[],
    private readonly secretValues: ReadonlyMap<string, string>,
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
      const secretRules = ctx.secrets.rules.list();
      const values = ctx.secrets.values.read(secretRules.flatMap((r) => r.secrets));
      return new EncodedPolicy(version, `{"type":"snapshot","snapshot":${head.slice(0, -1)},"listener":`, revoked, defenders.listenerJsonByHost(), compileSecretRules(secretRules), values);
    })();
  }

  /** The snapshot line for the Defender `hostName` with this listener (JSON text as stored). */
  snapshotLine(hostName: string, listenerJson: string): Buffer {
    const matching = this.secretRules.flatMap((c, i) => (matchPatternList(c.hosts, [hostName]) !== null ? [i] : []));
    const key = `${matching.join(',')}|${listenerJson}`;
    let line = this.lines.get(key);
    if (!line) {
      line = Buffer.from(`${this.prefix}${listenerJson},"secrets":${this.secretsSection(matching)}}}\n`);
      this.lines.set(key, line);
    }
    return line;
  }

  /** `{"rules":[…],"values":[…]}` for these secret rules (by index): the values they need that the Console holds. */
  private secretsSection(indexes: readonly number[]): string {
    const key = indexes.join(',');
    let json = this.secretSections.get(key);
    if (json === undefined) {
      const rules = indexes.map((i) => this.secretRules[i]!.rule);
      const values = new Map<string, SecretValue>();
      for (const ref of rules.flatMap((r) => r.secrets)) {
        const k = secretRefKey(ref);
        const value = this.secretValues.get(k);
        if (value !== undefined && !values.has(k)) values.set(k, { store: ref.store, path: ref.path, ...(ref.key !== undefined ? { key: ref.key } : {}), value });
      }
      json = JSON.stringify({ rules, values: [...values.values()] });
      this.secretSections.set(key, json);
    }
    return json;
  }

  heartbeatLine(): Buffer {
    return encodeLine({ type: 'heartbeat', version: this.version });
  }
}

export function encodeLine(line: PolicyStreamLine): Buffer {
  return Buffer.from(`${JSON.stringify(line)}\n`);
}
