/**
 * The Defender side of `bench:console`: N policy streams (`GET /api/v1/defenders/policy?since=0`, mTLS with enrolled
 * Defenders' client certificates) held by a process of their own (forked by console.ts), spread over worker threads,
 * so neither the Console nor the process that sends the rule changes shares an event loop with them.
 *
 * - Every snapshot line's arrival is stamped with `nowMs()` (process.hrtime: CLOCK_MONOTONIC, the same clock in every
 *   process and thread of the machine) when its bytes are read, before parsing; heartbeats are ignored.
 * - IPC: parent → {type: 'open', job}; child → {type: 'ready'} once every stream has its first snapshot; parent →
 *   {type: 'collect'}; child → {type: 'result'}; parent → {type: 'close'} (or kills it). The child exits when the
 *   parent goes away, so a crashed benchmark leaves no streams behind.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { request } from 'node:https';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

/** Milliseconds on the machine-wide monotonic clock. */
export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

export interface StreamJob {
  readonly url: string;
  readonly ca: string;
  /** Client certificate and key (PEM) of each enrolled Defender; connection i uses identity i % length. */
  readonly identities: readonly { readonly cert: string; readonly key: string }[];
  readonly connections: number;
  readonly threads: number;
}

export interface StreamResult {
  /** Per connection: [version, arrival ms, version, arrival ms, …] of every snapshot line. */
  readonly arrivals: number[][];
  /** Streams that ended or failed before we closed them. */
  readonly ended: number;
}

interface WorkerJob {
  readonly url: string;
  readonly ca: string;
  readonly identities: StreamJob['identities'];
  /** The connection numbers this thread holds. */
  readonly connections: readonly number[];
}

type Msg = { type: 'open'; job: StreamJob } | { type: 'ready'; streams: number } | { type: 'collect' } | ({ type: 'result' } & StreamResult) | { type: 'close' } | { type: 'error'; message: string };

const CONNECT_CONCURRENCY = 16;

/** One stream: resolves when its first snapshot arrived. */
function openStream(job: WorkerJob, n: number, arrivals: number[], onEnd: () => void): Promise<ClientRequest> {
  const id = job.identities[n % job.identities.length]!;
  return new Promise((resolve, reject) => {
    let over = false;
    const end = (why: string): void => {
      if (over) return;
      over = true;
      reject(new Error(`policy stream ${n} ${why} before its first snapshot`)); // no effect once resolved
      onEnd();
    };
    const req = request(new URL('/api/v1/defenders/policy?since=0', job.url), { method: 'GET', ca: job.ca, cert: id.cert, key: id.key, agent: false }, (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        end(`got HTTP ${res.statusCode}`);
        res.resume();
        return;
      }
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const t = nowMs();
        buffer += chunk;
        for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
          const line = JSON.parse(buffer.slice(0, i)) as { type: string; snapshot?: { version: number } };
          buffer = buffer.slice(i + 1);
          if (line.type !== 'snapshot') continue;
          arrivals.push(line.snapshot!.version, t);
          if (arrivals.length === 2) resolve(req);
        }
      });
      res.on('close', () => end('ended'));
    });
    req.on('error', (e) => end(`failed (${e.message})`));
    req.end();
  });
}

/** A worker thread: holds its share of the streams. */
async function streamWorker(job: WorkerJob): Promise<void> {
  const port = parentPort!;
  const arrivals = job.connections.map(() => [] as number[]);
  const reqs: ClientRequest[] = [];
  let closing = false;
  let ended = 0;
  port.on('message', (m: Msg) => {
    if (m.type === 'collect') port.postMessage({ type: 'result', arrivals, ended } satisfies Msg);
    if (m.type === 'close') {
      closing = true;
      for (const r of reqs) r.destroy();
      port.close();
    }
  });
  try {
    for (let next = 0; next < job.connections.length; ) {
      const batch = job.connections.slice(next, next + CONNECT_CONCURRENCY).map((n, i) => openStream(job, n, arrivals[next + i]!, () => void (closing || ended++)));
      next += batch.length;
      reqs.push(...(await Promise.all(batch)));
    }
    port.postMessage({ type: 'ready', streams: reqs.length } satisfies Msg);
  } catch (e) {
    port.postMessage({ type: 'error', message: (e as Error).message } satisfies Msg);
  }
}

