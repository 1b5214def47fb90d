/**
 * Configuration of the external secret stores (the Console's own `builtin` store is configured elsewhere).
 *
 * - One zod schema per store kind, discriminated on `kind`; unknown fields are rejected, so a typo in a field
 *   name is an error rather than a silently ignored setting.
 * - Every field that is a credential is listed in STORE_CREDENTIAL_FIELDS: the Console encrypts those at rest and
 *   never returns them from its API (redactStoreConfig). Identifiers (access key id, client id, role id) are not
 *   credentials; they are shown so an operator can tell which identity a store uses.
 * - `caPem` is an extra trust anchor for a store behind a private CA; the public roots stay trusted as well.
 */
import { z } from 'zod';

const pem = (label: string) => z.string().trim().regex(new RegExp(`^-----BEGIN [A-Z ]*${label}-----`), `must be a PEM ${label}`);
const certPem = pem('CERTIFICATE');
const keyPem = pem('PRIVATE KEY');
const httpUrl = z.string().url().refine((u) => /^https?:$/.test(new URL(u).protocol), 'must be an http(s) URL');
const httpsUrl = z.string().url().refine((u) => new URL(u).protocol === 'https:', 'must be an https URL');
const nonEmpty = z.string().min(1);
/** Store-side names and paths: no surrounding slashes, no empty or dot segments. */
const storePath = z.string().min(1).regex(/^(?!\/)(?!.*\/$)(?!.*\/\/)(?!(.*\/)?\.\.?(\/|$))/, 'must be a relative path without empty, . or .. segments');

/** HashiCorp Vault, KV secrets engine v1 or v2. */
export const vaultStoreConfig = z.strictObject({
  kind: z.literal('vault'),
  /** e.g. `https://vault.example.com:8200` */
  address: httpUrl,
  /** The KV engine version of `mount`. */
  kvVersion: z.union([z.literal(1), z.literal(2)]).default(2),
  /** Where the KV engine is mounted (`secret` in a dev server). */
  mount: storePath.default('secret'),
  /** Vault Enterprise namespace, sent as X-Vault-Namespace. */
  namespace: storePath.optional(),
  auth: z.discriminatedUnion('method', [
    z.strictObject({ method: z.literal('token'), token: nonEmpty }),
    /** AppRole: POST /v1/auth/<mount>/login with role_id + secret_id. */
    z.strictObject({ method: z.literal('approle'), roleId: nonEmpty, secretId: nonEmpty, mount: storePath.default('approle') }),
  ]),
  caPem: certPem.optional(),
});

const awsCommon = {
  /** e.g. `eu-west-1` */
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'must be an AWS region such as eu-west-1'),
  /** A VPC endpoint or other override; the regional endpoint when omitted. */
  endpoint: httpUrl.optional(),
  accessKeyId: nonEmpty,
  secretAccessKey: nonEmpty,
  /** For temporary (STS) credentials. */
  sessionToken: nonEmpty.optional(),
};

/** AWS Secrets Manager (GetSecretValue). */
export const awsSecretsManagerStoreConfig = z.strictObject({ kind: z.literal('aws-secrets-manager'), ...awsCommon });
/** AWS Systems Manager Parameter Store (GetParameter WithDecryption, so SecureString works). */
export const awsSsmStoreConfig = z.strictObject({ kind: z.literal('aws-ssm'), ...awsCommon });

/** Azure Key Vault with a service principal (client credentials). */
export const azureKeyVaultStoreConfig = z.strictObject({
  kind: z.literal('azure-key-vault'),
  /** e.g. `https://my-vault.vault.azure.net` */
  vaultUrl: httpsUrl,
  tenantId: nonEmpty,
  clientId: nonEmpty,
  clientSecret: nonEmpty,
  /** Sovereign clouds and private authorities; `https://login.microsoftonline.com` when omitted. */
  authorityHost: httpsUrl.optional(),
  /**
   * The SDK checks that the vault's authentication challenge names a resource whose host the vault URL ends with
   * (`*.vault.azure.net`); private endpoints and sovereign clouds under another domain need this off.
   */
  disableChallengeResourceVerification: z.boolean().default(false),
  caPem: certPem.optional(),
});

/** Google Cloud Secret Manager with a service account key. */
export const gcpSecretManagerStoreConfig = z.strictObject({
  kind: z.literal('gcp-secret-manager'),
  projectId: nonEmpty,
  /** The service account's `client_email`. */
  clientEmail: z.string().email(),
  /** The service account's `private_key` (PEM, PKCS#8). */
  privateKey: keyPem,
  /** A private or regional endpoint, e.g. `https://secretmanager.europe-west1.rep.googleapis.com`. */
  apiEndpoint: httpUrl.optional(),
  /** The OAuth token endpoint; `https://oauth2.googleapis.com/token` when omitted. */
  tokenUrl: httpUrl.optional(),
  caPem: certPem.optional(),
});

