/**
 * The one interface every external secret store implements, and the factory that picks the implementation.
 *
 * - Providers are built from a validated StoreConfig; createProvider validates again, so a caller holding an
 *   unchecked object gets a StoreError('config') naming the field rather than a provider that fails later.
 * - Every call runs under a deadline (`timeoutMs`, 10 s by default) and the caller's optional AbortSignal.
 * - Errors are StoreErrors whose messages are safe to show (no secret values, no credentials).
 */
import { AwsProvider } from './aws-providers.js';
import { AzureKeyVaultProvider } from './azure-key-vault-provider.js';
import { CyberArkProvider } from './cyberark-provider.js';
import { GcpSecretManagerProvider } from './gcp-secret-manager-provider.js';
import { STORE_KINDS, storeConfig, type StoreConfigInput, type StoreKind } from './store-config.js';
import { StoreError } from './store-error.js';
import { VaultProvider } from './vault-provider.js';

export { StoreError, type StoreErrorCode } from './store-error.js';

export interface SecretRef {
  readonly path: string;
  readonly key?: string | undefined;
}

export interface SecretProvider {
  /** The store kind; `builtin` is the Console's own store (console/secrets/builtin-store.ts). */
  readonly kind: StoreKind | 'builtin';
  /** The value of one secret: `path` names the secret in the store; `key` picks one field of a structured secret (Vault KV data, a JSON secret, CyberArk's properties); without `key` a plain value is returned, and a structured one is an error saying which keys exist. */
  fetch(ref: { path: string; key?: string }, signal?: AbortSignal): Promise<string>;
  /** Checks address, credentials and permissions; throws StoreError saying exactly what failed. */
  testConnection(signal?: AbortSignal): Promise<void>;
  close(): void;
}

export interface ProviderOptions {
  /** Deadline of one fetch or testConnection, in milliseconds (default 10 000). */
  timeoutMs?: number;
}

export const DEFAULT_STORE_TIMEOUT_MS = 10_000;

export function createProvider(config: StoreConfigInput, options: ProviderOptions = {}): SecretProvider {
  const parsed = storeConfig.safeParse(config);
  if (!parsed.success) {
    const kind = (typeof config === 'object' && config !== null && (STORE_KINDS as readonly string[]).includes(config.kind) ? config.kind : 'vault') as StoreKind;
    const issue = parsed.error.issues[0]!;
    throw new StoreError('config', kind, `invalid store configuration: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS;
  const c = parsed.data;
  switch (c.kind) {
    case 'vault': return new VaultProvider(c, timeoutMs);
    case 'aws-secrets-manager':
    case 'aws-ssm': return new AwsProvider(c, timeoutMs);
    case 'azure-key-vault': return new AzureKeyVaultProvider(c, timeoutMs);
    case 'gcp-secret-manager': return new GcpSecretManagerProvider(c, timeoutMs);
    case 'cyberark': return new CyberArkProvider(c, timeoutMs);
  }
}
