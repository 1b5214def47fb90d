/**
 * What the companion remembers between commands: `$DOCKER_CONFIG/drawbridge/state.json` (dir 0700, file 0600,
 * atomic writes). No secret goes here: the private key and refresh token are in the keychain (secret-store.ts).
 *
 * - One login per docker config dir (the contexts and `{ca,cert,key}.pem` it materialises live there too).
 * - Enough to run without the Console: who, which Console and CA, the certificate's validity, the hosts and
 *   contexts last materialised, and the session state — `active`, or `login-required` with the reason (the
 *   renewal found the login revoked or expired), shown by `status`.
 * - What logout must undo: whether the config dir existed before, and the current context before our `use`.
 * - `withStateLock` serialises what rotates the refresh token (renewal, API calls): a rotated token used twice
 *   ends the whole login at the Console. The lock is a file created exclusively, holding the owner's pid; a lock
 *   whose owner is gone is taken over.
 */
import { constants } from 'node:fs';
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureDir, removeFileDurable, writeFileAtomic } from './atomic-file.js';
import { CompanionError } from './companion-errors.js';

export const STATE_DIR_NAME = 'drawbridge';
export const STATE_FILE = 'state.json';

export interface HostEntry {
  readonly hostName: string;
  readonly dockerHost: string | null;
  readonly listener: 'tcp' | 'unix';
  readonly summary: string;
  /** The docker context made for it; null when none could be (a UNIX socket, no address). */
  readonly context: string | null;
  /** Why there is no context. */
  readonly note?: string;
}

export interface CompanionState {
  readonly version: 1;
  readonly console: string;
  /** The CA the Console was verified with (and the Defenders are): trusted for every later call. Undefined: system store. */
  readonly consoleCa?: string;
  /** The Console's OAuth discovery document as found at login (openid-client ServerMetadata). */
  readonly oauthServer?: Record<string, unknown>;
  readonly user: string;
  readonly groups: readonly string[];
  readonly secretBackend: 'keychain' | 'file';
  /** `receivedAt`: when it arrived; its lifetime for renewal starts there (notBefore is back-dated for clock skew). */
  readonly cert: { readonly pem: string; readonly ca: string; readonly serial: string; readonly notBefore: string; readonly notAfter: string; readonly receivedAt: string };
  /** When the login itself ends (the Console's grant). */
  readonly loginExpiresAt: string;
  readonly session: { readonly state: 'active' } | { readonly state: 'login-required'; readonly reason: string; readonly since: string };
  readonly loggedInAt: string;
  readonly renewedAt: string | null;
  /** Last renewal attempt that failed for a reason other than the login (Console away): retried. */
  readonly lastRenewalError: string | null;
  readonly hosts: readonly HostEntry[];
  readonly configDirExisted: boolean;
  /** The current context before our first `use`, restored by logout. */
  readonly previousContext: string | null;
}

export const stateDirOf = (configDir: string): string => join(configDir, STATE_DIR_NAME);

export async function readState(configDir: string): Promise<CompanionState | undefined> {
  let text: string;
  try {
    text = await readFile(join(stateDirOf(configDir), STATE_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const state = JSON.parse(text) as CompanionState;
  if (state.version !== 1) throw new CompanionError('FAILED', `${join(stateDirOf(configDir), STATE_FILE)} is from another Drawbridge version; run drawbridge logout, then log in again`);
  return state;
}

/** The state, or NOT_LOGGED_IN saying how to log in. */
export async function requireState(configDir: string): Promise<CompanionState> {
  const state = await readState(configDir);
  if (!state) throw new CompanionError('NOT_LOGGED_IN', 'not logged in; run drawbridge login <console-url>');
  return state;
}

export async function writeState(configDir: string, state: CompanionState): Promise<void> {
  const dir = stateDirOf(configDir);
  await ensureDir(dir, 0o700, true);
  await writeFileAtomic(join(dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
}

export async function removeState(configDir: string): Promise<void> {
  await removeFileDurable(join(stateDirOf(configDir), STATE_FILE));
}

/**
 * When renewal is due: two thirds into the certificate's lifetime, counted from when it arrived — the Console
 * back-dates notBefore by minutes for clock skew, which would put "two thirds" past the start of a short one.
 */
export function renewalDueAt(cert: { notBefore: string; notAfter: string; receivedAt?: string }): number {
  const from = Math.max(Date.parse(cert.notBefore), cert.receivedAt ? Date.parse(cert.receivedAt) : -Infinity);
  const to = Date.parse(cert.notAfter);
  return from + ((to - from) * 2) / 3;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Runs `task` holding the state lock of `configDir` (waits up to `timeoutMs` for another holder). */
export async function withStateLock<T>(configDir: string, task: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const dir = stateDirOf(configDir);
  await ensureDir(dir, 0o700, true);
  const path = join(dir, 'lock');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number(await readFile(path, 'utf8').catch(() => ''));
      if (Number.isInteger(owner) && owner > 0 && !alive(owner)) {
        await rm(path, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new CompanionError('FAILED', `another drawbridge command holds ${path}; wait for it, or remove the file if no drawbridge command is running`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    return await task();
  } finally {
    await rm(path, { force: true });
  }
}
