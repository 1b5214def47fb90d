/**
 * Preloaded into the Defender (`NODE_OPTIONS=--import …/cpu-profile-preload.js`, since Node refuses --cpu-prof in
 * NODE_OPTIONS) by `bench:defender --profile DIR`: profiles the whole process with the inspector and writes
 * DIR/defender-<pid>-<thread>.cpuprofile for each thread when it exits (thread 1 is the Defender's, see
 * defender/defender-thread.ts; open it in Chrome DevTools or speedscope).
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';

const dir = process.env.DRAWBRIDGE_CPU_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 100 }); // µs
  session.post('Profiler.start');
  process.on('exit', () => {
    // The main thread's inspector session answers synchronously, so this works inside 'exit'.
    session.post('Profiler.stop', (err, result) => {
      if (!err) writeFileSync(join(dir, `defender-${process.pid}-${threadId}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
