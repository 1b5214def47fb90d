/** A yardstick process the benchmark started (HAProxy, the Node TLS pipe): stopped in order, killed if we exit first. */
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Stoppable {
  /** Whether it has exited (or failed to start). */
  exited(): boolean;
  /** SIGTERM, then SIGKILL after 5 s. */
  stop(): Promise<void>;
}

export function stoppable(child: ChildProcess): Stoppable {
  let exited = false;
  child.on('exit', () => (exited = true));
  child.on('error', () => (exited = true));
  const killOnExit = (): void => {
    if (!exited) child.kill('SIGKILL');
  };
  process.on('exit', killOnExit);
  return {
    exited: () => exited,
    async stop() {
      process.off('exit', killOnExit);
      if (exited) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([gone, sleep(5_000).then(() => child.kill('SIGKILL'))]);
    },
  };
}
