/** Public surface of the external secret store providers (exported from console/index.ts as `secretStores`). */
export { createProvider, DEFAULT_STORE_TIMEOUT_MS, StoreError, type ProviderOptions, type SecretProvider, type SecretRef, type StoreErrorCode } from './secret-provider.js';
export { redactStoreConfig, STORE_CREDENTIAL_FIELDS, STORE_KINDS, storeConfig, storeCredentials, type StoreConfig, type StoreConfigInput, type StoreConfigOf, type ExternalStoreKind, type StoreKind } from './store-config.js';
