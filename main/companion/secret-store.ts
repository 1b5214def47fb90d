/**
 * The companion's two secrets per Console — the private key and the refresh token — in the OS keychain
 * (@napi-rs/keyring: macOS Keychain, Windows Credential Manager, Secret Service on Linux).
 *
 * - Entries: service `drawbridge`, account `<console URL>#<kind>` (kind: private-key | refresh-token).
 * - Linux is pinned to the Secret Service. Left to its default, the library silently falls back to the kernel
 *   keyring (keyutils) when no Secret Service answers: a probe then "works", the first write fails with
 *   AccessDenied, and keyutils would not survive a reboot anyway (checked with @napi-rs/keyring 2.1).
 * - `openSecretStore` probes the keychain once (write, read, delete a probe entry, with a deadline). Unreachable
 *   — no D-Bus session, no Secret Service on it, no usable collection, no answer — throws KeychainUnavailableError, which says so and names the explicit
 *   fallback flag `--insecure-file-store`. Other keychain failures are not "unreachable" and are not hidden.
 * - Files instead of the keychain happen only when the caller passed `allowFileFallback: true` (the CLI sets it
 *   only for that flag): one file per secret under `<stateDir>/secrets` (dir 0700, files 0600, atomic writes).
 *   The keychain is still preferred when it is reachable.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureDir, removeFileDurable, writeFileAtomic } from './atomic-file.js';

export const SECRET_SERVICE = 'drawbridge';
export const INSECURE_FILE_STORE_FLAG = '--insecure-file-store';
export const SECRET_KINDS = ['private-key', 'refresh-token'] as const;
export type SecretKind = (typeof SECRET_KINDS)[number];

export interface SecretStore {
  readonly backend: 'keychain' | 'file';
  get(consoleUrl: string, kind: SecretKind): Promise<string | null>;
  set(consoleUrl: string, kind: SecretKind, value: string): Promise<void>;
  /** Resolves to whether there was something to delete. */
  delete(consoleUrl: string, kind: SecretKind): Promise<boolean>;
}

export interface SecretStoreOptions {
  /** The companion's state dir; the file fallback lives in `<stateDir>/secrets`. */
  readonly stateDir: string;
  /** Use files (0600) when no keychain is reachable. Only for an explicit user choice (--insecure-file-store). */
  readonly allowFileFallback?: boolean;
  /** Keychain service name (default `drawbridge`; tests use their own). */
  readonly service?: string;
  /** How long the probe waits for the keychain (default 10 s). */
  readonly probeTimeoutMs?: number;
  /**
   * Skip the probe: for a login that already found the keychain working (renewals, every command after login).
   * A keychain gone since then fails on first use (KeychainError) instead of with KeychainUnavailableError.
   */
  readonly knownReachable?: boolean;
}

export class KeychainUnavailableError extends Error {
  override name = 'KeychainUnavailableError';
  readonly code = 'KEYCHAIN_UNAVAILABLE';
  readonly fallbackFlag = INSECURE_FILE_STORE_FLAG;
  constructor(readonly reason: string, stateDir: string) {
    super(
      `no OS keychain is reachable (${reason}). Drawbridge keeps your private key and refresh token in the keychain: ` +
        `start one in your session (on Linux a Secret Service such as gnome-keyring on the D-Bus session bus), or pass ` +
        `${INSECURE_FILE_STORE_FLAG} to keep them in files with mode 0600 under ${join(stateDir, 'secrets')} instead`,
    );
  }
}

export class KeychainError extends Error {
  override name = 'KeychainError';
  readonly code = 'KEYCHAIN_FAILED';
}