/** CyberArk Central Credential Provider (AIMWebService REST). */
export const cyberarkStoreConfig = z.strictObject({
  kind: z.literal('cyberark'),
  /** The CCP base URL, e.g. `https://ccp.example.com` (the AIMWebService path is added). */
  url: httpUrl,
  /** The application id CCP authorises. */
  appId: nonEmpty,
  /** Default Safe and Folder for queries; a secret path `Safe/Object` overrides the Safe. */
  safe: nonEmpty.optional(),
  folder: nonEmpty.optional(),
  caPem: certPem.optional(),
  /** Client certificate when CCP authenticates applications by certificate. */
  clientCertPem: certPem.optional(),
  clientKeyPem: keyPem.optional(),
}).refine((c) => (c.clientCertPem === undefined) === (c.clientKeyPem === undefined), { message: 'clientCertPem and clientKeyPem go together', path: ['clientKeyPem'] });

export const storeConfig = z.discriminatedUnion('kind', [
  vaultStoreConfig,
  awsSecretsManagerStoreConfig,
  awsSsmStoreConfig,
  azureKeyVaultStoreConfig,
  gcpSecretManagerStoreConfig,
  cyberarkStoreConfig,
]);

export type StoreConfig = z.infer<typeof storeConfig>;
/** What a caller writes: defaults may be omitted. */
export type StoreConfigInput = z.input<typeof storeConfig>;
/** The kinds configured here. */
export type ExternalStoreKind = StoreConfig['kind'];
/** Every kind a provider can have: these plus the Console's own `builtin` store. */
export type StoreKind = ExternalStoreKind | 'builtin';
export type StoreConfigOf<K extends ExternalStoreKind> = Extract<StoreConfig, { kind: K }>;

export const STORE_KINDS = ['vault', 'aws-secrets-manager', 'aws-ssm', 'azure-key-vault', 'gcp-secret-manager', 'cyberark'] as const satisfies readonly ExternalStoreKind[];

/** Credential fields per kind, as dotted paths into the configuration. */
export const STORE_CREDENTIAL_FIELDS = {
  'vault': ['auth.token', 'auth.secretId'],
  'aws-secrets-manager': ['secretAccessKey', 'sessionToken'],
  'aws-ssm': ['secretAccessKey', 'sessionToken'],
  'azure-key-vault': ['clientSecret'],
  'gcp-secret-manager': ['privateKey'],
  'cyberark': ['clientKeyPem'],
} as const satisfies Record<ExternalStoreKind, readonly string[]>;

/**
 * Fields that say where (or to whom, through which trust anchor) a kind's credentials or what they earn are sent:
 * an update that changes one must give the credentials again (store-registry.ts), so a changed address never
 * receives the stored ones. AWS `region` is not among them: it picks among AWS's own endpoints.
 */
export const STORE_DESTINATION_FIELDS = {
  'vault': ['address', 'caPem'],
  'aws-secrets-manager': ['endpoint'],
  'aws-ssm': ['endpoint'],
  // disableChallengeResourceVerification: the vault's challenge then chooses the scope of the token it is sent
  'azure-key-vault': ['vaultUrl', 'authorityHost', 'caPem', 'disableChallengeResourceVerification'],
  'gcp-secret-manager': ['apiEndpoint', 'tokenUrl', 'caPem'],
  'cyberark': ['url', 'caPem'],
} as const satisfies Record<ExternalStoreKind, readonly string[]>;

function mapAt(value: unknown, path: readonly string[], f: (leaf: unknown) => unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const [head, ...rest] = path;
  if (head === undefined || !(head in value)) return value;
  const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  if (rest.length === 0) {
    const next = f(copy[head]);
    if (next === undefined) delete copy[head];
    else copy[head] = next;
  } else {
    copy[head] = mapAt(copy[head], rest, f);
  }
  return copy;
}

/** The configuration without its credentials: what the API may return. The original is not modified. */
export function redactStoreConfig<C extends StoreConfig>(config: C): Omit<C, 'secretAccessKey' | 'sessionToken' | 'clientSecret' | 'privateKey' | 'clientKeyPem'> {
  let out: unknown = config;
  for (const field of STORE_CREDENTIAL_FIELDS[config.kind]) out = mapAt(out, field.split('.'), () => undefined);
  return out as C;
}

/** The credential values of `config`, by dotted path (only those present): what the Console seals at rest. */
export function storeCredentials(config: StoreConfig): Record<string, string> {
  const out: Record<string, string> = {};
  for (const field of STORE_CREDENTIAL_FIELDS[config.kind]) {
    mapAt(config, field.split('.'), (leaf) => {
      if (typeof leaf === 'string') out[field] = leaf;
      return leaf;
    });
  }
  return out;
}
