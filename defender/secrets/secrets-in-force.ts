/**
 * The secret rules and values a Console-managed Defender injects from: those of the applied policy snapshot (so
 * also of the encrypted cache after a restart without the Console). A file-mode Defender has none.
 *
 * - Swapped whole with the snapshot; `apply` says whether anything that reaches containers changed (rules or
 *   values), so running containers' files are rewritten only then.
 * - Values stay in this process's memory; nothing here logs or serialises them.
 */
import { valueMap, type ValueLookup } from '../../shared/secrets/inject-secrets.js';
import { compileSecretRules, type CompiledSecretRule, type SecretRule } from '../../shared/secrets/secret-rules.js';
import type { PolicySnapshot } from '../../shared/wire/defender-console.js';

export class SecretsInForce {
  private state: { rules: readonly SecretRule[]; compiled: readonly CompiledSecretRule[]; values: ValueLookup; fingerprint: string } = {
    rules: [],
    compiled: [],
    values: new Map(),
    fingerprint: '',
  };

  /** Takes the secrets of `snapshot`; true when rules or values differ from those in force. */
  apply(secrets: PolicySnapshot['secrets']): boolean {
    const fingerprint = JSON.stringify(secrets); // compared in memory only, never stored
    if (fingerprint === this.state.fingerprint) return false;
    this.state = { rules: secrets.rules, compiled: compileSecretRules(secrets.rules), values: valueMap(secrets.values), fingerprint };
    return true;
  }

  get rules(): readonly SecretRule[] {
    return this.state.rules;
  }

  get compiled(): readonly CompiledSecretRule[] {
    return this.state.compiled;
  }

  get values(): ValueLookup {
    return this.state.values;
  }
}
