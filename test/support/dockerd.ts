/**
 * A private, throwaway Docker Engine for the end-to-end tests: the real dockerd, isolated from the machine's own.
 *
 * - Everything lives under one short directory DIR (/tmp/dbd-XXXXXX; UNIX socket paths are limited to 107
 *   bytes): API socket, data root (vfs), exec root, pid file, logs, and a private containerd.
 * - `--config-file DIR/daemon.json` (`{}`) so /etc/docker/daemon.json is never read.
 * - containerd is started by us with its own config (DIR/containerd/config.toml; /etc/containerd is not read)
 *   and handed to dockerd with `--containerd`. Left alone, dockerd 20.10 would adopt the machine's containerd
 *   whenever /run/containerd/containerd.sock exists (sharing its `moby` namespace with the machine's dockerd)
 *   and only otherwise start its own under DATA/containerd and EXEC/containerd.
 * - No host networking changes: `--iptables=false --ip-forward=false --ip-masq=false --bridge=none`.
 * - Unavoidable outside DIR (dockerd 20.10 / containerd 1.6 hard-code them): /etc/docker/key.json (created if
 *   missing, the same file the machine's dockerd would create), shim sockets in /run/containerd/s/ (removed
 *   when each shim exits), and the empty plugin directory /run/docker/plugins.
 * - stop() kills leftover containers first so shutdown is quick, then dockerd, containerd, any orphaned shim
 *   of ours, unmounts whatever is still mounted under DIR, and deletes DIR.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface DockerDaemon {
  /** `unix:///…/docker.sock`, for DOCKER_HOST. */
  readonly host: string;
  readonly socketPath: string;
  readonly dir: string;
  stop(): Promise<void>;
}

const DIR_PREFIX = '/tmp/dbd-';
/** Marks a DIR as ours, with the PIDs of the process that made it and its daemons. */
const OWNER_FILE = 'drawbridge-dockerd.json';
const MAX_SOCKET_PATH = 107;
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;
const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** The environment for the real docker CLI talking to `host`, without anything that would redirect it. */
export function dockerCliEnv(host: string, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base, DOCKER_HOST: host };
  for (const name of ['DOCKER_CONTEXT', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH', 'DOCKER_TLS']) delete env[name];
  return env;
}

function daemonEnv(): NodeJS.ProcessEnv {
  const path = (process.env.PATH ?? '').split(':').filter(Boolean);
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: [...path, ...SBIN.filter((d) => !path.includes(d))].join(':') };
  for (const name of Object.keys(env)) if (name.startsWith('DOCKER_')) delete env[name];
  return env;
}

async function logTail(file: string, lines = 30): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

const spawnErrors = new WeakMap<ChildProcess, Error>();

function spawnLogged(command: string, args: string[], logFile: string): ChildProcess {
  const fd = openSync(logFile, 'a', 0o600);
  try {
    // Own process group: a Ctrl-C in the terminal reaches the test runner, which then stops us in order.
    const child = spawn(command, args, { stdio: ['ignore', fd, fd], detached: true, env: daemonEnv() });
    child.on('error', (error) => {
      spawnErrors.set(child, error);
      child.emit('exit', null, null);
    });
    return child;
  } finally {
    closeSync(fd);
  }
}

const exited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null || spawnErrors.has(child);

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function exitReason(child: ChildProcess): string {
  const error = spawnErrors.get(child);
  if (error) return `could not be started (${error.message})`;
  return `exited (${child.exitCode !== null ? `code ${child.exitCode}` : `signal ${child.signalCode}`})`;
}

async function terminate(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (exited(child)) return;
  child.kill('SIGTERM');
  if (await waitForExit(child, timeoutMs)) return;
  child.kill('SIGKILL');
  await waitForExit(child, 5_000);
}

/** One HTTP request to the daemon's socket; resolves with status and body. */
function request(socketPath: string, method: string, path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

async function waitUntil(what: string, ready: () => Promise<boolean>, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited(child)) throw new Error(`${what} ${exitReason(child)} before it was ready`);
    if (await ready().catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`${what}: not ready after ${timeoutMs / 1000} s`);
}

