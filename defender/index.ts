/**
 * Public entry of the Defender: `drawbridge defender [options]`.
 *
 * - File mode: refuses to start without TLS material or with a missing/broken rules file (clear message, exit 2);
 *   reloads the rules file when it changes, and a broken edit keeps the last good rules.
 * - Console mode (`--console`): enrols, then takes rules, revocations and its listener from the Console
 *   (console-mode.ts); a configuration or enrolment problem is also exit 2.
 * - SIGTERM/SIGINT: graceful shutdown (see server.ts), exit 0.
 * - It runs in a worker thread of the `drawbridge defender` process (defender-thread.ts).
 */
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { RulesError } from '../shared/policy/access-rules.js';
import type { Policy } from '../shared/policy/evaluate-policy.js';
import { openAuditLog } from './audit-log.js';
import type { DefenderContext } from './authorize-request.js';
import { splitHostPort, type DefenderConfig, type FileModeConfig } from './config.js';
import { startConsoleDefender } from './console-mode.js';
import { dockerUpstream } from './docker-upstream.js';
import { defenderErrors } from './errors.js';
import { stderrLogger, type Logger } from './log.js';
import { DefenderMetrics } from './metrics.js';
import { loadPolicyFile, watchPolicyFile } from './rules-source.js';
import { buildDefender, type DefenderServer } from './server.js';
import { runInWorkerThread } from './worker-thread.js';

export { buildDefender } from './server.js';
export { DOCKER_ENDPOINT, DOCKER_ENDPOINT_FORMS, parseDefenderConfig, type DefenderConfig } from './config.js';

function readTlsFile(label: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw defenderErrors.config(`cannot read ${label} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export interface RunningDefender {
  readonly defender: DefenderServer;
  /** Where it listens now: HOST:PORT (IPv6 in brackets) or a UNIX socket path. */
  address(): string | null;
  stop(): Promise<void>;
}

/** Starts a Defender from a parsed config (used by the CLI and by in-process tools). */
export async function startDefender(config: DefenderConfig, log: Logger = stderrLogger()): Promise<RunningDefender> {
  return config.mode === 'console' ? startConsoleDefender(config, log) : startFileDefender(config, log);
}

async function startFileDefender(config: FileModeConfig, log: Logger): Promise<RunningDefender> {
  let policy: Policy;
  try {
    policy = loadPolicyFile(config.rules);
  } catch (e) {
    if (e instanceof RulesError) throw defenderErrors.config(`the rules file ${config.rules} is invalid:\n${e.message}`);
    throw defenderErrors.config(`cannot read the rules file ${config.rules}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const tls = { ca: readTlsFile('the CA file', config.tlsCa), cert: readTlsFile('the certificate', config.tlsCert), key: readTlsFile('the key', config.tlsKey) };
  const metrics = new DefenderMetrics();
  metrics.rules = policy.rules.length;
  const audit = openAuditLog(config.auditLog, (err) => log.error('cannot write the audit log', { file: config.auditLog, error: err.message }));
  const ctx: DefenderContext = { hostName: config.hostName, maxBody: config.maxBody, audit, metrics, log, policy: () => policy };
  const watcher = watchPolicyFile(
    config.rules,
    (next) => {
      policy = next;
      metrics.rules = next.rules.length;
      metrics.countReload(true);
      log.info('rules reloaded', { file: config.rules, rules: next.rules.length });
    },
    (err) => {
      metrics.countReload(false);
      log.error(`the rules file changed but is invalid; keeping the last good rules:\n${err.message}`, { file: config.rules });
    },
  );
  const upstream = dockerUpstream(config.docker);
  const defender = buildDefender(ctx, upstream, tls);
  const { host, port } = splitHostPort(config.listen);
  let metricsServer: Server | null = null;
  let address: string;
  try {
    address = (await defender.listen({ port, host })).address;
    if (config.metrics) {
      const m = splitHostPort(config.metrics);
      metricsServer = metrics.serve();
      await new Promise<void>((resolve, reject) => metricsServer!.once('error', reject).listen(m.port, m.host, resolve));
    }
  } catch (e) {
    watcher.stop();
    await defender.close(0);
    throw defenderErrors.config(`cannot listen: ${(e as Error).message}`);
  }
  log.info('listening', { listen: address, docker: config.docker, host: config.hostName, rules: policy.rules.length, metrics: config.metrics });
  return {
    defender,
    address: () => address,
    async stop() {
      watcher.stop();
      metricsServer?.close();
      await defender.close(config.shutdownTimeout * 1000);
      await audit.close();
    },
  };
}

/** What the Defender's thread gets from the process (defender-thread.ts). */
export interface DefenderThreadData {
  readonly argv: readonly string[];
}

/**
 * The young generation of the Defender's thread: 96 MiB, i.e. semi-spaces of 32 MiB instead of Node's 16. Measured
 * with 16 keep-alive clients on `/_ping`: with 16 MiB, each scavenge (about one per 12 MB allocated, every 100 ms)
 * found 2 MB still alive and promoted 2 MB more, and took 4–9 ms; with 32 MiB, 50 KB survived, nothing was promoted
 * and scavenges took about 1 ms. p99 latency fell from 11–13 ms to about 5 ms and the Defender's CPU per request
 * by about a quarter. It costs at most 48 MiB more memory.
 */
const DEFENDER_THREAD_LIMITS = { maxYoungGenerationSizeMb: 96 } as const;

/**
 * `drawbridge defender …`: the Defender runs in a worker thread of the process (defender-thread.ts), whose young
 * generation can be sized; the process's exit code is the thread's.
 */
export function runDefender(argv: readonly string[]): Promise<number> {
  const data: DefenderThreadData = { argv: [...argv] };
  return runInWorkerThread(new URL('./defender-thread.js', import.meta.url), data, DEFENDER_THREAD_LIMITS, 'drawbridge defender');
}
