/**
 * What the companion logs in to, for its end-to-end tests: the real Console binary, two real Console-managed
 * Defenders (`dev-a`, `prod-a`) in front of the private dockerd, a user `alice` (group devs) and rules:
 *
 * - devs may do anything on dev-* except exec (rule `no-exec`) and volumes (rule `no-volumes`);
 * - on prod-* devs may only look (`prod-read-only`: ping, version, info, list containers).
 */
import { startConsoleProcess, type ConsoleProcess } from './console-process.js';
import { startDefenderProcess, type DefenderProcess } from './defender-process.js';
import { servedSpkiPin } from './oauth-client.js';
import { pollUntil } from './poll.js';

export const ALICE = { name: 'alice', password: 'alice-password-1234', groups: ['devs'] } as const;

export const WORLD_RULES = [
  'rules:',
  '  - {name: no-exec, effect: deny, groups: [devs], actions: [container_exec_*]}',
  '  - {name: no-volumes, effect: deny, groups: [devs], actions: [volume_*]}',
  '  - {name: devs-on-dev, effect: allow, groups: [devs], hosts: [dev-*]}',
  '  - {name: prod-read-only, effect: allow, groups: [devs], hosts: [prod-*], actions: [docker_ping, docker_version, docker_info, container_list]}',
  '',
].join('\n');

export interface CompanionWorld {
  readonly console: ConsoleProcess;
  readonly devA: DefenderProcess;
  readonly prodA: DefenderProcess;
  /** Base64 SHA-256 of the Console's TLS key (Chromium's accept list; `sha256//` + it for --pin). */
  readonly consolePin: string;
  adminCall<T = any>(method: string, path: string, json?: unknown): Promise<{ status: number; body: T; text: string }>;
  stop(): Promise<void>;
}

export async function startCompanionWorld(opts: { dockerHost: string; consoleArgs?: readonly string[] }): Promise<CompanionWorld> {
  const consoleProc = await startConsoleProcess({ args: opts.consoleArgs ?? [] });
  const admin = await consoleProc.adminToken();
  const adminCall = <T>(method: string, path: string, json?: unknown) => consoleProc.call<T>(method, path, { token: admin, ...(json === undefined ? {} : { json }) });
  const user = await adminCall('POST', '/api/v1/users', { name: ALICE.name, password: ALICE.password, role: 'user', groups: [...ALICE.groups] });
  if (user.status !== 201) throw new Error(`creating alice: ${user.status} ${user.text}`);
  const rules = await consoleProc.call('PUT', '/api/v1/rules/import', { token: admin, text: WORLD_RULES });
  if (rules.status !== 200) throw new Error(`importing the rules: ${rules.status} ${rules.text}`);
  const joinToken = async (): Promise<string> => (await adminCall<{ token: string }>('POST', '/api/v1/defenders/join-tokens', {})).body.token;
  const [devA, prodA] = await Promise.all([
    startDefenderProcess({ dockerHost: opts.dockerHost, hostName: 'dev-a', console: { url: consoleProc.url, joinToken: await joinToken(), ca: consoleProc.caPem } }),
    startDefenderProcess({ dockerHost: opts.dockerHost, hostName: 'prod-a', console: { url: consoleProc.url, joinToken: await joinToken(), ca: consoleProc.caPem } }),
  ]);
  const version = (await adminCall<{ version: number }>('GET', '/api/v1/rules')).body.version;
  for (const host of ['dev-a', 'prod-a']) {
    await pollUntil(`${host} to enforce policy ${version}`, async () => (await adminCall<{ policyVersion: number }>('GET', `/api/v1/defenders/${host}`)).body.policyVersion === version, 20_000, 100);
  }
  return {
    console: consoleProc,
    devA,
    prodA,
    consolePin: await servedSpkiPin(consoleProc.port),
    adminCall,
    async stop() {
      await devA.stop();
      await prodA.stop();
      await consoleProc.stop({ remove: true });
    },
  };
}
