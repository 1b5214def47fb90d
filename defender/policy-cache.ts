/**
 * The last policy snapshot on disk, so a restarted Defender enforces it even while the Console is away.
 *
 * - `policy.cache` is the snapshot sealed with AES-256-GCM under a random 32-byte key in `cache.key` (0600, made on
 *   first use). Like Prisma Cloud's local Defender cache, the key protects the cache against a copy made without
 *   the key (a backup, an image of the data disk, a support bundle): the rules and revocation list cannot be read
 *   or altered there. It does not protect against someone who can read the state directory (root on the host):
 *   they have both files, as they have the Defender's private keys.
 * - GCM authenticates the whole file, its format header included: a flipped bit, a truncated file or a cache from
 *   another key does not decrypt, and what decrypts is validated against the wire contract again.
 * - Anything unusable (missing key, corrupt file, wrong key, older format) is ignored with a warning: the Defender
 *   then denies everything until the Console sends a snapshot. It never falls back to allow.
 * - Written atomically (fs-atomic.ts): a crash leaves the previous cache or the new one, never half of one.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { policySnapshot, type PolicySnapshot } from '../shared/wire/defender-console.js';
import { writeFileAtomic } from './fs-atomic.js';

const MAGIC = Buffer.from('DBPC\x01', 'latin1'); // Drawbridge policy cache, format 1
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const CACHE_FILE = 'policy.cache';
export const CACHE_KEY_FILE = 'cache.key';

export class PolicyCacheError extends Error {
  override readonly name = 'PolicyCacheError';
}

export function sealSnapshot(key: Buffer, snapshot: PolicySnapshot): Buffer {
  if (key.length !== 32) throw new PolicyCacheError('the cache key must be 32 bytes');
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(MAGIC);
  const body = Buffer.concat([cipher.update(JSON.stringify(snapshot), 'utf8'), cipher.final()]);
  return Buffer.concat([MAGIC, iv, cipher.getAuthTag(), body]);
}

/** Decrypts and validates a sealed snapshot. Throws PolicyCacheError with the reason. */
export function openSnapshot(key: Buffer, sealed: Buffer): PolicySnapshot {
  if (key.length !== 32) throw new PolicyCacheError('the cache key is not 32 bytes');
  if (sealed.length < MAGIC.length + IV_BYTES + TAG_BYTES || !sealed.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new PolicyCacheError('the cache file is not a Drawbridge policy cache (or an unknown format)');
  }
  const iv = sealed.subarray(MAGIC.length, MAGIC.length + IV_BYTES);
  const tag = sealed.subarray(MAGIC.length + IV_BYTES, MAGIC.length + IV_BYTES + TAG_BYTES);
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv).setAAD(MAGIC).setAuthTag(tag);
    plain = Buffer.concat([decipher.update(sealed.subarray(MAGIC.length + IV_BYTES + TAG_BYTES)), decipher.final()]);
  } catch {
    throw new PolicyCacheError('the cache does not decrypt with cache.key (corrupt, or sealed with another key)');
  }
  let json: unknown;
  try {
    json = JSON.parse(plain.toString('utf8'));
  } catch {
    throw new PolicyCacheError('the decrypted cache is not JSON');
  }
  const parsed = policySnapshot.safeParse(json);
  if (!parsed.success) throw new PolicyCacheError('the decrypted cache is not a policy snapshot of this version');
  return parsed.data;
}

export interface PolicyCache {
  /** The cached snapshot, or null (none, or unusable: `onWarning` says why). */
  load(): PolicySnapshot | null;
  save(snapshot: PolicySnapshot): void;
}

/** The cache in state directory `dir` (which must exist, 0700). */
export function policyCache(dir: string, onWarning: (message: string) => void): PolicyCache {
  const cachePath = join(dir, CACHE_FILE);
  const keyPath = join(dir, CACHE_KEY_FILE);
  let key: Buffer | null = null;
  const readKey = (): Buffer | null => {
    if (!existsSync(keyPath)) return null;
    const k = readFileSync(keyPath);
    if (k.length !== 32) throw new PolicyCacheError(`${keyPath} is not a 32-byte key`);
    return k;
  };
  return {
    load() {
      if (!existsSync(cachePath)) return null;
      try {
        key = readKey();
        if (key === null) throw new PolicyCacheError(`${CACHE_KEY_FILE} is missing`);
        return openSnapshot(key, readFileSync(cachePath));
      } catch (e) {
        onWarning(`ignoring the policy cache ${cachePath}: ${(e as Error).message}; every request is denied until the Console sends the policy`);
        return null;
      }
    },
    save(snapshot) {
      if (key === null) {
        try {
          key = readKey();
        } catch {
          key = null; // unusable: replaced below
        }
      }
      if (key === null) {
        key = randomBytes(32);
        writeFileAtomic(keyPath, key);
      }
      writeFileAtomic(cachePath, sealSnapshot(key, snapshot));
    },
  };
}