function containerdConfig(dir: string): string {
  const q = (s: string) => JSON.stringify(s); // TOML basic strings accept JSON string escapes for our paths
  return [
    'version = 2',
    `root = ${q(join(dir, 'containerd', 'root'))}`,
    `state = ${q(join(dir, 'containerd', 'state'))}`,
    // The CRI plugin would set up Kubernetes networking state we do not want.
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = ${q(join(dir, 'containerd', 'containerd.sock'))}`,
    '[ttrpc]',
    '  address = ""',
    '[debug]',
    '  address = ""',
    '[metrics]',
    '  address = ""',
    // Default /opt/containerd: keep it in DIR too.
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${q(join(dir, 'containerd', 'opt'))}`,
    '',
  ].join('\n');
}

function mountPointsUnder(dir: string, mountinfo: string): string[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return mountinfo
    .split('\n')
    .map((line) => unescape(line.split(' ')[4] ?? ''))
    .filter((mp) => mp === dir || mp.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length); // deepest first
}

/**
 * Shims still running for our containerd (`-address <our socket>` on their command line) once it is gone:
 * killed, and their sockets in /run/containerd/s removed (containerd 1.6 names them
 * sha256("<address>/<namespace>/<id>"), outside DIR).
 */
async function killOrphanedShims(containerdSocket: string): Promise<void> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let argv: string[];
    try {
      argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0');
    } catch {
      continue; // gone already
    }
    const flag = (name: string) => {
      const i = argv.indexOf(name);
      return i >= 0 ? argv[i + 1] : undefined;
    };
    if (flag('-address') !== containerdSocket) continue;
    try {
      process.kill(Number(entry), 'SIGKILL');
    } catch {
      // already gone
    }
    const namespace = flag('-namespace');
    const id = flag('-id');
    if (namespace && id) {
      const hash = createHash('sha256').update(join(containerdSocket, namespace, id)).digest('hex');
      await rm(join('/run/containerd/s', hash), { force: true });
    }
  }
}

const daemons = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort if the test process dies without calling stop(): at least the daemons do not outlive it.
  process.on('exit', () => {
    for (const child of daemons) if (!exited(child)) child.kill('SIGTERM');
  });
}

/** Starts a private dockerd (and containerd) under `dir` (default: a fresh /tmp/dbd-XXXXXX). */
export async function startDockerd(opts: { dir?: string } = {}): Promise<DockerDaemon> {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error('startDockerd needs root (dockerd does); or set DRAWBRIDGE_TEST_DOCKER_HOST to an existing daemon');
  }
  await sweepStaleDirs();
  const dir = opts.dir ? resolve(opts.dir) : await mkdtemp(DIR_PREFIX);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const socketPath = join(dir, 'docker.sock');
  const containerdSocket = join(dir, 'containerd', 'containerd.sock');
  const longest = `${containerdSocket}.ttrpc`;
  if (Buffer.byteLength(longest) > MAX_SOCKET_PATH) {
    throw new Error(`startDockerd: ${dir} is too long for UNIX sockets (${longest} > ${MAX_SOCKET_PATH} bytes)`);
  }
  await mkdir(join(dir, 'containerd'), { recursive: true, mode: 0o700 });
  await writeFile(join(dir, 'daemon.json'), '{}\n', { mode: 0o600 });
  await writeFile(join(dir, 'containerd', 'config.toml'), containerdConfig(dir), { mode: 0o600 });
  installExitHook();
  const pids: number[] = [];
  const recordPid = (child: { pid?: number | undefined }) => {
    if (child.pid) pids.push(child.pid);
    return writeFile(join(dir, OWNER_FILE), `${JSON.stringify({ pids })}\n`);
  };
  await recordPid(process);

  const containerdLog = join(dir, 'containerd.log');
  const dockerdLog = join(dir, 'dockerd.log');
  let containerd: ChildProcess | undefined;
  let dockerd: ChildProcess | undefined;
  let stopping: Promise<void> | undefined;

  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      if (dockerd && !exited(dockerd)) {
        // Containers whose PID 1 ignores SIGTERM would each hold shutdown up for 10 s.
        await killAllContainers(socketPath).catch(() => undefined);
        await terminate(dockerd, STOP_TIMEOUT_MS);
      }
      await removeLeftoverContainers(dir);
      if (containerd) await terminate(containerd, 10_000);
      await killOrphanedShims(containerdSocket);
      if (dockerd) daemons.delete(dockerd);
      if (containerd) daemons.delete(containerd);
      await removeDir(dir);
    })());

  try {
    const started = Date.now();
    containerd = spawnLogged('containerd', ['--config', join(dir, 'containerd', 'config.toml')], containerdLog);
    daemons.add(containerd);
    await recordPid(containerd);
    await waitUntil(
      'containerd',
      async () => (await readdir(join(dir, 'containerd')).catch(() => [] as string[])).includes('containerd.sock'),
      containerd,
      READY_TIMEOUT_MS,
    ).catch(async (error: Error) => {
      throw new Error(`${error.message}\n--- ${containerdLog} (tail) ---\n${await logTail(containerdLog)}`);
    });

    dockerd = spawnLogged(
      'dockerd',
      [
        '--host', `unix://${socketPath}`,
        '--data-root', join(dir, 'data'),
        '--exec-root', join(dir, 'exec'),
        '--pidfile', join(dir, 'pid'),
        '--config-file', join(dir, 'daemon.json'),
        '--containerd', containerdSocket,
        '--storage-driver', 'vfs',
        '--iptables=false',
        '--ip-forward=false',
        '--ip-masq=false',
        '--bridge=none',
      ],
      dockerdLog,
    );
    daemons.add(dockerd);
    await recordPid(dockerd);
    const remaining = Math.max(1_000, READY_TIMEOUT_MS - (Date.now() - started));
    await waitUntil(
      'dockerd',
      async () => {
        const res = await request(socketPath, 'GET', '/_ping', 2_000);
        return res.status === 200 && res.body === 'OK';
      },
      dockerd,
      remaining,
    ).catch(async (error: Error) => {
      throw new Error(`${error.message}\n--- ${dockerdLog} (tail) ---\n${await logTail(dockerdLog)}`);
    });
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }

  return { host: `unix://${socketPath}`, socketPath, dir, stop };
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Removes DIRs left by runs that died without stop() (a test runner killed by SIGTERM exits without its
 * teardown): only ours (OWNER_FILE), and only when neither their creator nor their daemons are alive.
 */
