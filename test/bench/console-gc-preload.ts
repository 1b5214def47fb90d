/**
 * Preloaded into the Console by `bench:console` (`NODE_OPTIONS=--import …/console-gc-preload.js`): on SIGUSR2 it runs
 * a full garbage collection, then writes `process.memoryUsage()` as JSON to $DRAWBRIDGE_BENCH_MEMORY_FILE, so memory
 * figures are taken after a collection rather than wherever V8's collector happens to be. Does nothing else.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const file = process.env.DRAWBRIDGE_BENCH_MEMORY_FILE;
if (file) {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  process.on('SIGUSR2', () => {
    gc();
    gc(); // a second pass frees what the first one's finalizers released
    writeFileSync(`${file}.tmp`, JSON.stringify(process.memoryUsage()));
    renameSync(`${file}.tmp`, file);
  });
}
