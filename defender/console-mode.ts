/**
 * A Defender managed by a Console (`--console`): enrolment, the policy pushed live, the audit delivered to the
 * Console, and the listener the Console picks.
 *
 * - Never a fallback to allow: with no snapshot yet (first start, Console unreachable, no usable cache) every
 *   request is denied with a message saying so; once it has one, it enforces it (from the encrypted cache after a
 *   restart) until the Console sends the next, however long the Console is away.
 * - The order at start: enrolment (or the saved one) → cache → listener (the cached snapshot's, else the one
 *   from enrolment) → policy stream, heartbeats and audit upload in the background.
 * - Its certificates are renewed before they expire and swapped in live (certificate-renewal.ts): the listeners'
 *   TLS context, the Console link's client certificate, and the policy stream reconnected with it.
 * - The audit goes to the on-disk spool (delivered exactly once to the Console) and, if `--audit-log` is given,
 *   also to that file or stdout.
 */
import { join } from 'node:path';
import type { Server } from 'node:http';
import type { ListenerConfig, PolicySnapshot } from '../shared/wire/defender-console.js';
import { openAuditLog, type AuditLog } from './audit-log.js';
import { openAuditSpool } from './audit-spool.js';
import { startAuditUpload } from './audit-upload.js';
import type { DefenderContext } from './authorize-request.js';
import { DEFENDER_VERSION, splitHostPort, type ConsoleModeConfig } from './config.js';
import { startCertificateRenewal } from './certificate-renewal.js';
import { consoleLink } from './console-link.js';
import { dockerUpstream } from './docker-upstream.js';
import { ensureEnrolment } from './enrolment.js';
import { EnforcedPolicy } from './enforced-policy.js';
import { defenderErrors } from './errors.js';
import { listenerManager, resolveGroup } from './listener.js';
import type { Logger } from './log.js';
import { DefenderMetrics } from './metrics.js';
import { policyCache } from './policy-cache.js';
import { startPolicySync } from './policy-sync.js';
import { startSecrets } from './secrets/start-secrets.js';
import { buildDefender, type DefenderServer } from './server.js';

export interface RunningConsoleDefender {
  readonly defender: DefenderServer;
  readonly hostName: string;
  /** Where it listens now (HOST:PORT or a socket path). */
  address(): string | null;
  stop(): Promise<void>;
}

function teeAudit(a: AuditLog, b: AuditLog): AuditLog {
  return {
    write(event) {
      a.write(event);
      b.write(event);
    },
    async close() {
      await Promise.all([a.close(), b.close()]);
    },
  };
}

export async function startConsoleDefender(config: ConsoleModeConfig, log: Logger): Promise<RunningConsoleDefender> {
  let socketGid: number | undefined;
  if (config.socketGroup !== undefined) {
    try {
      socketGid = resolveGroup(config.socketGroup);
    } catch (e) {
      throw defenderErrors.config(`--socket-group: ${(e as Error).message}`);
    }
  }
  const enrolment = await ensureEnrolment(config, log);
  const metrics = new DefenderMetrics();
  const enforced = new EnforcedPolicy();
  const cache = policyCache(config.state, (m) => log.warn(m));
  const cached = cache.load();
  if (cached) {
    try {
      enforced.apply(cached);
      metrics.rules = cached.rules.length;
      log.info('enforcing the cached policy until the Console sends a newer one', { version: cached.version, rules: cached.rules.length });
    } catch (e) {
      log.warn('ignoring the policy cache: it cannot be compiled', { error: (e as Error).message });
    }
  }
  if (enforced.policy === null) log.warn('no policy yet: every request is denied until the Console sends one');

  const spool = openAuditSpool(join(config.state, 'audit'), { onError: (m) => log.error(m) });
  const local = config.auditLog ? openAuditLog(config.auditLog, (err) => log.error('cannot write the audit log', { file: config.auditLog, error: err.message })) : null;
  const audit = local ? teeAudit(spool, local) : spool;
  const upstream = dockerUpstream(config.docker);
  const secrets = startSecrets({ config, hostName: enrolment.hostName, upstream, log, initial: enforced.snapshot });
  const ctx: DefenderContext = {
    hostName: enrolment.hostName,
    maxBody: config.maxBody,
    audit,
    metrics,
    log,
    policy: () => enforced.policy,
    isRevoked: (serial) => enforced.isRevoked(serial),
    secrets: secrets.guard,
  };
  const defender = buildDefender(ctx, upstream, { ca: enrolment.ca, cert: enrolment.serverCert, key: enrolment.serverKey });
  const listeners = listenerManager(defender, log, { socketGid });
  let metricsServer: Server | null = null;
  await listeners.apply(enforced.listener ?? enrolment.listener); // on failure: logged, retried every heartbeat tick
  try {
    if (config.metrics) {
      const m = splitHostPort(config.metrics);
      metricsServer = metrics.serve();
      await new Promise<void>((resolve, reject) => metricsServer!.once('error', reject).listen(m.port, m.host, resolve));
    }
  } catch (e) {
    secrets.stop();
    await defender.close(0);
    await audit.close();
    throw defenderErrors.config(`cannot serve metrics: ${(e as Error).message}`);
  }
  log.info('running with the Console', { console: config.console, host: enrolment.hostName, docker: config.docker, version: enforced.version, state: config.state });

  const link = consoleLink(config.console, { ca: enrolment.ca, cert: enrolment.clientCert, key: enrolment.clientKey });
  const upload = startAuditUpload(spool, async (events) => link.send('POST', '/api/v1/defenders/audit', { events }, 30_000), log);
  const apply = async (snapshot: PolicySnapshot): Promise<void> => {
    enforced.apply(snapshot); // atomic: rules and revocations together
    secrets.apply(snapshot);
    metrics.rules = snapshot.rules.length;
    metrics.countReload(true);
    log.info('policy applied', { version: snapshot.version, rules: snapshot.rules.length, revoked: snapshot.revokedSerials.length });
    try {
      cache.save(snapshot);
    } catch (e) {
      log.error('cannot write the policy cache (the policy is enforced, but a restart without the Console would deny everything)', { error: (e as NodeJS.ErrnoException).code ?? (e as Error).message });
    }
    await listeners.apply(snapshot.listener);
  };
  /** The listener in force; a TCP port 0 is reported as the port actually bound. */
  const reportedListener = (): ListenerConfig => {
    const current = listeners.current ?? enrolment.listener;
    return current.type === 'tcp' && /:0$/.test(current.address) && listeners.address ? { type: 'tcp', address: listeners.address } : current;
  };
  const sync = startPolicySync({
    link,
    log,
    version: () => enforced.version,
    apply,
    status: () => ({ version: DEFENDER_VERSION, policyVersion: enforced.version, listener: reportedListener(), auditBacklog: spool.backlog }),
    onConnected: () => upload.nudge(),
    onTick: () => void listeners.retry(),
  });
  const renewal = startCertificateRenewal({
    stateDir: config.state,
    enrolment,
    link,
    log,
    swap(renewed) {
      defender.setTls({ ca: renewed.ca, cert: renewed.serverCert, key: renewed.serverKey });
      link.setClientCertificate(renewed.clientCert, renewed.clientKey);
      sync.reconnect();
    },
  });

  return {
    defender,
    hostName: enrolment.hostName,
    address: () => listeners.address,
    async stop() {
      renewal.stop();
      sync.stop();
      secrets.stop();
      metricsServer?.close();
      await defender.close(config.shutdownTimeout * 1000);
      await upload.stop();
      await audit.close();
    },
  };
}
