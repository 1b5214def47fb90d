/**
 * The Defender the docker-CLI end-to-end tests (test/e2e/defender-cli-*.test.ts) talk to: the real binary on host
 * `dev-a`, one set of rules, three users, and a way to read exactly the audit lines one CLI command caused.
 *
 * - alice (OU=ops) may do everything on dev-*; bruce (OU=devs) may only read there, the rest is denied by the
 *   named rule `devs-read-only`; carol (no OU) matches no rule and meets the default deny-all rule.
 * - The two `prod-*` rules come first and must never apply on dev-a: one would deny alice everything, the other
 *   would let bruce do anything. A host-matching mistake therefore flips the outcome of many tests.
 * - `auditDuring(fn)`: before and after `fn`, one marker request (user `audit-marker`, a path nobody else uses,
 *   denied by the default rule so it never reaches dockerd) goes through the Defender. A marker's audit line is
 *   written after the lines of every request decided before it (one stream, written in order), so the lines
 *   between the two markers are exactly the ones `fn` caused — no sleeping, no guessing.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDefenderProcess, type DefenderProcess } from './defender-process.js';

export const CLI_HOST_NAME = 'dev-a';

/** Actions bruce may run: what `docker version`, `ps`, `inspect`, `network ls`, `images`, `volume ls` need. */
export const DEVS_READ_ACTIONS = [
  'docker_ping', 'docker_version', 'docker_info', 'container_list', 'container_inspect', 'image_list', 'image_inspect',
  'network_list', 'network_inspect', 'volume_list', 'volume_inspect',
] as const;

export const CLI_RULES = `rules:
  - name: prod-lockdown
    effect: deny
    hosts: ['prod-*']
  - name: prod-devs-everything
    effect: allow
    groups: [devs]
    hosts: ['prod-*']
  - name: ops-on-dev
    effect: allow
    groups: [ops]
    hosts: ['dev-*']
  - name: devs-read
    effect: allow
    groups: [devs]
    hosts: ['dev-*']
    actions: [${DEVS_READ_ACTIONS.join(', ')}]
  - name: devs-read-only
    effect: deny
    groups: [devs]
    hosts: ['dev-*']
`;

export type AuditLine = Record<string, unknown>;

export interface CliDefender {
  readonly dp: DefenderProcess;
  /** Certificate directories (DOCKER_CERT_PATH) per user. */
  readonly certs: { readonly alice: string; readonly bruce: string; readonly carol: string };
  /** The docker CLI's environment for a user. */
  env(user: 'alice' | 'bruce' | 'carol', extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  /** Runs `fn`; returns its result and the audit lines the Defender wrote meanwhile (marker excluded). */
  auditDuring<T>(fn: () => Promise<T>): Promise<{ result: T; lines: AuditLine[] }>;
  stop(): Promise<void>;
}

function markerRequest(port: number, certDir: string, files: { ca: Buffer; cert: Buffer; key: Buffer }, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', agent: false, timeout: 10_000, ...files }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error(`audit marker ${path} (${certDir}) timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export async function startCliDefender(dockerHost: string): Promise<CliDefender> {
  const dp = await startDefenderProcess({ dockerHost, rules: CLI_RULES, hostName: CLI_HOST_NAME });
  try {
    const certs = {
      alice: await dp.certDir({ user: 'alice', groups: ['ops'] }, { name: 'alice' }),
      bruce: await dp.certDir({ user: 'bruce', groups: ['devs'] }, { name: 'bruce' }),
      carol: await dp.certDir({ user: 'carol', groups: [] }, { name: 'carol' }),
    };
    const markerDir = await dp.certDir({ user: 'audit-marker', groups: [] }, { name: 'audit-marker' });
    const markerFiles = {
      ca: await readFile(join(markerDir, 'ca.pem')),
      cert: await readFile(join(markerDir, 'cert.pem')),
      key: await readFile(join(markerDir, 'key.pem')),
    };
    return {
      dp,
      certs,
      env: (user, extra = {}) => ({ ...dp.dockerEnv(certs[user]), ...extra }),
      async auditDuring(fn) {
        // A marker before as well: audit lines are written asynchronously, so a line of an earlier request may
        // still be on its way when `fn` starts; everything before the first marker is not `fn`'s.
        const marker = async (): Promise<{ lines: AuditLine[]; at: number }> => {
          const path = `/containers/drawbridge-audit-marker-${randomUUID()}/json`;
          await markerRequest(dp.port, markerDir, markerFiles, path);
          const deadline = Date.now() + 10_000;
          for (;;) {
            const lines = await dp.audit();
            const at = lines.findIndex((l) => l.path === path);
            if (at >= 0) return { lines, at };
            if (Date.now() > deadline) throw new Error(`the audit marker ${path} never appeared in ${dp.auditPath}`);
            await sleep(20);
          }
        };
        const before = (await marker()).at + 1;
        const result = await fn();
        const after = await marker();
        return { result, lines: after.lines.slice(before, after.at) };
      },
      async stop() {
        await dp.stop();
      },
    };
  } catch (error) {
    await dp.stop();
    throw error;
  }
}
