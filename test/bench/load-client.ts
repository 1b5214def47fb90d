/**
 * The benchmark's load generator, run as its own process (`node load-client.js '<job JSON>'`, result as JSON on
 * stdout) so it never shares an event loop with what it measures. The same code drives every target: plain HTTP
 * on dockerd's UNIX socket, or mTLS on a TCP port (Defender, HAProxy).
 *
 * - `rps`: N keep-alive connections, each with one request in flight (no pipelining); one request buffer is
 *   written over and over, responses are framed by ResponseReader without copying bodies. Requests sent after
 *   the warm-up and answered before the end are counted, their latency kept in a preallocated array.
 * - `stream`: one request, the body counted and discarded; MB/s from the request write to the last byte. A target
 *   that sends nothing for 60 s fails the job (HAProxy 2.6 once stalled for good in the middle of a 1 GiB archive).
 *   With `uploadBytes`, the request is `docker cp`'s upload instead: a PUT of a tar holding one file of that size,
 *   sent chunked as the docker CLI sends it; MB/s from the request's first byte to the answer.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { tarHeader } from '../support/tar.js';
import { ResponseReader } from './http-response.js';

const STREAM_STALL_MS = 60_000;

export type Target =
  | { readonly kind: 'unix'; readonly socketPath: string }
  /** PEM file paths for the client certificate, its key and the CA the server must chain to. */
  | { readonly kind: 'tls'; readonly port: number; readonly ca: string; readonly cert: string; readonly key: string };

export interface RpsJob {
  readonly mode: 'rps';
  readonly target: Target;
  readonly path: string;
  readonly connections: number;
  readonly warmupMs: number;
  readonly durationMs: number;
}

export interface StreamJob {
  readonly mode: 'stream';
  readonly target: Target;
  readonly path: string;
  /** Upload a tar with one file of this many bytes (PUT, chunked) instead of downloading. */
  readonly uploadBytes?: number;
}

export interface RpsResult {
  readonly completed: number;
  /** Every response, warm-up and stragglers included (for CPU time per request). */
  readonly total: number;
  /** Responses that were not 2xx, and connections that failed. */
  readonly errors: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** CPU time of the load generator itself during the whole job. */
  readonly clientCpuMs: number;
  readonly tls: string | null;
}

export interface StreamResult {
  readonly status: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly mbPerS: number;
  readonly clientCpuMs: number;
  readonly tls: string | null;
}

const MAX_SAMPLES = 4_000_000;

function open(target: Target): Promise<Socket> {
  return new Promise((resolve, reject) => {
    let socket: Socket;
    if (target.kind === 'unix') {
      socket = netConnect(target.socketPath, () => resolve(socket));
    } else {
      socket = tlsConnect(
        { host: '127.0.0.1', port: target.port, ca: readFileSync(target.ca), cert: readFileSync(target.cert), key: readFileSync(target.key) },
        () => resolve(socket),
      );
    }
    socket.setNoDelay(true);
    socket.once('error', reject);
  });
}

function tlsInfo(socket: Socket): string | null {
  const tls = socket as TLSSocket;
  if (typeof tls.getCipher !== 'function') return null;
  return `${tls.getProtocol() ?? '?'} ${tls.getCipher()?.name ?? '?'}`;
}

