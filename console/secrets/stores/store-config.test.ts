import { describe, expect, test } from 'vitest';
import { redactStoreConfig, STORE_CREDENTIAL_FIELDS, STORE_KINDS, storeConfig, storeCredentials, type StoreConfigInput } from './store-config.js';

const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n';

/** One configuration per kind with every credential field set (to a value naming it). */
const FULL: Record<(typeof STORE_KINDS)[number], StoreConfigInput[]> = {
  'vault': [
    { kind: 'vault', address: 'https://vault:8200', auth: { method: 'token', token: 'cred:auth.token' }, caPem: CERT },
    { kind: 'vault', address: 'https://vault:8200', kvVersion: 1, mount: 'kv', namespace: 'team/a', auth: { method: 'approle', roleId: 'role', secretId: 'cred:auth.secretId' } },
  ],
  'aws-secrets-manager': [{ kind: 'aws-secrets-manager', region: 'eu-west-1', accessKeyId: 'AKIA', secretAccessKey: 'cred:secretAccessKey', sessionToken: 'cred:sessionToken' }],
  'aws-ssm': [{ kind: 'aws-ssm', region: 'us-east-1', endpoint: 'https://vpce.example', accessKeyId: 'AKIA', secretAccessKey: 'cred:secretAccessKey', sessionToken: 'cred:sessionToken' }],
  'azure-key-vault': [{ kind: 'azure-key-vault', vaultUrl: 'https://v.vault.azure.net', tenantId: 't', clientId: 'c', clientSecret: 'cred:clientSecret' }],
  'gcp-secret-manager': [{ kind: 'gcp-secret-manager', projectId: 'p', clientEmail: 'sa@p.iam.gserviceaccount.com', privateKey: `${KEY.trimEnd()}\ncred:privateKey` }],
  'cyberark': [{ kind: 'cyberark', url: 'https://ccp', appId: 'app', safe: 'S', clientCertPem: CERT, clientKeyPem: `${KEY.trimEnd()}\ncred:clientKeyPem` }],
};

describe.each(STORE_KINDS)('%s', (kind) => {
  test.each(FULL[kind])('parses; redaction removes exactly the credential fields; storeCredentials returns them', (input) => {
    const config = storeConfig.parse(input);
    const credentials = storeCredentials(config);
    // Every credential present in the input is found, under a listed field.
    const inputText = JSON.stringify(input);
    const expected = (STORE_CREDENTIAL_FIELDS[kind] as readonly string[]).filter((f) => inputText.includes(`cred:${f}`));
    expect(Object.keys(credentials).sort()).toEqual(expected.sort());
    expect(expected.length).toBeGreaterThan(0);
    const redacted = JSON.stringify(redactStoreConfig(config));
    expect(redacted).not.toContain('cred:');
    // Nothing else is lost.
    expect(redacted.length).toBeGreaterThan(JSON.stringify({ kind }).length);
    expect(JSON.stringify(config)).toContain('cred:'); // the original is untouched
  });
});

test.each([
  [{ kind: 'vault', address: 'https://v', auth: { method: 'token', token: 't' }, tokne: 'x' }, 'tokne'],
  [{ kind: 'vault', address: 'ftp://v', auth: { method: 'token', token: 't' } }, 'address'],
  [{ kind: 'vault', address: 'https://v', mount: '/secret/', auth: { method: 'token', token: 't' } }, 'mount'],
  [{ kind: 'aws-ssm', region: 'nowhere', accessKeyId: 'a', secretAccessKey: 's' }, 'region'],
  [{ kind: 'azure-key-vault', vaultUrl: 'http://v', tenantId: 't', clientId: 'c', clientSecret: 's' }, 'vaultUrl'],
  [{ kind: 'gcp-secret-manager', projectId: 'p', clientEmail: 'sa@p.iam.gserviceaccount.com', privateKey: 'not a pem' }, 'privateKey'],
  [{ kind: 'cyberark', url: 'https://ccp', appId: 'a', clientCertPem: CERT }, 'clientKeyPem'],
  [{ kind: 'builtin' }, 'kind'],
])('rejects %j at %s', (input, field) => {
  const result = storeConfig.safeParse(input);
  expect(result.success).toBe(false);
  expect(result.error!.issues.map((i) => i.path.join('.') || (i as { keys?: string[] }).keys?.join('.'))).toContainEqual(expect.stringContaining(field));
});
