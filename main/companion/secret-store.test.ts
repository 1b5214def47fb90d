// The decision logic and the file fallback. The real keychain (gnome-keyring on a private D-Bus) and the real
// "no D-Bus" failure are exercised in test/e2e/companion-keychain.test.ts; here the library is replaced only to
// make it fail the ways it was seen to fail (messages copied from @napi-rs/keyring 2.1 on Debian 12).
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, test } from 'vitest';
import {
  canonicalConsoleUrl,
  FileSecretStore,
  isUnreachableError,
  KeychainError,
  KeychainUnavailableError,
  openSecretStore,
  secretAccount,
} from './secret-store.js';

let stateDir: string;
beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'drawbridge-secrets-'));
});
afterEach(async () => {
  await rm(stateDir, { recursive: true, force: true });
});

const CONSOLE = 'https://Console.Example:8083/';

test.each([
  ['https://Console.Example:8083/', 'https://console.example:8083'],
  ['https://console.example:443/base/', 'https://console.example/base'],
  ['http://127.0.0.1:8083', 'http://127.0.0.1:8083'],
])('canonicalConsoleUrl(%s) = %s', (url, canonical) => {
  expect(canonicalConsoleUrl(url)).toBe(canonical);
});

test('accounts are per Console URL and kind', () => {
  expect(secretAccount(CONSOLE, 'private-key')).toBe('https://console.example:8083#private-key');
  expect(secretAccount(CONSOLE, 'refresh-token')).toBe('https://console.example:8083#refresh-token');
  expect(() => secretAccount('ftp://x', 'private-key')).toThrow(TypeError);
});

test.each([
  ['Platform failure: DBus error: Failed to connect to socket /nonexistent: No such file or directory', true],
  ['Platform failure: DBus error: Using X11 for dbus-daemon autolaunch was disabled at compile time, set your DBUS_SESSION_BUS_ADDRESS instead', true],
  ['Platform failure: DBus error: The name org.freedesktop.secrets was not provided by any .service files', true],
  ["Couldn't access platform storage: Secret Service: no result found", true],
  ['Attribute value was not valid', false],
  ['Entry is matched by 2 credentials: ...', false],
])('isUnreachableError(%j) = %s', (message, expected) => {
  expect(isUnreachableError(new Error(message))).toBe(expected);
});

/** A stand-in for the library whose every call fails with `message`. */
function failingKeyring(message: string) {
  class AsyncEntry {
    async setPassword(): Promise<void> {
      throw new Error(message);
    }
    async getPassword(): Promise<string | null> {
      throw new Error(message);
    }
    async deleteCredential(): Promise<boolean> {
      throw new Error(message);
    }
  }
  return async () => ({ AsyncEntry }) as unknown as typeof import('@napi-rs/keyring');
}

describe('openSecretStore', () => {
  const NO_BUS = 'Platform failure: DBus error: Failed to connect to socket /nonexistent: No such file or directory';

  it('no keychain, no permission for files: a typed error that says so and names the flag', async () => {
    const error = await openSecretStore({ stateDir }, failingKeyring(NO_BUS)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeychainUnavailableError);
    expect(error).toMatchObject({ code: 'KEYCHAIN_UNAVAILABLE', fallbackFlag: '--insecure-file-store' });
    expect((error as Error).message).toMatch(/^no OS keychain is reachable \(Platform failure: DBus error: Failed to connect/);
    expect((error as Error).message).toContain('--insecure-file-store');
    expect(await readdir(stateDir)).toEqual([]); // and nothing was written
  });

  it('pinned to the Secret Service, the library connects when the entry is made: that failure counts too', async () => {
    class AsyncEntry {
      constructor() {
        throw new Error(NO_BUS);
      }
    }
    const load = async () => ({ AsyncEntry }) as unknown as typeof import('@napi-rs/keyring');
    await expect(openSecretStore({ stateDir }, load)).rejects.toBeInstanceOf(KeychainUnavailableError);
    expect((await openSecretStore({ stateDir, allowFileFallback: true }, load)).backend).toBe('file');
  });

  it('no keychain, files allowed: the file store', async () => {
    const store = await openSecretStore({ stateDir, allowFileFallback: true }, failingKeyring(NO_BUS));
    expect(store.backend).toBe('file');
  });

  it('a library that cannot load counts as no keychain', async () => {
    const load = async () => {
      throw new Error('Cannot find native binding');
    };
    await expect(openSecretStore({ stateDir }, load)).rejects.toThrow(/keychain library could not be loaded: Cannot find native binding/);
  });

  it('a keychain that answers with another error is not silently replaced by files', async () => {
    await expect(openSecretStore({ stateDir, allowFileFallback: true }, failingKeyring('Attribute value was not valid'))).rejects.toBeInstanceOf(KeychainError);
  });

  it('a keychain that does not answer in time counts as unreachable', async () => {
    class AsyncEntry {
      setPassword = () => new Promise<void>(() => undefined);
    }
    const load = async () => ({ AsyncEntry }) as unknown as typeof import('@napi-rs/keyring');
    await expect(openSecretStore({ stateDir, probeTimeoutMs: 50 }, load)).rejects.toThrow(/no answer from the keychain in 0.05 s/);
  });
});

describe('FileSecretStore', () => {
  it('exists only with allowFileFallback: true', () => {
    expect(() => new FileSecretStore({ stateDir, allowFileFallback: false as unknown as true })).toThrow(/--insecure-file-store/);
  });

  it('round trip, per Console and kind, in 0600 files under a 0700 dir', async () => {
    const store = new FileSecretStore({ stateDir, allowFileFallback: true });
    expect(await store.get(CONSOLE, 'private-key')).toBeNull();
    await store.set(CONSOLE, 'private-key', '-----BEGIN PRIVATE KEY-----\n…');
    await store.set(CONSOLE, 'refresh-token', 'rt-1');
    await store.set('https://other.example', 'refresh-token', 'rt-other');
    expect(await store.get('https://console.example:8083', 'private-key')).toBe('-----BEGIN PRIVATE KEY-----\n…');
    expect(await store.get(CONSOLE, 'refresh-token')).toBe('rt-1');
    expect(await store.get('https://other.example/', 'refresh-token')).toBe('rt-other');
    await store.set(CONSOLE, 'refresh-token', 'rt-2');
    expect(await store.get(CONSOLE, 'refresh-token')).toBe('rt-2');
    expect((await stat(store.dir)).mode & 0o777).toBe(0o700);
    const names = await readdir(store.dir);
    expect(names).toHaveLength(3);
    for (const name of names) {
      expect((await stat(join(store.dir, name))).mode & 0o777).toBe(0o600);
      expect(name).toMatch(/^[0-9a-f]{32}\.json$/); // no temp files, no URL in names
    }
    expect(await readFile(store.pathOf(CONSOLE, 'refresh-token'), 'utf8')).toContain('rt-2');
    expect(await store.delete(CONSOLE, 'refresh-token')).toBe(true);
    expect(await store.delete(CONSOLE, 'refresh-token')).toBe(false);
    expect(await store.get(CONSOLE, 'refresh-token')).toBeNull();
  });

  it('narrows a pre-existing secrets dir to 0700', async () => {
    await mkdir(join(stateDir, 'secrets'), { mode: 0o755 });
    await new FileSecretStore({ stateDir, allowFileFallback: true }).set(CONSOLE, 'refresh-token', 'x');
    expect((await stat(join(stateDir, 'secrets'))).mode & 0o777).toBe(0o700);
  });
});
