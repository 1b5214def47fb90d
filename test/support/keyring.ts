/**
 * The real OS keychain for tests: gnome-keyring's Secret Service on a private D-Bus session, as a desktop session
 * has it, isolated from the machine.
 *
 * - Each run is `dbus-run-session -- sh -c 'eval "$(printf %s PW | gnome-keyring-daemon --unlock
 *   --components=secrets)"; <wait until it owns org.freedesktop.secrets>; SCRIPT'` with a throwaway HOME (the keyring files live in HOME/.local/share/keyrings)
 *   and XDG_RUNTIME_DIR (0700; the daemon's control socket). Never the machine's HOME: D-Bus activation would
 *   otherwise start gnome-keyring on the real one.
 * - Runs with the same `home` share the same keyring on disk (unlocked with the same password), so a later run
 *   sees what an earlier one stored: persistence is testable.
 * - `runWithoutKeychain` runs the same script with DBUS_SESSION_BUS_ADDRESS pointing at a socket that does not
 *   exist, DISPLAY unset (no X11 autolaunch): the "headless Linux without Secret Service" case.
 * - The companion is driven through the compiled child (dist/test/support/keyring-child.js → dist/main), the
 *   code the CLI ships; build with `npx tsc -b` first.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyringChildRequest, KeyringChildResponse } from './keyring-child.js';
import { REPO_ROOT } from './defender-process.js';

export const KEYRING_CHILD = join(REPO_ROOT, 'dist/test/support/keyring-child.js');
const KEYRING_PASSWORD = 'drawbridge-test-keyring';

export interface ShellResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface KeyringSession {
  readonly env: NodeJS.ProcessEnv;
  /** The same environment with no D-Bus to reach (no keychain). */
  readonly envWithoutKeychain: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

export interface KeyringHome {
  /** Throwaway HOME and XDG_RUNTIME_DIR under one temp dir. */
  readonly dir: string;
  readonly home: string;
  readonly runtimeDir: string;
  /** Runs `script` (sh) in a private D-Bus session with gnome-keyring unlocked; `env` is added to its environment. */
  runWithKeychain(script: string, env?: NodeJS.ProcessEnv): Promise<ShellResult>;
  /** Runs `script` where no D-Bus (so no Secret Service) can be reached. */
  runWithoutKeychain(script: string, env?: NodeJS.ProcessEnv): Promise<ShellResult>;
  /**
   * A desktop-like session for many commands: one private D-Bus session with gnome-keyring unlocked, kept until
   * `stop()`; `env` is what a process needs to use it (HOME, XDG_RUNTIME_DIR, DBUS_SESSION_BUS_ADDRESS).
   */
  startSession(): Promise<KeyringSession>;
  /** The companion's secret store in the compiled child, with or without the keychain. */
  child(request: KeyringChildRequest, where: 'keychain' | 'no-dbus'): Promise<KeyringChildResponse>;
  remove(): Promise<void>;
}

/**
 * Waits until gnome-keyring owns org.freedesktop.secrets on the bus. The daemon prints its variables and forks
 * before it has claimed the name; a client that asks in between makes dbus-daemon *activate* a second daemon.
 * NameHasOwner does not activate anything.
 */
const WAIT_FOR_SECRET_SERVICE = [
  'i=0',
  'until dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q "boolean true"; do',
  '  i=$((i + 1)); if [ "$i" -ge 200 ]; then echo "gnome-keyring did not claim org.freedesktop.secrets in 10 s" >&2; exit 97; fi; sleep 0.05',
  'done',
].join('\n');

