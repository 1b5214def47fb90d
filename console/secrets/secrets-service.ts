/**
 * The Console's secrets, assembled: stores, the built-in store, secret rules, the sealed value cache and the
 * sync. The API routes and the policy snapshot use this one object.
 *
 * - A rule created or changed has its values fetched first, then the rule is committed (one policy version
 *   carries both); fetch failures do not block the rule: they are answered with it and shown in the status.
 * - Deleting a rule prunes the values no other rule needs, in the same policy version.
 */
import type { SecretRule } from '../../shared/secrets/secret-rules.js';
import type { ConsoleLog } from '../context.js';
import type { MasterKey } from '../crypto/master-key.js';
import type { Db } from '../db/database.js';
import type { PolicyClock } from '../policy/policy-clock.js';
import { BuiltinSecrets } from './builtin-store.js';
import { SecretRuleStore } from './secret-rule-store.js';
import { SecretSync, type SyncReport } from './secret-sync.js';
import { SecretValues, type ValueRef } from './secret-values.js';
import { SecretStoreRegistry } from './store-registry.js';
import { createProvider, type SecretProvider } from './stores/secret-provider.js';

export class SecretsService {
  readonly stores: SecretStoreRegistry;
  readonly builtin: BuiltinSecrets;
  readonly rules: SecretRuleStore;
  readonly values: SecretValues;
  readonly sync: SecretSync;

  constructor(
    private readonly db: Db,
    masterKey: MasterKey,
    clock: PolicyClock,
    log: ConsoleLog,
  ) {
    this.stores = new SecretStoreRegistry(db, masterKey);
    this.builtin = new BuiltinSecrets(db, masterKey);
    this.rules = new SecretRuleStore(db, clock, (name) => this.stores.exists(name));
    this.values = new SecretValues(db, masterKey);
    this.sync = new SecretSync({ values: this.values, wanted: () => this.wanted(), providerFor: (store) => this.providerFor(store), clock, log });
  }

  providerFor(store: string): SecretProvider {
    const config = this.stores.config(store);
    return config.kind === 'builtin' ? this.builtin.provider(this.stores.get(store).name) : createProvider(config);
  }

  /** Every secret the rules name. */
  wanted(): ValueRef[] {
    return this.rules.list().flatMap((r) => r.secrets);
  }

  /** Validates, fetches the rule's values, then adds the rule (one policy version). */
  async createRule(input: unknown, position?: number): Promise<{ rule: SecretRule; version: number; sync: SyncReport }> {
    const rule = this.rules.validate(input);
    const sync = await this.sync.fetch(rule.secrets);
    const version = this.db.transaction(() => this.rules.insert(this.rules.validate(rule), position))();
    return { rule, version, sync };
  }

  async replaceRule(name: string, input: unknown): Promise<{ rule: SecretRule; version: number; sync: SyncReport }> {
    const rule = this.rules.validate(input, name);
    const sync = await this.sync.fetch(rule.secrets);
    const version = this.db.transaction(() => {
      const v = this.rules.update(name, this.rules.validate(rule, name));
      this.values.prune(this.wanted());
      return v;
    })();
    return { rule, version, sync };
  }

  deleteRule(name: string): number {
    return this.db.transaction(() => {
      const v = this.rules.delete(name);
      this.values.prune(this.wanted());
      return v;
    })();
  }
}
