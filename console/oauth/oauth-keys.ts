/**
 * The OAuth server's own secrets, created on first start and kept in `meta` sealed with the master key:
 *
 * - the ID token signing key (RSA 2048, RS256: the algorithm every OpenID client accepts without configuration);
 * - the keys that sign oidc-provider's cookies (interaction and session), so a restart does not break a login
 *   that is in progress.
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import type { JWK } from 'oidc-provider';
import type { MasterKey } from '../crypto/master-key.js';
import type { Db } from '../db/database.js';

const SIGNING_KEY = 'oauth.signing_jwk';
const COOKIE_KEYS = 'oauth.cookie_keys';

export interface OAuthKeys {
  readonly jwks: { keys: JWK[] };
  readonly cookieKeys: string[];
}

function loadOrCreate(db: Db, masterKey: MasterKey, key: string, create: () => string): string {
  return db.transaction(() => {
    const row = db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    if (row) return masterKey.open(row.value, key).toString('utf8');
    const value = create();
    db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)').run(key, masterKey.seal(value, key));
    return value;
  })();
}

function newSigningJwk(): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  const kid = createHash('sha256').update(`${jwk.n}.${jwk.e}`).digest('base64url').slice(0, 16);
  return JSON.stringify({ ...jwk, kid, alg: 'RS256', use: 'sig' });
}

export function loadOAuthKeys(db: Db, masterKey: MasterKey): OAuthKeys {
  const jwk = JSON.parse(loadOrCreate(db, masterKey, SIGNING_KEY, newSigningJwk)) as JWK;
  const cookieKeys = JSON.parse(loadOrCreate(db, masterKey, COOKIE_KEYS, () => JSON.stringify([randomBytes(32).toString('base64url')]))) as string[];
  return { jwks: { keys: [jwk] }, cookieKeys };
}
