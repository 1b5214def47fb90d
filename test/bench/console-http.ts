/**
 * Small measuring tools for `bench:console`: a keep-alive HTTPS JSON client (one `https.Agent`, so sequential calls
 * reuse one connection), percentiles, and the Console process's CPU time and resident memory from /proc.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { processCpuMs } from './report.js';

export interface Timed {
  readonly status: number;
  readonly text: string;
  /** From the request's start to its response's last byte. */
  readonly ms: number;
  /** Whether it went over a connection used before (keep-alive). */
  readonly reused: boolean;
}

export interface KeepAliveClient {
  call(method: string, path: string, opts?: { token?: string; json?: unknown }): Promise<Timed>;
  close(): void;
}

/** At most `sockets` keep-alive connections to `url`, trusting `ca`. */
export function keepAliveClient(url: string, ca: string, sockets: number): KeepAliveClient {
  const agent = new Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets, ca });
  return {
    call(method, path, opts = {}) {
      return new Promise((resolve, reject) => {
        const body = opts.json !== undefined ? JSON.stringify(opts.json) : undefined;
        const headers: Record<string, string> = {};
        if (opts.token) headers.authorization = `Bearer ${opts.token}`;
        if (body !== undefined) headers['content-type'] = 'application/json';
        const started = performance.now();
        const req = request(new URL(path, url), { method, headers, agent }, (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => {
            resolve({ status: res.statusCode ?? 0, text, ms: performance.now() - started, reused: req.reusedSocket });
          });
        });
        req.on('error', reject);
        req.end(body);
      });
    },
    close: () => agent.destroy(),
  };
}

/** Nearest-rank percentile of an ascending list. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const ascending = (values: readonly number[]): number[] => [...values].sort((a, b) => a - b);

/**
 * CPU time of every thread of a process in ms, with ns resolution from /proc/<pid>/task/<tid>/schedstat (WebCrypto
 * signs on libuv's thread pool, so the main thread alone would undercount); /proc/<pid>/stat ticks otherwise.
 * Threads that exited in between are lost, which is why this is read around phases, not across the run.
 */
export function cpuMs(pid: number): number {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        /* the thread ended */
      }
    }
    return ns / 1e6;
  } catch {
    return processCpuMs(pid);
  }
}

/** VmRSS of a process in MB (NaN when it is gone). */
export function rssMb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Memory {
  /** VmRSS from /proc after the collection. */
  readonly rssMb: number;
  readonly heapUsedMb: number;
  /** Buffers and other memory outside the JS heap (process.memoryUsage().external). */
  readonly externalMb: number;
}

/**
 * The Console's memory after a full GC: SIGUSR2 makes console-gc-preload.js collect and write process.memoryUsage()
 * to `file`. Only for a Console started with that preload (SIGUSR2 would otherwise end it).
 */
export async function memoryAfterGc(pid: number, file: string): Promise<Memory> {
  rmSync(file, { force: true });
  process.kill(pid, 'SIGUSR2');
  for (let waited = 0; !existsSync(file); waited += 20) {
    if (waited > 5000) throw new Error('the Console did not write its memory figures within 5 s (is console-gc-preload.js loaded?)');
    await sleep(20);
  }
  const m = JSON.parse(readFileSync(file, 'utf8')) as NodeJS.MemoryUsage;
  return { rssMb: rssMb(pid), heapUsedMb: m.heapUsed / 2 ** 20, externalMb: m.external / 2 ** 20 };
}
