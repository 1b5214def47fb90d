/**
 * Small drivers the end-to-end tests share: the Console API as its admin, the docker CLI as one user, and raw
 * mTLS connections to a Defender.
 * Both fail the test with the whole answer when a call that must work does not.
 */
import { expect } from 'vitest';
import type { ApiResponse, ConsoleProcess } from './console-process.js';
import { docker, type DockerResult } from './docker-cli.js';
import { RawTlsClient } from './tls-client.js';

export interface AdminApi {
  api<T = any>(method: string, path: string, json?: unknown): Promise<ApiResponse<T>>;
  /** The call must answer `status` (default 200); its body. */
  apiOk<T = any>(method: string, path: string, json: unknown, status?: number): Promise<T>;
}

/** The Console API as `admin`; `consoleProc` is read at each call (tests restart the Console). */
export function adminApi(consoleProc: () => ConsoleProcess): AdminApi {
  const api = async <T = any>(method: string, path: string, json?: unknown): Promise<ApiResponse<T>> => {
    const c = consoleProc();
    return c.call<T>(method, path, { token: await c.adminToken(), ...(json === undefined ? {} : { json }) });
  };
  return {
    api,
    async apiOk<T = any>(method: string, path: string, json: unknown, status = 200): Promise<T> {
      const r = await api<T>(method, path, json);
      expect(r.status, `${method} ${path}: ${r.text}`).toBe(status);
      return r.body;
    },
  };
}

export interface DockerAs {
  run(args: string[]): Promise<DockerResult>;
  /** The command must exit 0; its stdout. */
  runOk(args: string[]): Promise<string>;
}

/** The real docker CLI with the environment `env()` gives (read at each call). */
export function dockerAs(env: () => NodeJS.ProcessEnv): DockerAs {
  const run = (args: string[]): Promise<DockerResult> => docker(args, { env: env(), timeoutMs: 60_000 });
  return {
    run,
    async runOk(args) {
      const r = await run(args);
      expect(r.code, `docker ${args.join(' ')}\n${r.stderr}`).toBe(0);
      return r.stdout;
    },
  };
}

export interface RawClients {
  /** A new raw mTLS connection to the Defender as `user` (a key of the cert dirs). */
  open(user: string): Promise<RawTlsClient>;
  /** Closes every connection opened (afterAll). */
  destroyAll(): void;
}

/** Raw mTLS connections to a Defender, remembered so a test file can close them all at the end. */
export function rawClients(port: () => number, certDirs: Readonly<Record<string, string>>): RawClients {
  const clients: RawTlsClient[] = [];
  return {
    async open(user) {
      const client = await RawTlsClient.connect(port(), certDirs[user]!);
      clients.push(client);
      return client;
    },
    destroyAll() {
      for (const c of clients.splice(0)) c.destroy();
    },
  };
}
