import { afterEach, describe, expect, it, vi } from 'vitest';
import { runInWorkerThread } from './worker-thread.js';

/** A worker module given as source (the test runs on TypeScript sources; a worker needs JavaScript). */
const moduleOf = (source: string): URL => new URL(`data:text/javascript,${encodeURIComponent(source)}`);
const IMPORTS = "import { parentPort, workerData, resourceLimits } from 'node:worker_threads';\n";

/** The listener runInWorkerThread added for a signal (called directly: no real signal reaches the test runner). */
function addedListener(signal: NodeJS.Signals, before: readonly Function[]): () => void {
  const added = process.listeners(signal).filter((l) => !before.includes(l));
  expect(added).toHaveLength(1);
  return added[0] as () => void;
}

describe('runInWorkerThread', () => {
  afterEach(() => vi.restoreAllMocks());

  it("resolves with the thread's exit code, and the thread gets its data and resource limits", async () => {
    const code = runInWorkerThread(
      moduleOf(`${IMPORTS}process.exitCode = workerData.base + resourceLimits.maxYoungGenerationSizeMb;`),
      { base: 100 },
      { maxYoungGenerationSizeMb: 24 },
      'test thread',
    );
    expect(await code).toBe(124);
  });

  it.each(['SIGTERM', 'SIGINT'] as const)('forwards %s once as a stop message, then leaves the signal alone', async (signal) => {
    const before = { SIGTERM: process.listeners('SIGTERM'), SIGINT: process.listeners('SIGINT') };
    const code = runInWorkerThread(
      moduleOf(`${IMPORTS}parentPort.once('message', (m) => { process.exitCode = m.stop === 'SIGTERM' ? 15 : 2; });`),
      null,
      {},
      'test thread',
    );
    const forward = addedListener(signal, before[signal]);
    forward();
    expect(await code).toBe(signal === 'SIGTERM' ? 15 : 2);
    // Nothing of the thread stays on the process: a second signal gets Node's default action again.
    expect(process.listeners('SIGTERM')).toEqual(before.SIGTERM);
    expect(process.listeners('SIGINT')).toEqual(before.SIGINT);
  });

  it('a thread that crashes gives exit code 1, its error printed under the given name', async () => {
    const written: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
      written.push(String(s));
      return true;
    });
    const code = await runInWorkerThread(moduleOf("throw new Error('the rules engine caught fire');"), null, {}, 'drawbridge defender');
    expect(code).toBe(1);
    expect(written.join('')).toMatch(/^drawbridge defender: Error: the rules engine caught fire\n/);
  });

  it('a thread that cannot be loaded is a crash too', async () => {
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    expect(await runInWorkerThread(new URL('file:///nonexistent/drawbridge-thread.js'), null, {}, 'test thread')).toBe(1);
  });
});
