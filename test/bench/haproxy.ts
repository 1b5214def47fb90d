/**
 * HAProxy as the benchmark's yardstick: the same job as the Defender without the access control — an mTLS
 * frontend (client certificate required, chained to the same CA) in HTTP mode with keep-alive, forwarding to
 * dockerd's UNIX socket. Logging is off (no `log` line); `nbthread` is explicit (1 = like Node's one event loop).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stoppable } from './child-process.js';

export interface HaproxyOptions {
  /** A directory for its config, PEM bundle and output. */
  readonly dir: string;
  readonly dockerSocket: string;
  /** PEM paths: server certificate, its key, and the CA client certificates must chain to. */
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  readonly threads: number;
}

export interface Haproxy {
  readonly port: number;
  readonly pid: number;
  readonly version: string;
  stop(): Promise<void>;
}

/** `HAProxy version 2.6.12-…`, or null when haproxy is not installed. */
export function haproxyVersion(): string | null {
  const result = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
  if (result.error || result.status !== 0) return null;
  return /version (\S+)/.exec(result.stdout)?.[1] ?? 'unknown';
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

export async function startHaproxy(opts: HaproxyOptions): Promise<Haproxy> {
  const port = await freePort();
  const pem = join(opts.dir, 'haproxy.pem');
  await writeFile(pem, `${await readFile(opts.cert, 'utf8')}${await readFile(opts.key, 'utf8')}`, { mode: 0o600 });
  const config = join(opts.dir, 'haproxy.cfg');
  await writeFile(
    config,
    [
      'global',
      `  nbthread ${opts.threads}`,
      '  maxconn 4096',
      '  ssl-default-bind-options ssl-min-ver TLSv1.2',
      'defaults',
      '  mode http',
      '  option http-keep-alive',
      '  timeout connect 5s',
      '  timeout client 1h',
      '  timeout server 1h',
      '  timeout http-request 60s',
      '  timeout http-keep-alive 65s',
      'frontend drawbridge_bench',
      `  bind 127.0.0.1:${port} ssl crt ${pem} ca-file ${opts.ca} verify required`,
      '  default_backend docker',
      'backend docker',
      `  server docker unix@${opts.dockerSocket}`,
      '',
    ].join('\n'),
  );
  const outFile = join(opts.dir, 'haproxy.out');
  const fd = openSync(outFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    // -db: stay in the foreground; own process group, so a Ctrl-C reaches us and we stop it in order.
    child = spawn('haproxy', ['-db', '-f', config], { stdio: ['ignore', fd, fd], detached: true });
  } finally {
    closeSync(fd);
  }
  const { exited, stop } = stoppable(child);
  const deadline = Date.now() + 10_000;
  while (!(await accepts(port))) {
    if (exited() || Date.now() > deadline) {
      await stop();
      throw new Error(`HAProxy did not start:\n${await readFile(outFile, 'utf8').catch(() => '')}`);
    }
    await sleep(50);
  }
  return { port, pid: child.pid!, version: haproxyVersion() ?? 'unknown', stop };
}
