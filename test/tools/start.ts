/**
 * `npm start`: a Console on embedded defaults plus an enrolled Defender in front of this machine's Docker.
 *
 * - Docker: the local socket when it answers; otherwise a private dockerd (root on Linux) for the session.
 * - Console: the real `drawbridge console` on https://127.0.0.1:8083 (DRAWBRIDGE_CONSOLE_PORT), data under
 *   .drawbridge/quickstart/console, admin password generated and printed.
 * - Example users alice (group ops) and bruce (group devs), example rules imported into the Console, a join token,
 *   and the real `drawbridge defender --console …` enrolled as host `dev-local` on 127.0.0.1:9998
 *   (DRAWBRIDGE_PORT).
 * - Each user's certificate is fetched the way users do it: the one-time `curl … | sh` install command, here into
 *   .drawbridge/quickstart/users/<name> instead of ~/.docker. Then it prints what to try. Ctrl-C stops everything.
 */
import 'reflect-metadata';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startDockerd, type DockerDaemon } from '../support/dockerd.js';
import { DRAWBRIDGE_BIN, REPO_ROOT } from '../support/defender-process.js';
import { consoleClient } from '../support/console-process.js';
import { buildTestImage } from '../support/test-image.js';

const HOST_NAME = 'dev-local';
const IMAGE = 'drawbridge-demo:busybox';
const run = promisify(execFile);

const RULES = `rules:
  - name: ops-everything
    effect: allow
    groups: [ops]
  - name: devs-no-exec
    effect: deny
    groups: [devs]
    actions: ['container_exec_*', container_archive, container_extract, container_commit, container_export]
  - name: devs-on-dev-hosts
    effect: allow
    groups: [devs]
    hosts: ['dev-*']
    actions: ['container_*', image_list, image_inspect, docker_ping, docker_version, docker_info, docker_events]
`;

function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false)).on('timeout', () => req.destroy());
    req.end();
  });
}

/** Starts a `drawbridge` subcommand and resolves once its log says `listening` / `running`. */
function startPart(args: string[], ready: RegExp, env: NodeJS.ProcessEnv = process.env): Promise<ChildProcess> {
  const child = spawn(process.execPath, [DRAWBRIDGE_BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let log = '';
  return new Promise((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      process.stderr.write(text);
      log += text;
      if (ready.test(log)) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`drawbridge ${args[0]} exited with code ${code}:\n${log}`)));
  });
}

