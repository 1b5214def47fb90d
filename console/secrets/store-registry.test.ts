// The store registry on a real (in-memory) SQLite database with the real migrations: an update that keeps stored
// credentials may not change where they are sent, for every store kind (one row per destination field).
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { masterKeyFromBytes } from '../crypto/master-key.js';
import { migrate } from '../db/database.js';
import { FieldError } from '../errors.js';
import { SecretStoreRegistry } from './store-registry.js';

const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----';
const KEY = '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----';
const aws = { region: 'eu-west-1', endpoint: 'https://sm.example.test', accessKeyId: 'AKIA1', secretAccessKey: 'aws-secret', sessionToken: 'aws-session' };

/** kind, a destination field and a new value for it, a configuration with credentials, an update without (some of) them. */
const CASES: [string, string, unknown, Record<string, unknown>, Record<string, unknown>][] = [
  ['vault', 'address', 'https://evil.test', { address: 'https://vault.example.test', auth: { method: 'token', token: 't' } }, { address: 'https://vault.example.test', auth: { method: 'token' } }],
  ['vault', 'address', 'https://evil.test', { address: 'https://vault.example.test', auth: { method: 'approle', roleId: 'r', secretId: 's' } }, { address: 'https://vault.example.test', auth: { method: 'approle', roleId: 'r' } }],
  ['vault', 'caPem', CERT, { address: 'https://vault.example.test', auth: { method: 'token', token: 't' } }, { address: 'https://vault.example.test', auth: { method: 'token', token: '<set>' } }],
  ['aws-secrets-manager', 'endpoint', 'https://evil.test', aws, { ...aws, secretAccessKey: undefined, sessionToken: undefined }],
  ['aws-ssm', 'endpoint', 'https://evil.test', aws, { ...aws, secretAccessKey: undefined, sessionToken: undefined }],
  ['aws-ssm', 'endpoint', 'https://evil.test', aws, { ...aws, secretAccessKey: 'aws-secret-2', sessionToken: undefined }],
  ['azure-key-vault', 'authorityHost', 'https://evil.test', { vaultUrl: 'https://v.vault.azure.net', tenantId: 't', clientId: 'c', clientSecret: 's' }, { vaultUrl: 'https://v.vault.azure.net', tenantId: 't', clientId: 'c' }],
  ['azure-key-vault', 'vaultUrl', 'https://evil.test', { vaultUrl: 'https://v.vault.azure.net', tenantId: 't', clientId: 'c', clientSecret: 's' }, { vaultUrl: 'https://v.vault.azure.net', tenantId: 't', clientId: 'c' }],
  ['azure-key-vault', 'disableChallengeResourceVerification', true, { vaultUrl: 'https://v.vault.azure.net', tenantId: 't', clientId: 'c', clientSecret: 's' }, { vaultUrl: 'https://v.vault.azure.net', tenantId: 't', clientId: 'c' }],
  ['gcp-secret-manager', 'tokenUrl', 'https://evil.test/token', { projectId: 'p', clientEmail: 'sa@p.iam.gserviceaccount.com', privateKey: KEY }, { projectId: 'p', clientEmail: 'sa@p.iam.gserviceaccount.com' }],
  ['gcp-secret-manager', 'apiEndpoint', 'https://evil.test', { projectId: 'p', clientEmail: 'sa@p.iam.gserviceaccount.com', privateKey: KEY }, { projectId: 'p', clientEmail: 'sa@p.iam.gserviceaccount.com' }],
  ['cyberark', 'url', 'https://evil.test', { url: 'https://ccp.example.test', appId: 'a', clientCertPem: CERT, clientKeyPem: KEY }, { url: 'https://ccp.example.test', appId: 'a', clientCertPem: CERT }],
];

/** What an update gives: its fields but those left out or sent back as "<set>". */
function given(update: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(update).filter(([, v]) => v !== undefined && typeof v !== 'object'));
}

let registry: SecretStoreRegistry;

beforeEach(() => {
  const db = new Database(':memory:');
  migrate(db);
  registry = new SecretStoreRegistry(db, masterKeyFromBytes(randomBytes(32)));
});

describe('an update that keeps stored credentials', () => {
  it.each(CASES)('%s: may not change %s', (kind, field, value, full, withoutCredentials) => {
    registry.create('s1', kind, full);
    const before = registry.config('s1');
    let error: unknown;
    try {
      registry.update('s1', { ...withoutCredentials, [field]: value });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FieldError);
    expect((error as FieldError).field).toBe(`body.config.${field}`);
    expect(registry.config('s1')).toEqual(before);
  });

  it.each(CASES)('%s: keeps them when %s stays, and takes a new one with them given again', (kind, field, value, full, withoutCredentials) => {
    registry.create('s1', kind, full);
    registry.update('s1', withoutCredentials);
    expect(registry.config('s1')).toMatchObject({ kind, ...full, ...given(withoutCredentials) });
    registry.update('s1', { ...full, [field]: value });
    expect(registry.config('s1')).toMatchObject({ ...full, [field]: value });
  });
});
