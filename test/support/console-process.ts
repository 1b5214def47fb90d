/**
 * Runs the real `drawbridge console` binary for end-to-end tests, on a fresh data directory and master key, with
 * a known admin password, and gives a small JSON client for its API (pinned to the Console's CA).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { DRAWBRIDGE_BIN } from './defender-process.js';

export const ADMIN_PASSWORD = 'correct-horse-battery-staple';

export interface ApiResponse<T = unknown> {
  readonly status: number;
  readonly body: T;
  readonly text: string;
  readonly headers: Record<string, string | string[] | undefined>;
}

export interface ConsoleClient {
  call<T = any>(method: string, path: string, opts?: { token?: string; json?: unknown; text?: string; contentType?: string; headers?: Record<string, string> }): Promise<ApiResponse<T>>;
  /** Logs in and returns the bearer token. */
  login(username: string, password: string): Promise<string>;
  /** POST /api/v1/users as `token`; the user as the Console answers it, or an error naming the answer. */
  createUser(token: string, user: { name: string; password: string; role?: string; groups?: readonly string[] }): Promise<any>;
}

export interface ConsoleProcess extends ConsoleClient {
  readonly dir: string;
  readonly port: number;
  readonly url: string;
  readonly child: ChildProcess;
  /** The Console's CA certificate (PEM), fetched once at start through the API. */
  readonly caPem: string;
  adminToken(): Promise<string>;
  log(): string;
  /** SIGTERM; resolves to the exit code. Keeps the data directory unless `remove`. */
  stop(opts?: { remove?: boolean }): Promise<number | null>;
  /** Starts the same Console again on the same data directory and port (after stop). */
  restart(): Promise<ConsoleProcess>;
}

export function consoleClient(url: string, ca?: string): ConsoleClient {
  const client: ConsoleClient = {
    call(method, path, opts = {}) {
      return new Promise((resolve, reject) => {
        const body = opts.json !== undefined ? JSON.stringify(opts.json) : opts.text;
        const headers: Record<string, string> = { ...opts.headers };
        if (opts.token) headers.authorization = `Bearer ${opts.token}`;
        if (body !== undefined) headers['content-type'] = opts.contentType ?? (opts.json !== undefined ? 'application/json' : 'text/yaml');
        const req = request(new URL(path, url), { method, headers, ...(ca ? { ca } : { rejectUnauthorized: false }) }, (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => {
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : null;
            } catch {
              /* not JSON */
            }
            resolve({ status: res.statusCode ?? 0, body: parsed as never, text, headers: res.headers });
          });
        });
        req.on('error', reject);
        req.end(body);
      });
    },
    async login(username, password) {
      const r = await client.call<{ token: string }>('POST', '/api/v1/auth/login', { json: { username, password } });
      if (r.status !== 200) throw new Error(`login as ${username} failed: ${r.status} ${r.text}`);
      return r.body.token;
    },
    async createUser(token, user) {
      const r = await client.call('POST', '/api/v1/users', { token, json: user });
      if (r.status !== 201) throw new Error(`creating user ${user.name} failed: ${r.status} ${r.text}`);
      return r.body;
    },
  };
  return client;
}

/** A port that was free a moment ago (the Console needs to know its public URL, port included, before it starts). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function startConsoleProcess(opts: { dir?: string; port?: number; args?: readonly string[] } = {}): Promise<ConsoleProcess> {
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'drawbridge-console-')));
  const wantedPort = opts.port ?? (await freePort());
  const child = spawn(
    process.execPath,
    [DRAWBRIDGE_BIN, 'console', '--listen', `127.0.0.1:${wantedPort}`, '--data', join(dir, 'data'), '--master-key-file', join(dir, 'master.key'), '--public-url', `https://127.0.0.1:${wantedPort}`, ...(opts.args ?? [])],
    { stdio: ['ignore', 'inherit', 'pipe'], env: { ...process.env, DRAWBRIDGE_ADMIN_PASSWORD: ADMIN_PASSWORD } },
  );
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const port = await new Promise<number>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`the Console did not start in 20 s:\n${stderr}`)), 20_000);
    const onData = (): void => {
      const m = /listening listen=\S+:(\d+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        child.stderr!.off('data', onData);
        res(Number(m[1]));
      }
    };
    child.stderr!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      rej(new Error(`the Console exited with ${code} before listening:\n${stderr}`));
    });
  });
  const url = `https://127.0.0.1:${port}`;
  const bootstrap = consoleClient(url);
  const caRes = await bootstrap.call<{ pem: string } | string>('GET', '/api/v1/ca');
  const caPem = caRes.status === 200 ? (typeof caRes.body === 'string' ? caRes.body : caRes.body.pem) : '';
  const client = consoleClient(url, caPem || undefined);
  let token: string | null = null;
  const self: ConsoleProcess = {
    ...client,
    dir,
    port,
    url,
    child,
    caPem,
    async adminToken() {
      token ??= await client.login('admin', ADMIN_PASSWORD);
      return token;
    },
    log: () => stderr,
    async stop(stopOpts = {}) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const code = await exited;
      if (stopOpts.remove) await rm(dir, { recursive: true, force: true });
      return code;
    },
    restart: () => startConsoleProcess({ ...opts, dir, port }),
  };
  return self;
}

/** A Console for a whole test file: started in its beforeAll (with the admin's token), stopped in its afterAll. */
export function consoleForFile(): { readonly proc: ConsoleProcess; readonly admin: string } {
  let proc: ConsoleProcess | undefined;
  let admin = '';
  beforeAll(async () => {
    proc = await startConsoleProcess();
    admin = await proc.adminToken();
  });
  afterAll(async () => {
    await proc?.stop({ remove: true });
  });
  return {
    get proc() {
      if (!proc) throw new Error('the Console starts in beforeAll');
      return proc;
    },
    get admin() {
      return admin;
    },
  };
}

/** Creates user `name` with `role` (as the admin, `adminToken`) and returns their bearer token. */
export async function signedInAs(c: ConsoleClient, adminToken: string, name: string, role: string): Promise<string> {
  const password = `${name}-password-123`;
  await c.createUser(adminToken, { name, password, role });
  return c.login(name, password);
}