/** The forked process: starts the threads, relays 'ready', 'collect' and 'close'. */
function coordinator(): void {
  const send = (m: Msg): void => void process.send!(m);
  let workers: Worker[] = [];
  const ask = (type: 'ready' | 'result'): Promise<Msg[]> =>
    Promise.all(workers.map((w) => new Promise<Msg>((resolve, reject) => {
      const on = (m: Msg): void => {
        if (m.type === 'error') reject(new Error(m.message));
        else if (m.type === type) {
          w.off('message', on);
          resolve(m);
        }
      };
      w.on('message', on).once('error', reject);
    })));
  process.on('disconnect', () => process.exit(0));
  process.on('message', (m: Msg) => {
    void (async () => {
      if (m.type === 'open') {
        const { job } = m;
        const threads = Math.max(1, Math.min(job.threads, job.connections));
        workers = Array.from({ length: threads }, (_, t) => {
          const connections = Array.from({ length: job.connections }, (_, n) => n).filter((n) => n % threads === t);
          return new Worker(fileURLToPath(import.meta.url), { workerData: { url: job.url, ca: job.ca, identities: job.identities, connections } satisfies WorkerJob });
        });
        const ready = await ask('ready');
        send({ type: 'ready', streams: ready.reduce((n, r) => n + (r as { streams: number }).streams, 0) });
      } else if (m.type === 'collect') {
        const answers = ask('result');
        for (const w of workers) w.postMessage({ type: 'collect' } satisfies Msg);
        const parts = (await answers) as Array<Extract<Msg, { type: 'result' }>>;
        const arrivals: number[][] = Array.from({ length: parts.reduce((n, p) => n + p.arrivals.length, 0) });
        // Worker t holds connections t, t + threads, …: put them back in connection order.
        parts.forEach((p, t) => p.arrivals.forEach((a, i) => (arrivals[t + i * parts.length] = a)));
        send({ type: 'result', arrivals, ended: parts.reduce((n, p) => n + p.ended, 0) });
      } else if (m.type === 'close') {
        for (const w of workers) w.postMessage({ type: 'close' } satisfies Msg);
        await Promise.all(workers.map((w) => new Promise((r) => w.once('exit', r))));
        process.exit(0);
      }
    })().catch((e: Error) => {
      send({ type: 'error', message: e.message });
    });
  });
}

export interface StreamClient {
  readonly pid: number;
  collect(): Promise<StreamResult>;
  close(): Promise<void>;
}

/** Forks the stream process, opens every stream; resolves once each has received its first snapshot. */
export async function startStreamClient(job: StreamJob, timeoutMs = 120_000): Promise<StreamClient> {
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // never profile the client along with the Console
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const reply = <T extends Msg['type']>(type: T): Promise<Extract<Msg, { type: T }>> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the stream client did not answer '${type}' within ${timeoutMs / 1000} s`)), timeoutMs);
      const on = (m: Msg): void => {
        if (m.type !== type && m.type !== 'error') return;
        clearTimeout(timer);
        child.off('message', on);
        if (m.type === 'error') reject(new Error(`stream client: ${m.message}`));
        else resolve(m as Extract<Msg, { type: T }>);
      };
      child.on('message', on);
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`the stream client exited (${child.exitCode ?? child.signalCode}) while waiting for '${type}'`));
      });
    });
  const client: StreamClient = {
    pid: child.pid!,
    async collect() {
      const r = reply('result');
      child.send({ type: 'collect' } satisfies Msg);
      const { arrivals, ended } = await r;
      return { arrivals, ended };
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (child.connected) child.send({ type: 'close' } satisfies Msg);
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
  try {
    const ready = reply('ready');
    child.send({ type: 'open', job } satisfies Msg);
    await ready;
  } catch (e) {
    await client.close();
    throw e;
  }
  return client;
}

if (!isMainThread && (workerData as WorkerJob | null)?.connections) void streamWorker(workerData as WorkerJob);
else if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url) && process.send) coordinator();
