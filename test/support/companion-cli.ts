/**
 * A developer's machine for companion end-to-end tests: a throwaway HOME with gnome-keyring on a private D-Bus
 * session (keyring.ts), the compiled `drawbridge` CLI and the real docker CLI run in it, and a real headless
 * Chromium (Playwright) as "the system browser".
 *
 * - The CLI opens the browser through `DRAWBRIDGE_BROWSER`, which here appends the URL to a file; `nextUrl()`
 *   hands it to the test, which signs in on the Console's page with Playwright, as a person would.
 * - Docker variables of the test runner (DOCKER_HOST, DOCKER_CONTEXT, DOCKER_CONFIG, DOCKER_CERT_PATH,
 *   DOCKER_TLS_VERIFY) are removed: the CLI and docker see only `~/.docker` of the throwaway HOME.
 * - `snapshotTree` describes a directory (paths, types, modes, contents, symlink targets) to compare before and
 *   after; mtimes of files (to the millisecond, what Node's utimes can set) are included so "restored exactly"
 *   means it.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { DRAWBRIDGE_BIN } from './defender-process.js';
import { docker, type DockerResult } from './docker-cli.js';
import { createKeyringHome, type KeyringHome, type KeyringSession } from './keyring.js';
import { pollUntil } from './poll.js';

export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunningCli {
  readonly child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  exited(timeoutMs?: number): Promise<CliResult>;
}

export interface CompanionMachine {
  readonly keyring: KeyringHome;
  readonly session: KeyringSession;
  readonly home: string;
  /** `~/.docker`. */
  readonly dockerDir: string;
  /** The environment of a shell on this machine (with the keychain unless `keychain: false`). */
  env(extra?: NodeJS.ProcessEnv, keychain?: boolean): NodeJS.ProcessEnv;
  /** `drawbridge ARGS` to completion. */
  cli(args: readonly string[], opts?: { env?: NodeJS.ProcessEnv; keychain?: boolean; timeoutMs?: number }): Promise<CliResult>;
  /** `drawbridge ARGS`, still running. */
  startCli(args: readonly string[], opts?: { env?: NodeJS.ProcessEnv; keychain?: boolean }): RunningCli;
  /** The real docker CLI as this user. */
  docker(args: readonly string[], extra?: NodeJS.ProcessEnv): Promise<DockerResult>;
  /** The next URL the CLI opened "in the browser". */
  nextUrl(timeoutMs?: number): Promise<string>;
  remove(): Promise<void>;
}

const DOCKER_VARS = ['DOCKER_HOST', 'DOCKER_CONTEXT', 'DOCKER_CONFIG', 'DOCKER_CERT_PATH', 'DOCKER_TLS_VERIFY'];

export async function createCompanionMachine(): Promise<CompanionMachine> {
  const keyring = await createKeyringHome();
  const session = await keyring.startSession();
  const urlFile = join(keyring.dir, 'browser-urls.txt');
  await writeFile(urlFile, '');
  let urlsSeen = 0;
  const env = (extra: NodeJS.ProcessEnv = {}, keychain = true): NodeJS.ProcessEnv => {
    const e: NodeJS.ProcessEnv = { ...(keychain ? session.env : session.envWithoutKeychain), DRAWBRIDGE_BROWSER: `printf '%s\\n' >> '${urlFile}'` };
    for (const v of DOCKER_VARS) delete e[v];
    return { ...e, ...extra };
  };
  const startCli = (args: readonly string[], opts: { env?: NodeJS.ProcessEnv; keychain?: boolean } = {}): RunningCli => {
    const child = spawn(process.execPath, [DRAWBRIDGE_BIN, ...args], { env: env(opts.env, opts.keychain ?? true), stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin.end();
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    const closed = new Promise<CliResult>((resolve) => child.once('close', (code) => resolve({ code, stdout: out, stderr: err })));
    return {
      child,
      stdout: () => out,
      stderr: () => err,
      exited(timeoutMs = 60_000) {
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        return closed.finally(() => clearTimeout(timer));
      },
    };
  };
  return {
    keyring,
    session,
    home: keyring.home,
    dockerDir: join(keyring.home, '.docker'),
    env,
    cli: (args, opts = {}) => startCli(args, opts).exited(opts.timeoutMs),
    startCli,
    docker: (args, extra = {}) => docker(args, { env: env(extra), timeoutMs: 30_000 }),
    async nextUrl(timeoutMs = 20_000) {
      const url = await pollUntil('the CLI to open the browser', async () => {
        const lines = (await readFile(urlFile, 'utf8')).split('\n').filter(Boolean);
        return lines.length > urlsSeen && lines[urlsSeen]!;
      }, timeoutMs, 50);
      urlsSeen++;
      return url;
    },
    async remove() {
      await session.stop();
      await keyring.remove();
    },
  };
}

/** Headless Chromium that accepts the Console's TLS key (and nothing else unverified). */
export function launchChromium(consoleSpkiPin: string): Promise<Browser> {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${consoleSpkiPin}`] });
}

/** Signs in on the Console's sign-in page. */
export async function signInOnConsolePage(page: Page, username: string, password: string): Promise<void> {
  await page.getByLabel('User name').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** Opens `url` in a fresh browser context, signs in, and returns the text of the page the browser ends on. */
export async function browserSignIn(browser: Browser, url: string, username: string, password: string): Promise<string> {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(url);
    await signInOnConsolePage(page, username, password);
    await page.waitForURL(/^http:\/\/127\.0\.0\.1:\d+\/callback/);
    return (await page.locator('main').textContent()) ?? '';
  } finally {
    await context.close();
  }
}

/** Enters a device code on the Console's pages and signs in. */
export async function deviceSignIn(browser: Browser, verificationUri: string, userCode: string, username: string, password: string): Promise<string> {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(verificationUri);
    await page.getByLabel('Code shown by the app').fill(userCode);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('button', { name: 'Continue' }).click();
    await signInOnConsolePage(page, username, password);
    return (await page.getByRole('heading', { level: 1 }).textContent()) ?? '';
  } finally {
    await context.close();
  }
}

export type TreeSnapshot = Record<string, string>;

/** Every entry under `dir`: type, mode, and content hash + mtime (files) or target (symlinks). */
export async function snapshotTree(dir: string): Promise<TreeSnapshot> {
  const out: TreeSnapshot = {};
  async function walk(path: string, rel: string): Promise<void> {
    const st = await lstat(path);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out[rel] = `link ${await readlink(path)}`;
    else if (st.isDirectory()) {
      out[rel] = `dir ${mode}`;
      for (const name of (await readdir(path)).sort()) await walk(join(path, name), `${rel}/${name}`);
    } else out[rel] = `file ${mode} ${createHash('sha256').update(await readFile(path)).digest('hex')} mtime ${Math.floor(st.mtimeMs)}`; // ms: utimes takes no finer
  }
  await walk(dir, '.');
  return out;
}
