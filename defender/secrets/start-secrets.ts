/**
 * Secrets in a Console-managed Defender: the rules and values of the applied snapshot, the in-memory directory
 * for file secrets, their housekeeping (docker events, sweeps, rotation) and the request guard.
 *
 * - The in-memory directory is prepared on the first file secret; when none can be had (cannot mount a tmpfs and
 *   the directory is not on one) that create is refused (fail closed) and the log says why; env secrets still work.
 * - A snapshot with changed secrets rewrites running containers' files; the rules in force change at once.
 */
import type { PolicySnapshot } from '../../shared/wire/defender-console.js';
import type { ConsoleModeConfig } from '../config.js';
import type { DockerUpstream } from '../docker-upstream.js';
import type { Logger } from '../log.js';
import { ContainerSecretDirs } from './container-secret-dirs.js';
import { secretFiles } from './secret-files.js';
import { secretsGuard, type SecretsGuard } from './secrets-guard.js';
import { SecretsInForce } from './secrets-in-force.js';

export interface RunningSecrets {
  readonly guard: SecretsGuard;
  apply(snapshot: PolicySnapshot): void;
  stop(): void;
}

export function startSecrets(opts: { config: ConsoleModeConfig; hostName: string; upstream: DockerUpstream; log: Logger; initial: PolicySnapshot | null }): RunningSecrets {
  const { log } = opts;
  const secrets = new SecretsInForce();
  if (opts.initial) secrets.apply(opts.initial.secrets);
  const files = secretFiles(opts.config.secretsDir, log);
  const dirs = new ContainerSecretDirs(files, secrets, opts.upstream, log);
  dirs.start();
  return {
    guard: secretsGuard({ hostName: opts.hostName, upstream: opts.upstream, secrets, dirs, log }),
    apply(snapshot) {
      if (!secrets.apply(snapshot.secrets)) return;
      log.info('secrets applied', { rules: snapshot.secrets.rules.length, values: snapshot.secrets.values.length });
      dirs.refresh();
    },
    stop() {
      dirs.stop();
      files.release();
    },
  };
}
