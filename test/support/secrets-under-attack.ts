/**
 * The stage of the secrets attack tests (defender-secrets-attacks, defender-secrets-escapes): a real Console
 * (built-in store, two secret rules for containers labelled `app=billing`: `DB_PASSWORD` in the env, `token` as a
 * file) and a real Defender enrolled with it in front of the run's dockerd, with its secrets base under /dev/shm
 * (the default place), and `eve`, whom the access rules allow everything. Call it at the top of a test file: it
 * registers the file's beforeAll and afterAll.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, inject } from 'vitest';
import { startConsoleProcess, type ConsoleProcess } from './console-process.js';
import { consoleUserCert, dockerEnvFor } from './console-user-cert.js';
import { daemonRequest, removeLabelled } from './daemon-request.js';
import { startDefenderProcess, type DefenderProcess } from './defender-process.js';
import { adminApi, dockerAs, type AdminApi, type DockerAs } from './e2e-drivers.js';
import type {} from './global-setup.js';
import { pollUntil } from './poll.js';
import { RawTlsClient, rawRequest } from './tls-client.js';

export const tag = (): string => randomBytes(6).toString('hex');

export interface SecretsUnderAttack extends DockerAs, AdminApi {
  /** `drawbridge.test=<name>`: every container and volume the file makes carries it (removed at the end). */
  readonly label: string;
  readonly DB_PASSWORD: string;
  readonly TOKEN: string;
  readonly ALL_VALUES: readonly string[];
  /** Read in tests, set in beforeAll. */
  readonly work: string;
  readonly secretsDir: string;
  readonly consoleProc: ConsoleProcess;
  readonly defender: DefenderProcess;
  readonly image: string;
  readonly eveDir: string;
  dockerHost(): string;
  /** `--label <label> --label app=<app>`. */
  labels(app: string): string[];
  /** `docker run -d` as eve of a container labelled app=<app>; its name. */
  startContainer(app: string, extra?: string[], cmd?: string[]): Promise<string>;
  /** dockerd's own inspect (past the Defender). */
  inspectDirect(name: string): Promise<any>;
  /** The host directory of a container's file secrets. */
  hostDirOf(name: string): Promise<string>;
  /** One raw request as eve on a fresh connection (a JSON body when `body` is given). */
  rawOnce(method: string, target: string, headers?: Record<string, string | number>, body?: string): Promise<{ status: number; text: string }>;
}

export function secretsUnderAttack(name: string, hostName: string): SecretsUnderAttack {
  const label = `drawbridge.test=${name}`;
  const dockerHost = (): string => inject('dockerHost');
  // Filled in by beforeAll; read by the tests (and the helpers below) only once it has run.
  const stage = {} as { -readonly [K in keyof SecretsUnderAttack]: SecretsUnderAttack[K] };
  const admin = adminApi(() => stage.consoleProc);
  const cli = dockerAs(() => dockerEnvFor(stage.defender.host, stage.eveDir, join(stage.work, 'docker-config')));
  const labels = (app: string): string[] => ['--label', label, '--label', `app=${app}`];
  const inspectDirect = async (ref: string): Promise<any> => (await daemonRequest(dockerHost(), 'GET', `/containers/${ref}/json`)).json();
  const DB_PASSWORD = `db-${tag()}-pw`;
  const TOKEN = `token-${tag()}-v1`;
  Object.assign(stage, {
    ...cli,
    ...admin,
    label,
    DB_PASSWORD,
    TOKEN,
    ALL_VALUES: [DB_PASSWORD, TOKEN],
    dockerHost,
    labels,
    async startContainer(app, extra = [], cmd = ['sleep', '600']) {
      const container = `${name.slice(0, 12)}-${app}-${tag()}`;
      await cli.runOk(['run', '-d', '--name', container, ...labels(app), ...extra, stage.image, ...cmd]);
      return container;
    },
    inspectDirect,
    async hostDirOf(ref) {
      return join(stage.secretsDir, (await inspectDirect(ref)).Config.Labels['io.drawbridge.secrets.instance']);
    },
    async rawOnce(method, target, headers = {}, body) {
      const client = await RawTlsClient.connect(stage.defender.port, stage.eveDir);
      try {
        await client.write(rawRequest(method, target, { ...headers, ...(body === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }) }, body));
        const res = await client.readResponse(method);
        return { status: res.status, text: res.text() };
      } finally {
        client.destroy();
      }
    },
  } satisfies Omit<SecretsUnderAttack, 'work' | 'secretsDir' | 'consoleProc' | 'defender' | 'image' | 'eveDir'>);

  beforeAll(async () => {
    stage.work = await mkdtemp(join(tmpdir(), `${name}-`));
    stage.secretsDir = `/dev/shm/${name}-${tag()}`;
    stage.image = inject('testImage');
    stage.consoleProc = await startConsoleProcess();
    const { apiOk } = admin;
    await apiOk('POST', '/api/v1/rules', { name: 'everything', effect: 'allow', groups: ['devs'] }, 201);
    stage.eveDir = (await consoleUserCert(stage.consoleProc, stage.work, 'eve', ['devs'])).dir;
    await apiOk('POST', '/api/v1/secret-stores', { name: 'local', kind: 'builtin', config: {} }, 201);
    await apiOk('PUT', '/api/v1/secret-stores/local/values', { path: 'db/password', value: stage.DB_PASSWORD });
    await apiOk('PUT', '/api/v1/secret-stores/local/values', { path: 'shared/token', value: stage.TOKEN });
    await apiOk('POST', '/api/v1/secret-rules', { name: 'db-env', mode: 'env', secrets: [{ name: 'DB_PASSWORD', store: 'local', path: 'db/password' }], scope: { labels: ['app=billing'] } }, 201);
    await apiOk('POST', '/api/v1/secret-rules', { name: 'token-all', mode: 'file', fileAccess: 'all', secrets: [{ name: 'token', store: 'local', path: 'shared/token' }], scope: { labels: ['app=billing'] } }, 201);
    const joinToken = (await apiOk<{ token: string }>('POST', '/api/v1/defenders/join-tokens', {}, 201)).token;
    stage.defender = await startDefenderProcess({
      dockerHost: dockerHost(),
      hostName,
      console: { url: stage.consoleProc.url, joinToken, ca: stage.consoleProc.caPem },
      args: ['--secrets-dir', stage.secretsDir],
    });
    const reads = async (): Promise<boolean> => (await cli.run(['run', '--rm', ...labels('billing'), stage.image, 'cat', '/run/secrets/token'])).stdout === stage.TOKEN;
    await pollUntil('the Defender to have the secrets', reads, 30_000, 200);
  });

  afterAll(async () => {
    await removeLabelled(dockerHost(), label);
    await stage.defender?.stop();
    await stage.consoleProc?.stop({ remove: true });
    if (stage.secretsDir) {
      try {
        execFileSync('umount', [stage.secretsDir], { stdio: 'ignore' });
      } catch {
        /* the fallback directory, not a mount */
      }
      await rm(stage.secretsDir, { recursive: true, force: true });
    }
    if (stage.work) await rm(stage.work, { recursive: true, force: true });
  });

  return stage;
}