function requestBuffer(target: Target, path: string): Buffer {
  const host = target.kind === 'unix' ? 'docker' : `127.0.0.1:${target.port}`;
  return Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: drawbridge-bench\r\n\r\n`, 'latin1');
}

/** Writes `docker cp`'s upload: a tar of one file of `bytes` random-looking bytes, in 1 MiB chunks. */
async function sendUpload(socket: Socket, target: Target, path: string, bytes: number): Promise<number> {
  const host = target.kind === 'unix' ? 'docker' : `127.0.0.1:${target.port}`;
  socket.write(`PUT ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: drawbridge-bench\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n`, 'latin1');
  const block = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < block.length; i++) block[i] = (i * 7919 + (i >> 11)) & 0xff;
  const chunk = (data: Buffer): boolean => {
    socket.write(`${data.length.toString(16)}\r\n`, 'latin1');
    socket.write(data);
    return socket.write('\r\n', 'latin1');
  };
  chunk(tarHeader('upload.bin', bytes));
  for (let sent = 0; sent < bytes; ) {
    const n = Math.min(block.length, bytes - sent);
    sent += n;
    if (!chunk(n === block.length ? block : block.subarray(0, n))) await new Promise((resolve) => socket.once('drain', resolve));
  }
  chunk(Buffer.alloc((512 - (bytes % 512)) % 512 + 1024)); // padding, then the two empty blocks that end a tar
  socket.write('0\r\n\r\n', 'latin1');
  return 512 + bytes;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function runRps(job: RpsJob): Promise<RpsResult> {
  const cpuStart = process.cpuUsage();
  const request = requestBuffer(job.target, job.path);
  const sockets = await Promise.all(Array.from({ length: job.connections }, () => open(job.target)));
  const tls = tlsInfo(sockets[0]!);
  const latencies = new Float64Array(MAX_SAMPLES);
  let samples = 0;
  let completed = 0;
  let total = 0;
  let errors = 0;
  const start = performance.now();
  const measureFrom = start + job.warmupMs;
  const measureTo = measureFrom + job.durationMs;

  await Promise.all(
    sockets.map(
      (socket) =>
        new Promise<void>((resolve) => {
          let sentAt = 0;
          const send = (): void => {
            sentAt = performance.now();
            socket.write(request);
          };
          const reader = new ResponseReader((status) => {
            const now = performance.now();
            total++;
            if (status < 200 || status > 299) errors++;
            else if (sentAt >= measureFrom && now <= measureTo) {
              completed++;
              if (samples < MAX_SAMPLES) latencies[samples++] = now - sentAt;
            }
            if (now < measureTo) send();
            else {
              socket.end();
              resolve();
            }
          });
          socket.on('data', (chunk: Buffer) => reader.push(chunk));
          const fail = (): void => {
            if (performance.now() < measureTo) errors++;
            resolve();
          };
          socket.on('error', fail).on('close', fail);
          send();
        }),
    ),
  );
  for (const s of sockets) s.destroy();
  const sorted = latencies.subarray(0, samples).sort();
  const cpu = process.cpuUsage(cpuStart);
  return {
    completed,
    total,
    errors,
    rps: completed / (job.durationMs / 1000),
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: samples ? sorted[samples - 1]! : NaN,
    clientCpuMs: (cpu.user + cpu.system) / 1000,
    tls,
  };
}

async function runStream(job: StreamJob): Promise<StreamResult> {
  const cpuStart = process.cpuUsage();
  const socket = await open(job.target);
  const tls = tlsInfo(socket);
  const started = performance.now();
  let uploaded = 0;
  const { status, bytes } = await new Promise<{ status: number; bytes: number }>((resolve, reject) => {
    const reader = new ResponseReader((s, b) => resolve({ status: s, bytes: job.uploadBytes === undefined ? b : uploaded }));
    let received = 0;
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      reader.push(chunk);
    });
    socket.setTimeout(STREAM_STALL_MS, () => reject(new Error(`stalled: nothing for ${STREAM_STALL_MS / 1000} s after ${received} bytes`)));
    socket.on('error', reject).on('close', () => {
      reader.end();
      reject(new Error('the connection closed before the response ended'));
    });
    if (job.uploadBytes === undefined) socket.write(requestBuffer(job.target, job.path));
    else sendUpload(socket, job.target, job.path, job.uploadBytes).then((n) => (uploaded = n), reject);
  });
  const seconds = (performance.now() - started) / 1000;
  socket.destroy();
  const cpu = process.cpuUsage(cpuStart);
  return { status, bytes, seconds, mbPerS: bytes / 1e6 / seconds, clientCpuMs: (cpu.user + cpu.system) / 1000, tls };
}

const SELF = fileURLToPath(import.meta.url);

/** Runs a job in a fresh load-generator process; resolves with its result. */
export function runJob(job: RpsJob): Promise<RpsResult>;
export function runJob(job: StreamJob): Promise<StreamResult>;
export function runJob(job: RpsJob | StreamJob): Promise<RpsResult | StreamResult> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.NODE_OPTIONS; // never profile the load generator along with the Defender
    const child = spawn(process.execPath, [SELF, JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) resolve(JSON.parse(out) as RpsResult | StreamResult);
      else reject(new Error(`load client failed (${code ?? signal}) on ${job.mode} ${job.path}:\n${err.trim()}`));
    });
  });
}

if (process.argv[1] === SELF) {
  const job = JSON.parse(process.argv[2] ?? '{}') as RpsJob | StreamJob;
  (job.mode === 'rps' ? runRps(job) : runStream(job)).then(
    (result) => {
      process.stdout.write(JSON.stringify(result));
      process.exit(0);
    },
    (error: Error) => {
      process.stderr.write(`${error.stack ?? error.message}\n`);
      process.exit(1);
    },
  );
}