function run(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<ShellResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    let graceTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} still running after ${timeoutMs} ms (killed)\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`));
    }, timeoutMs);
    const done = (code: number | null): void => {
      clearTimeout(timer);
      clearTimeout(graceTimer);
      resolve({ code, stdout, stderr });
    };
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', done);
    // A daemon that outlived the session would hold our pipes open: do not wait for it (remove() ends it).
    child.once('exit', (code) => {
      graceTimer = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        done(code);
      }, 2_000);
    });
  });
}

/** Ends processes still running with this HOME in their environment: only ours can have it (a fresh temp dir). */
async function killLeftovers(home: string): Promise<void> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const environ = await readFile(`/proc/${entry}/environ`, 'utf8').catch(() => '');
    if (!environ.split('\0').includes(`HOME=${home}`)) continue;
    try {
      process.kill(Number(entry), 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** A fresh throwaway HOME for keychain runs. */
export async function createKeyringHome(): Promise<KeyringHome> {
  const dir = await mkdtemp(join(tmpdir(), 'drawbridge-keyring-'));
  const home = join(dir, 'home');
  const runtimeDir = join(dir, 'run');
  await mkdir(home, { mode: 0o700 });
  await mkdir(runtimeDir, { mode: 0o700 });
  const base = (): NodeJS.ProcessEnv => {
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, XDG_RUNTIME_DIR: runtimeDir };
    for (const name of ['DBUS_SESSION_BUS_ADDRESS', 'DISPLAY', 'WAYLAND_DISPLAY', 'GNOME_KEYRING_CONTROL', 'SSH_AUTH_SOCK', 'XDG_DATA_HOME', 'XDG_CONFIG_HOME', 'XDG_CACHE_HOME']) {
      delete env[name];
    }
    return env;
  };
  const withKeychain = (script: string, env: NodeJS.ProcessEnv = {}) =>
    run(
      'dbus-run-session',
      ['--', 'sh', '-c', `eval "$(printf %s "$KEYRING_PASSWORD" | gnome-keyring-daemon --unlock --components=secrets)"\n${WAIT_FOR_SECRET_SERVICE}\n${script}`],
      { ...base(), KEYRING_PASSWORD, ...env },
      60_000,
    );
  const withoutKeychain = (script: string, env: NodeJS.ProcessEnv = {}) =>
    run('sh', ['-c', script], { ...base(), DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(dir, 'no-such-bus')}`, ...env }, 60_000);
  return {
    dir,
    home,
    runtimeDir,
    runWithKeychain: withKeychain,
    runWithoutKeychain: withoutKeychain,
    async startSession() {
      const script = `eval "$(printf %s "$KEYRING_PASSWORD" | gnome-keyring-daemon --unlock --components=secrets)"\n${WAIT_FOR_SECRET_SERVICE}\necho "BUS=$DBUS_SESSION_BUS_ADDRESS"\nexec sleep 100000`;
      const child = spawn('dbus-run-session', ['--', 'sh', '-c', script], { env: { ...base(), KEYRING_PASSWORD }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
      const bus = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no keyring session in 20 s: ${err}`)), 20_000);
        child.stdout.setEncoding('utf8').on('data', (s: string) => {
          out += s;
          const m = /BUS=(\S+)/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]!);
          }
        });
        child.once('exit', (code) => reject(new Error(`the keyring session ended (${code}): ${err}`)));
      });
      return {
        env: { ...base(), DBUS_SESSION_BUS_ADDRESS: bus },
        envWithoutKeychain: { ...base(), DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(dir, 'no-such-bus')}` },
        async stop() {
          child.kill('SIGTERM');
          await killLeftovers(home);
        },
      };
    },
    async child(request, where) {
      if (!existsSync(KEYRING_CHILD)) throw new Error(`${KEYRING_CHILD} is missing: run \`npx tsc -b\` first`);
      const script = 'exec "$NODE" "$CHILD" "$REQUEST"';
      const env = { NODE: process.execPath, CHILD: KEYRING_CHILD, REQUEST: JSON.stringify(request) };
      const result = await (where === 'keychain' ? withKeychain(script, env) : withoutKeychain(script, env));
      const line = result.stdout.trim().split('\n').pop() ?? '';
      if (result.code !== 0 || !line.startsWith('{')) {
        throw new Error(`keyring child failed (exit ${result.code})\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`);
      }
      return JSON.parse(line) as KeyringChildResponse;
    },
    async remove() {
      await killLeftovers(home);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