async function main(): Promise<void> {
  const port = Number(process.env.DRAWBRIDGE_PORT ?? 9998);
  const consolePort = Number(process.env.DRAWBRIDGE_CONSOLE_PORT ?? 8083);
  const dir = join(REPO_ROOT, '.drawbridge', 'quickstart');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const children: ChildProcess[] = [];
  let daemon: DockerDaemon | null = null;
  const stop = async (): Promise<void> => {
    for (const child of children.reverse()) {
      if (child.exitCode === null) child.kill('SIGTERM');
      await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(null)));
    }
    await daemon?.stop();
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(0)));
  process.once('SIGTERM', () => void stop().then(() => process.exit(0)));

  try {
    let docker = 'unix:///var/run/docker.sock';
    if (await ping('/var/run/docker.sock')) console.log('Using the local Docker daemon at /var/run/docker.sock.');
    else {
      console.log('No Docker daemon answers at /var/run/docker.sock; starting a private one for this session…');
      daemon = await startDockerd();
      docker = daemon.host;
    }
    console.log(`Importing the small demo image ${IMAGE} (busybox)…`);
    await buildTestImage(docker, IMAGE);

    const adminPassword = randomBytes(12).toString('base64url');
    const consoleUrl = `https://127.0.0.1:${consolePort}`;
    console.log('Starting the Console…');
    children.push(
      await startPart(
        ['console', '--listen', `127.0.0.1:${consolePort}`, '--data', join(dir, 'console'), '--master-key-file', join(dir, 'console-master.key'), '--public-url', consoleUrl],
        / listening /,
        { ...process.env, DRAWBRIDGE_ADMIN_PASSWORD: adminPassword },
      ),
    );
    const caPem = ((await consoleClient(consoleUrl).call<{ pem: string }>('GET', '/api/v1/ca')).body).pem;
    await writeFile(join(dir, 'console-ca.pem'), caPem);
    const api = consoleClient(consoleUrl, caPem);
    const admin = await api.login('admin', adminPassword);
    const must = async <T>(what: string, p: Promise<{ status: number; body: T; text: string }>): Promise<T> => {
      const r = await p;
      if (r.status >= 300) throw new Error(`${what} failed: ${r.status} ${r.text}`);
      return r.body;
    };
    const passwords: Record<string, string> = {};
    for (const [user, groups] of [['alice', ['ops']], ['bruce', ['devs']]] as const) {
      passwords[user] = randomBytes(12).toString('base64url');
      await must(`creating ${user}`, api.call('POST', '/api/v1/users', { token: admin, json: { name: user, password: passwords[user], role: 'user', groups } }));
    }
    await must('importing the example rules', api.call('PUT', '/api/v1/rules/import', { token: admin, text: RULES }));
    // A secret kept by the Console itself, injected into containers labelled demo.secrets=yes on this host.
    const demoPassword = `demo-${randomBytes(9).toString('base64url')}`;
    await must('creating the built-in secret store', api.call('POST', '/api/v1/secret-stores', { token: admin, json: { name: 'console', kind: 'builtin', config: {} } }));
    await must('setting a demo secret', api.call('PUT', '/api/v1/secret-stores/console/values', { token: admin, json: { path: 'demo/db', value: demoPassword } }));
    await must('creating the demo secret rules', api.call('POST', '/api/v1/secret-rules', {
      token: admin,
      json: { name: 'demo-db-env', mode: 'env', secrets: [{ name: 'DB_PASSWORD', store: 'console', path: 'demo/db' }], scope: { labels: ['demo.secrets=yes'] } },
    }));
    await must('creating the demo secret rules', api.call('POST', '/api/v1/secret-rules', {
      token: admin,
      json: { name: 'demo-db-file', mode: 'file', fileAccess: 'all', secrets: [{ name: 'db_password', store: 'console', path: 'demo/db' }], scope: { labels: ['demo.secrets=yes'] } },
    }));
    const join_ = await must<{ token: string }>('creating a join token', api.call('POST', '/api/v1/defenders/join-tokens', { token: admin, json: { ttlSeconds: 600 } }));

    console.log('Starting a Defender and enrolling it with the Console…');
    children.push(
      await startPart(
        ['defender', '--console', consoleUrl, '--join-token', join_.token, '--console-ca', join(dir, 'console-ca.pem'), '--state', join(dir, 'defender'), '--host-name', HOST_NAME, '--listen', `127.0.0.1:${port}`, '--docker', docker],
        /listening listen=/,
      ),
    );

    const commands: Record<string, string> = {};
    for (const user of ['alice', 'bruce']) {
      const token = await api.login(user, passwords[user]!);
      const { command } = await must<{ command: string }>(`an install command for ${user}`, api.call('POST', '/api/v1/certs/install-command', { token }));
      commands[user] = command;
      const certDir = join(dir, 'users', user);
      await run('sh', ['-c', command], { env: { ...process.env, DOCKER_CERT_PATH: certDir } });
    }

    const env = (user: string): string => `export DOCKER_HOST=tcp://127.0.0.1:${port} DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=${join(dir, 'users', user)}`;
    console.log(`
Drawbridge is running.
  Console   ${consoleUrl}   admin / ${adminPassword}   (API: ${consoleUrl}/api/v1/openapi.json)
  Defender  tcp://127.0.0.1:${port} as host '${HOST_NAME}', enrolled with the Console; rules live in the Console.
  Users     alice / ${passwords.alice} (group ops), bruce / ${passwords.bruce} (group devs)

Certificates were installed the way users get them, with the one-time install command from
POST /api/v1/certs/install-command (here into ${join(dir, 'users')}/<name> instead of ~/.docker), e.g. alice's:
  ${commands.alice}

In another terminal:

  # alice, group ops: may do everything
  ${env('alice')}
  docker run --rm ${IMAGE} echo hello from alice
  docker run -d --name demo ${IMAGE} sleep 600 && docker exec demo id

  # bruce, group devs: may run containers on dev-* hosts, never exec or copy files out
  ${env('bruce')}
  docker ps
  docker exec demo id          # → denied by rule 'devs-no-exec'
  docker volume ls             # → denied by the default deny-all rule

Secrets from the Console's built-in store go into containers a secret rule selects (here: label demo.secrets=yes):
  ${env('alice')}
  docker run --rm --label demo.secrets=yes ${IMAGE} sh -c 'echo "env: $DB_PASSWORD  file: $(cat /run/secrets/db_password)"'
  docker run -d --name demo-secret --label demo.secrets=yes ${IMAGE} sleep 600
  docker inspect -f '{{.Config.Env}}' demo-secret    # → DB_PASSWORD=**redacted**
  docker cp demo-secret:/run/secrets/db_password -   # → denied: the container carries secrets

Change a rule in the Console and the Defender enforces it within a second:
  TOKEN=$(curl -s --cacert ${join(dir, 'console-ca.pem')} ${consoleUrl}/api/v1/auth/login -H 'content-type: application/json' \\
    -d '{"username":"admin","password":"${adminPassword}"}' | sed 's/.*"token":"\\([^"]*\\)".*/\\1/')
  curl -s --cacert ${join(dir, 'console-ca.pem')} -H "authorization: Bearer $TOKEN" ${consoleUrl}/api/v1/rules/export

Press Ctrl-C to stop${daemon ? ' (the private Docker daemon stops too)' : ''}.
`);
  } catch (err) {
    await stop();
    throw err;
  }
}

main().catch((err: Error) => {
  console.error(`npm start failed: ${err.message}`);
  process.exit(1);
});
