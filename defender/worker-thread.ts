/**
 * Runs a module in a worker thread of this process, as if it were the process: its exit code becomes the
 * result, SIGTERM and SIGINT reach it as a message, a crash is printed and gives exit code 1.
 *
 * Why a thread at all: V8 sizes an isolate's young generation when the isolate is created, never later
 * (`v8.setFlagsFromString` has no effect by then), and the only ways to size it are a node flag at process
 * start or a worker's `resourceLimits`. The Defender needs a bigger one than Node's default; see defender-thread.ts.
 *
 * - The worker's stdout and stderr are the process's (Node pipes them through this thread).
 * - Each signal is forwarded once; a second one of the same kind gets Node's default action (the process ends
 *   at once), as a process that handles it with `process.once` would.
 * - The worker receives `{ stop: 'SIGTERM' | 'SIGINT' }` on its parentPort.
 */
import { Worker, type ResourceLimits } from 'node:worker_threads';

export type StopSignal = 'SIGTERM' | 'SIGINT';
export interface StopMessage {
  readonly stop: StopSignal;
}

const STOP_SIGNALS: readonly StopSignal[] = ['SIGTERM', 'SIGINT'];

export function runInWorkerThread(entry: URL, workerData: unknown, resourceLimits: ResourceLimits, name: string): Promise<number> {
  const worker = new Worker(entry, { workerData, resourceLimits, name });
  const forwarders = STOP_SIGNALS.map((signal) => {
    const forward = (): void => worker.postMessage({ stop: signal } satisfies StopMessage);
    process.once(signal, forward);
    return [signal, forward] as const;
  });
  let crashed = false;
  return new Promise((resolve) => {
    worker.on('error', (err: Error) => {
      crashed = true;
      process.stderr.write(`${name}: ${err.stack ?? err.message}\n`);
    });
    worker.on('exit', (code: number) => {
      for (const [signal, forward] of forwarders) process.off(signal, forward);
      resolve(crashed && code === 0 ? 1 : code);
    });
  });
}
