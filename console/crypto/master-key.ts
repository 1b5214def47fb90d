/**
 * The master key that encrypts sensitive columns (the CA key, store credentials, secret values) at rest.
 *
 * - It comes from DRAWBRIDGE_MASTER_KEY (base64 of 32 bytes) or a key file that only its owner may read (0600);
 *   a key file readable by others is refused. It is never written into the data directory.
 * - On first start without either, a key file is created (0600, atomic) at the configured path.
 * - Sealing is AES-256-GCM with a random 96-bit nonce; the column context (e.g. `ca.key`) is bound as AAD so a
 *   value cannot be moved to another column. Format: `v1.<key id>.<base64 nonce|ciphertext|tag>`.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../fs-atomic.js';
import { consoleErrors } from '../errors.js';

export interface MasterKey {
  readonly id: string;
  seal(plaintext: Buffer | string, context: string): string;
  open(sealed: string, context: string): Buffer;
}

export function masterKeyFromBytes(key: Buffer): MasterKey {
  if (key.length !== 32) throw consoleErrors.config('the master key must be 32 bytes (base64 of 32 random bytes)');
  const id = createHash('sha256').update(key).digest('hex').slice(0, 8);
  return {
    id,
    seal(plaintext, context) {
      const nonce = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, nonce);
      cipher.setAAD(Buffer.from(context));
      const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return `v1.${id}.${Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64')}`;
    },
    open(sealed, context) {
      const [version, keyId, data] = sealed.split('.');
      if (version !== 'v1' || !data) throw consoleErrors.internal('a sealed value has an unknown format');
      if (keyId !== id) throw consoleErrors.config(`a value is sealed with master key ${keyId}, but the configured master key is ${id}`);
      const raw = Buffer.from(data, 'base64');
      const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(raw.subarray(raw.length - 16));
      try {
        return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]);
      } catch {
        throw consoleErrors.internal(`a sealed value (${context}) failed authentication`);
      }
    },
  };
}

/** Loads the master key from the environment or the key file, creating the file on first start. */
export function loadMasterKey(opts: { env?: string | undefined; file: string; create: boolean }): { key: MasterKey; created: boolean } {
  if (opts.env) return { key: masterKeyFromBytes(Buffer.from(opts.env, 'base64')), created: false };
  let stat;
  try {
    stat = statSync(opts.file);
  } catch {
    stat = null;
  }
  if (stat === null) {
    if (!opts.create) throw consoleErrors.config(`the master key file ${opts.file} is missing, and the data directory holds data encrypted with it: restore the key file (or set DRAWBRIDGE_MASTER_KEY); a new key could not read that data`);
    mkdirSync(dirname(opts.file), { recursive: true, mode: 0o700 });
    const bytes = randomBytes(32);
    writeFileAtomic(opts.file, `${bytes.toString('base64')}\n`);
    return { key: masterKeyFromBytes(bytes), created: true };
  }
  if ((stat.mode & 0o077) !== 0) {
    throw consoleErrors.config(`the master key file ${opts.file} is readable by others (mode ${(stat.mode & 0o777).toString(8)}); run: chmod 600 ${opts.file}`);
  }
  return { key: masterKeyFromBytes(Buffer.from(readFileSync(opts.file, 'utf8').trim(), 'base64')), created: false };
}
