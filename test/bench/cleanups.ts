/**
 * What a benchmark started, undone in reverse order: at the end, on error and on Ctrl-C/SIGTERM (then the process
 * exits 130/143 once everything is gone). Every benchmark registers its daemons, processes and temp dirs here.
 */
const steps: Array<() => Promise<unknown>> = [];
let running: Promise<void> | undefined;

/** Registers an undo step (run last-in, first-out). */
export function onCleanup(step: () => Promise<unknown>): void {
  steps.push(step);
}

/** Runs every step once; later calls get the same promise. */
export function cleanup(): Promise<void> {
  running ??= (async () => {
    for (let f = steps.pop(); f; f = steps.pop()) await f().catch((e: Error) => console.error(`bench: cleanup: ${e.message}`));
  })();
  return running;
}

/** Whether cleaning up has started (after Ctrl-C, errors of half-stopped processes are expected). */
export function cleaningUp(): boolean {
  return running !== undefined;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    console.error(`bench: ${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  });
}
