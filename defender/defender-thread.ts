/**
 * The Defender's thread: what `drawbridge defender …` runs (index.ts starts it with worker-thread.ts, sized there).
 * It parses the options, starts the Defender and stops it gracefully when the process gets SIGTERM or SIGINT.
 * Exit codes: 0 (stopped, or --help), 2 (a configuration or enrolment problem, printed), 1 (a failed shutdown).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { setDefaultHighWaterMark } from 'node:stream';
import { DrawbridgeError } from '../shared/errors/drawbridge-error.js';
import { DEFENDER_USAGE, parseDefenderConfig } from './config.js';
import { startDefender, type DefenderThreadData, type RunningDefender } from './index.js';
import { stderrLogger } from './log.js';
import type { StopMessage } from './worker-thread.js';

async function serveDefender(argv: readonly string[]): Promise<number> {
  // The Defender is a proxy: with Node's 16 KiB default, every 32 KiB chunk dockerd streams (docker cp, save,
  // export, logs) filled the client socket's buffer, paused dockerd's socket and resumed it a tick later — three
  // epoll calls and an extra TLS write per chunk. Backpressure still applies, at 256 KiB per stream.
  setDefaultHighWaterMark(false, 256 * 1024);
  const log = stderrLogger();
  let running: RunningDefender;
  try {
    const config = parseDefenderConfig(argv);
    if (config === null) {
      process.stdout.write(DEFENDER_USAGE);
      return 0;
    }
    running = await startDefender(config, log);
  } catch (e) {
    if (e instanceof DrawbridgeError) {
      process.stderr.write(`drawbridge defender: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  return new Promise((resolve) => {
    const onMessage = ({ stop }: StopMessage): void => {
      parentPort!.off('message', onMessage);
      log.info('shutting down', { signal: stop });
      running.stop().then(() => resolve(0), () => resolve(1));
    };
    parentPort!.on('message', onMessage);
  });
}

if (parentPort === null) throw new Error('defender-thread.js runs as a worker thread (drawbridge defender)');
serveDefender((workerData as DefenderThreadData).argv).then((code) => {
  process.exitCode = code;
});
