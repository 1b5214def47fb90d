import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { PolicySnapshot } from '../shared/wire/defender-console.js';
import { CACHE_FILE, CACHE_KEY_FILE, openSnapshot, policyCache, PolicyCacheError, sealSnapshot } from './policy-cache.js';

const snapshot: PolicySnapshot = {
  version: 7,
  issuedAt: '2025-01-01T00:00:00.000Z',
  rules: [{ name: 'devs-on-dev', effect: 'allow', users: ['*'], groups: ['devs'], hosts: ['dev-*'], actions: ['container_*'] }],
  revokedSerials: ['0a1b2c'],
  listener: { type: 'tcp', address: '0.0.0.0:9998' },
  secrets: { rules: [], values: [] },
};

const dirs: string[] = [];
function stateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'drawbridge-cache-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('sealSnapshot / openSnapshot', () => {
  it('round-trips a snapshot, and the sealed bytes do not contain it in clear', () => {
    const key = randomBytes(32);
    const sealed = sealSnapshot(key, snapshot);
    expect(sealed.includes(Buffer.from('devs-on-dev'))).toBe(false);
    expect(openSnapshot(key, sealed)).toEqual(snapshot);
  });

  it('refuses another key, a flipped bit, a truncated file and a foreign file', () => {
    const key = randomBytes(32);
    const sealed = sealSnapshot(key, snapshot);
    expect(() => openSnapshot(randomBytes(32), sealed)).toThrow(/does not decrypt/);
    for (const at of [2, 10, 30, sealed.length - 1]) {
      const flipped = Buffer.from(sealed);
      flipped[at]! ^= 0x01;
      expect(() => openSnapshot(key, flipped)).toThrow(PolicyCacheError);
    }
    expect(() => openSnapshot(key, sealed.subarray(0, sealed.length - 5))).toThrow(/does not decrypt/);
    expect(() => openSnapshot(key, Buffer.from('{"version":1}'))).toThrow(/not a Drawbridge policy cache/);
  });
});

describe('policyCache', () => {
  it('saves with a fresh 0600 key and loads it back after a "restart"', () => {
    const dir = stateDir();
    const warnings: string[] = [];
    expect(policyCache(dir, (m) => warnings.push(m)).load()).toBe(null);
    policyCache(dir, (m) => warnings.push(m)).save(snapshot);
    expect(statSync(join(dir, CACHE_KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, CACHE_FILE)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, CACHE_KEY_FILE))).toHaveLength(32);
    expect(policyCache(dir, (m) => warnings.push(m)).load()).toEqual(snapshot);
    expect(warnings).toEqual([]);
  });

  it('keeps the key across saves', () => {
    const dir = stateDir();
    const cache = policyCache(dir, () => undefined);
    cache.save(snapshot);
    const key = readFileSync(join(dir, CACHE_KEY_FILE));
    cache.save({ ...snapshot, version: 8 });
    expect(readFileSync(join(dir, CACHE_KEY_FILE))).toEqual(key);
    expect(policyCache(dir, () => undefined).load()?.version).toBe(8);
  });

  it.each([
    ['a wrong key', (dir: string) => writeFileSync(join(dir, CACHE_KEY_FILE), randomBytes(32)), /does not decrypt/],
    ['a missing key', (dir: string) => rmSync(join(dir, CACHE_KEY_FILE)), /cache\.key is missing/],
    ['a key of the wrong size', (dir: string) => writeFileSync(join(dir, CACHE_KEY_FILE), randomBytes(16)), /not a 32-byte key/],
    ['a corrupt file', (dir: string) => writeFileSync(join(dir, CACHE_FILE), randomBytes(200)), /not a Drawbridge policy cache/],
    ['an empty file', (dir: string) => writeFileSync(join(dir, CACHE_FILE), ''), /not a Drawbridge policy cache/],
  ])('ignores the cache with %s, with a warning that says every request is denied', (_, damage, reason) => {
    const dir = stateDir();
    policyCache(dir, () => undefined).save(snapshot);
    damage(dir);
    const warnings: string[] = [];
    expect(policyCache(dir, (m) => warnings.push(m)).load()).toBe(null);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(reason);
    expect(warnings[0]).toMatch(/every request is denied until the Console sends the policy/);
  });

  it('after an unusable key, the next save makes a new key and the cache works again', () => {
    const dir = stateDir();
    policyCache(dir, () => undefined).save(snapshot);
    writeFileSync(join(dir, CACHE_KEY_FILE), 'short');
    const cache = policyCache(dir, () => undefined);
    expect(cache.load()).toBe(null);
    cache.save(snapshot);
    expect(policyCache(dir, () => undefined).load()).toEqual(snapshot);
  });
});