async function sweepStaleDirs(): Promise<void> {
  const base = DIR_PREFIX.slice(0, DIR_PREFIX.lastIndexOf('/'));
  const prefix = DIR_PREFIX.slice(base.length + 1);
  for (const name of await readdir(base).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue;
    const dir = join(base, name);
    let pids: unknown;
    try {
      pids = (JSON.parse(await readFile(join(dir, OWNER_FILE), 'utf8')) as { pids?: unknown }).pids;
    } catch {
      continue; // not ours, or still being created
    }
    if (!Array.isArray(pids) || pids.some((pid) => typeof pid !== 'number' || alive(pid))) continue;
    await removeDir(dir).catch(() => undefined);
  }
}

async function killAllContainers(socketPath: string): Promise<void> {
  const res = await request(socketPath, 'GET', '/containers/json', 5_000);
  if (res.status !== 200) return;
  const ids = (JSON.parse(res.body) as Array<{ Id: string }>).map((c) => c.Id);
  await Promise.all(ids.map((id) => request(socketPath, 'POST', `/containers/${id}/kill`, 5_000).catch(() => undefined)));
}

/** Containers runc still knows about after dockerd is gone (it was SIGKILLed, say). */
async function removeLeftoverContainers(dir: string): Promise<void> {
  const runcRoot = join(dir, 'exec', 'runtime-runc', 'moby');
  const ids = await readdir(runcRoot).catch(() => [] as string[]);
  for (const id of ids) {
    spawnSync('runc', ['--root', runcRoot, 'delete', '--force', id], { stdio: 'ignore', env: daemonEnv(), timeout: 10_000 });
  }
}

async function removeDir(dir: string): Promise<void> {
  // dockerd bind-mounts its data root onto itself and normally undoes it; a killed daemon leaves it behind.
  for (const mp of mountPointsUnder(dir, await readFile('/proc/self/mountinfo', 'utf8'))) {
    const result = spawnSync('umount', [mp], { stdio: 'ignore' });
    if (result.status !== 0) spawnSync('umount', ['--lazy', mp], { stdio: 'ignore' });
  }
  await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
}
