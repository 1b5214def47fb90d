/**
 * The master key that encrypts sensitive columns (the CA key, store credentials, secret values) at rest.
 *
 * - It comes from DRAWBRIDGE_MASTER_KEY (base64 of 32 bytes) or a key file that only its owner may read (0600);
 *   a key file readable by others is refused. It is never written into the data directory.
 * - On first start without either, a key file is created (0600, atomic) at the configured path.
 * - Sealing is AES-256-GCM with a random 96-bit nonce; the column context (e.g. `ca.key`) is bound as AAD so a
 *   value cannot be moved to another column. Format: `v1.<key id>.<base64 nonce|ciphertext|tag>`.
 * - Rotation: start with the new key as the master key and the old one as a previous key
 *   (--previous-master-key-file or DRAWBRIDGE_PREVIOUS_MASTER_KEY). Values sealed with a previous key still open;
 *   the Console re-seals everything with the new key at start (reseal.ts), after which the old key is unused.
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
  /** Whether a sealed value was sealed with another (previous) key and should be sealed again. */
  isStale(sealed: string): boolean;
}

const keyId = (key: Buffer): string => createHash('sha256').update(key).digest('hex').slice(0, 8);

/** The master key `key`; values sealed with one of `previous` still open. */
export function masterKeyFromBytes(key: Buffer, previous: readonly Buffer[] = []): MasterKey {
  if (key.length !== 32) throw consoleErrors.config('the master key must be 32 bytes (base64 of 32 random bytes)');
  if (previous.some((k) => k.length !== 32)) throw consoleErrors.config('a previous master key must be 32 bytes (base64 of 32 random bytes)');
  const id = keyId(key);
  const keys = new Map<string, Buffer>([...previous.map((k) => [keyId(k), k] as const), [id, key]]);
  return {
    id,
    isStale: (sealed) => sealed.split('.')[1] !== id,
    seal(plaintext, context) {
      const nonce = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, nonce);
      cipher.setAAD(Buffer.from(context));
      const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return `v1.${id}.${Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64')}`;
    },
    open(sealed, context) {
      const [version, sealedWith, data] = sealed.split('.');
      if (version !== 'v1' || !data) throw consoleErrors.internal('a sealed value has an unknown format');
      const opener = keys.get(sealedWith ?? '');
      if (!opener) throw consoleErrors.config(`a value is sealed with master key ${sealedWith}, but the configured master key is ${id}: give the key it was sealed with as the master key or as a previous key (--previous-master-key-file)`);
      const raw = Buffer.from(data, 'base64');
      const decipher = createDecipheriv('aes-256-gcm', opener, raw.subarray(0, 12));
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
export function loadMasterKey(opts: { env?: string | undefined; file: string; create: boolean; previous?: readonly Buffer[] }): { key: MasterKey; created: boolean } {
  const previous = opts.previous ?? [];
  if (opts.env) return { key: masterKeyFromBytes(Buffer.from(opts.env, 'base64'), previous), created: false };
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
    return { key: masterKeyFromBytes(bytes, previous), created: true };
  }
  return { key: masterKeyFromBytes(readKeyFile(opts.file), previous), created: false };
}

/** A key file's 32 bytes; a file others may read is refused. */
export function readKeyFile(file: string): Buffer {
  const stat = statSync(file, { throwIfNoEntry: false });
  if (!stat) throw consoleErrors.config(`the key file ${file} does not exist`);
  if ((stat.mode & 0o077) !== 0) {
    throw consoleErrors.config(`the master key file ${file} is readable by others (mode ${(stat.mode & 0o777).toString(8)}); run: chmod 600 ${file}`);
  }
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
}
