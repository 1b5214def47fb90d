// The companion's secret store against the REAL OS keychain: gnome-keyring's Secret Service on a private D-Bus
// session with a throwaway HOME (test/support/keyring.ts), driven through the compiled code (dist/main). Also the
// headless case — no D-Bus at all — where it must refuse with a typed error naming --insecure-file-store, and
// use 0600 files only when that fallback was explicitly allowed.
import { randomBytes } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeyringHome, type KeyringHome } from '../support/keyring.js';
import { requireSystem } from '../support/system-check.js';

const CONSOLE = 'https://console.example:8083';
const OTHER_CONSOLE = 'https://other-console.example';
const service = `drawbridge-e2e-${randomBytes(4).toString('hex')}`;
const privateKey = `-----BEGIN PRIVATE KEY-----\n${randomBytes(48).toString('base64')}\n-----END PRIVATE KEY-----\n`;
const refreshToken = randomBytes(32).toString('base64url');

let keyring: KeyringHome;
let stateDir: string;

beforeAll(async () => {
  await requireSystem(['gnome-keyring', 'dbus']);
  keyring = await createKeyringHome();
  stateDir = join(keyring.home, '.drawbridge');
});

afterAll(async () => {
  await keyring?.remove();
});

/** Item paths the Secret Service itself returns for our service (+ account), over D-Bus — not through our code. */
function searchItemsScript(account?: string): string {
  const attrs = account ? `service,${service},username,${account}` : `service,${service}`;
  return `dbus-send --session --print-reply=literal --dest=org.freedesktop.secrets /org/freedesktop/secrets org.freedesktop.Secret.Service.SearchItems dict:string:string:${attrs}`;
}
const itemPaths = (out: string): string[] => out.match(/\/org\/freedesktop\/secrets\/collection\/\S+/g) ?? [];

describe('with gnome-keyring on a private D-Bus', () => {
  it('set, get, delete round trip in one session; the items are really in the login keyring', async () => {
    const r = await keyring.child(
      {
        stateDir,
        service,
        ops: [
          { op: 'get', console: CONSOLE, kind: 'private-key' },
          { op: 'set', console: CONSOLE, kind: 'private-key', value: privateKey },
          { op: 'set', console: CONSOLE, kind: 'refresh-token', value: refreshToken },
          { op: 'set', console: OTHER_CONSOLE, kind: 'refresh-token', value: 'other' },
          { op: 'get', console: `${CONSOLE}/`, kind: 'private-key' },
          { op: 'get', console: CONSOLE, kind: 'refresh-token' },
          { op: 'get', console: OTHER_CONSOLE, kind: 'refresh-token' },
          { op: 'delete', console: OTHER_CONSOLE, kind: 'refresh-token' },
          { op: 'delete', console: OTHER_CONSOLE, kind: 'refresh-token' },
          { op: 'get', console: OTHER_CONSOLE, kind: 'refresh-token' },
        ],
      },
      'keychain',
    );
    expect(r).toEqual({ ok: true, backend: 'keychain', results: [null, true, true, true, privateKey, refreshToken, 'other', true, false, null] });
    // Nothing went to files.
    expect(await readdir(stateDir).catch(() => [])).toEqual([]);
  });

  it('a new session (same HOME, keyring unlocked again) reads them back: they persisted in gnome-keyring', async () => {
    const search = await keyring.runWithKeychain(searchItemsScript(`${CONSOLE}#private-key`));
    expect(search.code).toBe(0);
    expect(itemPaths(search.stdout)).toHaveLength(1);
    expect(itemPaths(search.stdout)[0]).toMatch(/^\/org\/freedesktop\/secrets\/collection\/login\//); // on disk, not the session collection
    expect(itemPaths((await keyring.runWithKeychain(searchItemsScript())).stdout)).toHaveLength(2);
    const files = await readdir(join(keyring.home, '.local/share/keyrings'));
    expect(files).toContain('login.keyring');

    const r = await keyring.child(
      {
        stateDir,
        service,
        ops: [
          { op: 'get', console: CONSOLE, kind: 'private-key' },
          { op: 'get', console: CONSOLE, kind: 'refresh-token' },
          { op: 'delete', console: CONSOLE, kind: 'private-key' },
          { op: 'delete', console: CONSOLE, kind: 'refresh-token' },
        ],
      },
      'keychain',
    );
    expect(r).toEqual({ ok: true, backend: 'keychain', results: [privateKey, refreshToken, true, true] });
    expect(itemPaths((await keyring.runWithKeychain(searchItemsScript())).stdout)).toEqual([]);
  });

  it('with the keychain reachable, allowing the file fallback changes nothing: the keychain is used', async () => {
    const r = await keyring.child(
      { stateDir, service, allowFileFallback: true, ops: [{ op: 'set', console: CONSOLE, kind: 'refresh-token', value: 'x' }, { op: 'delete', console: CONSOLE, kind: 'refresh-token' }] },
      'keychain',
    );
    expect(r).toEqual({ ok: true, backend: 'keychain', results: [true, true] });
    expect(await readdir(stateDir).catch(() => [])).toEqual([]);
  });
});

describe('no keychain reachable (DBUS_SESSION_BUS_ADDRESS points nowhere)', () => {
  it('refuses with KEYCHAIN_UNAVAILABLE, says why and names --insecure-file-store; writes nothing', async () => {
    const r = await keyring.child({ stateDir, service, ops: [{ op: 'set', console: CONSOLE, kind: 'private-key', value: privateKey }] }, 'no-dbus');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toMatchObject({ name: 'KeychainUnavailableError', code: 'KEYCHAIN_UNAVAILABLE', fallbackFlag: '--insecure-file-store' });
    expect(r.error.message).toMatch(/^no OS keychain is reachable \(Platform failure: DBus error: Failed to connect to socket .*no-such-bus/);
    expect(r.error.message).toContain('pass --insecure-file-store');
    expect(await readdir(stateDir).catch(() => [])).toEqual([]);
  });

  it('with the fallback explicitly allowed: 0600 files in a 0700 dir under the state dir, round trip works', async () => {
    const r = await keyring.child(
      {
        stateDir,
        service,
        allowFileFallback: true,
        ops: [
          { op: 'set', console: CONSOLE, kind: 'private-key', value: privateKey },
          { op: 'set', console: CONSOLE, kind: 'refresh-token', value: refreshToken },
          { op: 'get', console: CONSOLE, kind: 'private-key' },
          { op: 'get', console: CONSOLE, kind: 'refresh-token' },
        ],
      },
      'no-dbus',
    );
    expect(r).toEqual({ ok: true, backend: 'file', results: [true, true, privateKey, refreshToken] });
    const dir = join(stateDir, 'secrets');
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    const names = await readdir(dir);
    expect(names).toHaveLength(2);
    for (const name of names) expect((await stat(join(dir, name))).mode & 0o777).toBe(0o600);

    const again = await keyring.child(
      { stateDir, service, allowFileFallback: true, ops: [{ op: 'delete', console: CONSOLE, kind: 'private-key' }, { op: 'delete', console: CONSOLE, kind: 'refresh-token' }] },
      'no-dbus',
    );
    expect(again).toEqual({ ok: true, backend: 'file', results: [true, true] });
    expect(await readdir(dir)).toEqual([]);
  });
});