/** The canonical Console URL: origin plus path, without a trailing slash. */
export function canonicalConsoleUrl(consoleUrl: string): string {
  const url = new URL(consoleUrl);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError(`not a Console URL: ${consoleUrl}`);
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

export const secretAccount = (consoleUrl: string, kind: SecretKind): string => `${canonicalConsoleUrl(consoleUrl)}#${kind}`;

/** True for errors that mean "no keychain to talk to", as opposed to a keychain that refused or failed. */
export function isUnreachableError(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  // "Platform failure: DBus error: …" (no bus, no Secret Service on it); "Couldn't access platform storage: …"
  // (a Secret Service without a usable collection: locked with no prompter, or none at all).
  return /DBus error|Couldn't access platform storage/i.test(message);
}

type Keyring = typeof import('@napi-rs/keyring');
type AsyncEntry = InstanceType<Keyring['AsyncEntry']>;

export class KeychainSecretStore implements SecretStore {
  readonly backend = 'keychain';

  constructor(
    private readonly keyring: Keyring,
    private readonly service: string,
  ) {}

  private entry(account: string): AsyncEntry {
    // Linux: the Secret Service only (see the header); the option is ignored elsewhere.
    return new this.keyring.AsyncEntry(this.service, account, { linux: { store: 'secret-service' } });
  }

  private async call<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw new KeychainError(`the keychain could not ${what}: ${(error as Error).message}`);
    }
  }

  get(consoleUrl: string, kind: SecretKind): Promise<string | null> {
    return this.call(`read the ${kind}`, () => this.entry(secretAccount(consoleUrl, kind)).getPassword());
  }

  set(consoleUrl: string, kind: SecretKind, value: string): Promise<void> {
    return this.call(`store the ${kind}`, () => this.entry(secretAccount(consoleUrl, kind)).setPassword(value));
  }

  delete(consoleUrl: string, kind: SecretKind): Promise<boolean> {
    return this.call(`delete the ${kind}`, () => this.entry(secretAccount(consoleUrl, kind)).deleteCredential());
  }

  /**
   * Resolves when the keychain takes a write, a read and a delete of a probe entry. A read alone is not enough:
   * a Secret Service with no usable collection (locked, no prompter) answers reads and refuses writes.
   */
  async probe(stateDir: string, timeoutMs: number): Promise<void> {
    const value = randomBytes(8).toString('hex');
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new KeychainUnavailableError(`no answer from the keychain in ${timeoutMs / 1000} s`, stateDir)), timeoutMs);
      timer.unref();
    });
    try {
      await Promise.race([
        (async () => {
          const entry = this.entry('probe'); // pinned to the Secret Service, the constructor already connects to D-Bus
          await entry.setPassword(value);
          if ((await entry.getPassword()) !== value) throw new KeychainError('the keychain did not return what was stored in it');
          await entry.deleteCredential();
        })(),
        deadline,
      ]);
    } catch (error) {
      if (error instanceof KeychainUnavailableError || error instanceof KeychainError) throw error;
      if (isUnreachableError(error)) throw new KeychainUnavailableError((error as Error).message, stateDir);
      throw new KeychainError(`the keychain answered with an error: ${(error as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }
}

interface SecretFile {
  readonly account: string;
  readonly value: string;
}

/** Secrets in files (0600) under `<stateDir>/secrets`: only ever constructed with `allowFileFallback: true`. */
export class FileSecretStore implements SecretStore {
  readonly backend = 'file';
  readonly dir: string;

  constructor(opts: { readonly stateDir: string; readonly allowFileFallback: true }) {
    if (opts.allowFileFallback !== true) throw new Error(`secrets go to files only on explicit request (${INSECURE_FILE_STORE_FLAG})`);
    this.dir = join(opts.stateDir, 'secrets');
  }

  /** The file for one secret; the name hides the Console URL. */
  pathOf(consoleUrl: string, kind: SecretKind): string {
    return join(this.dir, `${createHash('sha256').update(secretAccount(consoleUrl, kind)).digest('hex').slice(0, 32)}.json`);
  }

  async get(consoleUrl: string, kind: SecretKind): Promise<string | null> {
    let text: string;
    try {
      text = await readFile(this.pathOf(consoleUrl, kind), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    const stored = JSON.parse(text) as SecretFile;
    return stored.account === secretAccount(consoleUrl, kind) ? stored.value : null;
  }

  async set(consoleUrl: string, kind: SecretKind, value: string): Promise<void> {
    await ensureDir(this.dir, 0o700, true);
    const stored: SecretFile = { account: secretAccount(consoleUrl, kind), value };
    await writeFileAtomic(this.pathOf(consoleUrl, kind), JSON.stringify(stored), { mode: 0o600 });
  }

  delete(consoleUrl: string, kind: SecretKind): Promise<boolean> {
    return removeFileDurable(this.pathOf(consoleUrl, kind));
  }
}

async function loadKeyring(): Promise<Keyring> {
  return import('@napi-rs/keyring');
}

/**
 * The keychain when one is reachable; otherwise files if `allowFileFallback`, else KeychainUnavailableError.
 * `loadKeyring` is injectable for tests of the decision itself.
 */
export async function openSecretStore(opts: SecretStoreOptions, load: () => Promise<Keyring> = loadKeyring): Promise<SecretStore> {
  try {
    let keyring: Keyring;
    try {
      keyring = await load();
    } catch (error) {
      throw new KeychainUnavailableError(`the keychain library could not be loaded: ${(error as Error).message}`, opts.stateDir);
    }
    const store = new KeychainSecretStore(keyring, opts.service ?? SECRET_SERVICE);
    if (!opts.knownReachable) await store.probe(opts.stateDir, opts.probeTimeoutMs ?? 10_000);
    return store;
  } catch (error) {
    if (error instanceof KeychainUnavailableError && opts.allowFileFallback === true) {
      return new FileSecretStore({ stateDir: opts.stateDir, allowFileFallback: true });
    }
    throw error;
  }
}
