/**
 * `npm start`: a Console on embedded defaults plus an enrolled Defender in front of this machine's Docker.
 *
 * - Docker: DOCKER_HOST when it is set (unix:// or plain tcp://, as the docker CLI reads it; it must answer);
 *   otherwise the local socket when it answers; otherwise a private dockerd (root on Linux) for the session.
 * - Console: the real `drawbridge console` on https://127.0.0.1:8083 (DRAWBRIDGE_CONSOLE_PORT), data under
 *   .drawbridge/quickstart/console, admin password generated and printed.
 * - Example users alice (group ops) and bruce (group devs), example rules imported into the Console, a join token,
 *   and the real `drawbridge defender --console …` enrolled as host `dev-local` on 127.0.0.1:9998
 *   (DRAWBRIDGE_PORT).
 * - Each user's certificate is fetched the way users do it: the one-time `curl … | sh` install command, here into
 *   .drawbridge/quickstart/users/<name> instead of ~/.docker. Then it prints what to try. Ctrl-C stops everything.
 * - DRAWBRIDGE_QUICKSTART_DIR moves .drawbridge/quickstart elsewhere; only the entries this script writes there are
 *   replaced at each start.
 */
import 'reflect-metadata';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join, resolve as resolvePath } from 'node:path';
import { promisify } from 'node:util';
import { DOCKER_ENDPOINT, DOCKER_ENDPOINT_FORMS } from '../../defender/index.js';
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

/** What the quickstart writes under its directory; only these are replaced at each start. */
const OWN_ENTRIES = ['console', 'console-ca.pem', 'console-master.key', 'defender', 'users'];

/** GET /_ping on a Docker endpoint given as unix:///path or tcp://host:port. */
function ping(docker: string): Promise<boolean> {
  const url = docker.startsWith('unix://') ? { socketPath: docker.slice('unix://'.length) } : { host: new URL(docker).hostname, port: Number(new URL(docker).port) };
  return new Promise((resolve) => {
    const req = request({ ...url, path: '/_ping', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false)).on('timeout', () => req.destroy());
    req.end();
  });
}

/** How long a part may take to say it is ready. */
const READY_TIMEOUT_MS = 60_000;
/** How long each part may take to stop on SIGTERM (the Defender lets streams finish for 10 s) before SIGKILL. */
const STOP_TIMEOUT_MS = 20_000;

/**
 * Starts a `drawbridge` subcommand and resolves once its log says `listening` / `running`.
 *
 * - Its own process group (detached): a Ctrl-C in the terminal reaches only this script, which stops the parts one
 *   by one with a single SIGTERM each. Signalled by the terminal as well, a part would get a second signal and be
 *   cut short in its graceful shutdown.
 * - Its log is passed through to our stderr.
 */
function startPart(args: string[], readyLine: RegExp, env: NodeJS.ProcessEnv = process.env): { child: ChildProcess; ready: Promise<void> } {
  const child = spawn(process.execPath, [DRAWBRIDGE_BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env, detached: true });
  let log = '';
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`drawbridge ${args[0]} did not get ready in ${READY_TIMEOUT_MS / 1000} s; its log is above`));
    }, READY_TIMEOUT_MS);
    child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      process.stderr.write(text);
      log += text;
      if (readyLine.test(log)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`drawbridge ${args[0]} exited with ${signal ?? `code ${code}`} while starting:\n${log}`));
    });
  });
  return { child, ready };
}

/** SIGTERM, then SIGKILL after STOP_TIMEOUT_MS; resolves once the process has exited. */
async function stopPart(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve)));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

async function main(): Promise<void> {
  const port = Number(process.env.DRAWBRIDGE_PORT ?? 9998);
  const consolePort = Number(process.env.DRAWBRIDGE_CONSOLE_PORT ?? 8083);
  const dir = resolvePath(process.env.DRAWBRIDGE_QUICKSTART_DIR || join(REPO_ROOT, '.drawbridge', 'quickstart'));
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const entry of OWN_ENTRIES) await rm(join(dir, entry), { recursive: true, force: true });
  const parts: { name: string; child: ChildProcess }[] = [];
  let daemon: DockerDaemon | null = null;
  let daemonStarting: Promise<DockerDaemon> | undefined;
  let stopping: Promise<void> | undefined;
  /** Stops the Defender, then the Console, then the private dockerd if we started one. Runs once. */
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      for (const { child } of [...parts].reverse()) await stopPart(child);
      await (await daemonStarting?.catch(() => null))?.stop(); // also one still starting when the signal came
    })());
  /** Thrown where the start-up stops because a signal asked us to: stop() cleans up, nothing to report. */
  const interrupted = new Error('interrupted');
  const startPartHere = async (name: string, args: string[], readyLine: RegExp, env?: NodeJS.ProcessEnv): Promise<void> => {
    if (stopping) throw interrupted;
    const { child, ready } = startPart(args, readyLine, env);
    parts.push({ name, child }); // at once, so that a Ctrl-C while it starts stops it too
    await ready;
    // A part that dies on its own takes the others down with it: half a quickstart only confuses.
    child.once('exit', (code, signal) => {
      if (stopping) return;
      console.error(`\nnpm start: the ${name} stopped by itself (${signal ?? `exit code ${code}`}); its log is above. Stopping the rest.`);
      void stop().then(() => process.exit(1));
    });
  };
  // Ctrl-C reaches npm, the bootstrap (which passes it on) and us: the first signal stops everything, repeats wait for it.
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!stopping) console.log(`\n${signal === 'SIGINT' ? 'Ctrl-C' : signal}: stopping${daemon ? ' (and the private Docker daemon)' : ''}…`);
    void stop().then(() => {
      console.log('Stopped.');
      process.exit(0);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // The parts have process groups of their own, so nothing else would stop them if we exit some other way.
  process.on('exit', () => parts.forEach(({ child }) => child.exitCode === null && child.signalCode === null && child.kill('SIGTERM')));

  try {
    let docker = 'unix:///var/run/docker.sock';
    const fromEnv = process.env.DOCKER_HOST;
    if (fromEnv) {
      // The docker CLI's own variable; a TLS daemon (DOCKER_TLS_VERIFY, DOCKER_TLS) cannot sit behind the Defender.
      const tls = Boolean(process.env.DOCKER_TLS_VERIFY || process.env.DOCKER_TLS);
      if (tls || !DOCKER_ENDPOINT.test(fromEnv)) {
        throw new Error(
          `DOCKER_HOST=${fromEnv}${tls ? ' with TLS' : ''} cannot be put behind the Defender: it needs ${DOCKER_ENDPOINT_FORMS}, ` +
            'without TLS. Unset DOCKER_HOST (and DOCKER_TLS_VERIFY) to use /var/run/docker.sock.',
        );
      }
      if (!(await ping(fromEnv))) throw new Error(`no Docker daemon answers at DOCKER_HOST=${fromEnv}. Start it, or unset DOCKER_HOST to use /var/run/docker.sock.`);
      docker = fromEnv;
      console.log(`Using the Docker daemon at DOCKER_HOST=${docker}.`);
    } else if (await ping(docker)) console.log('Using the local Docker daemon at /var/run/docker.sock.');
    else {
      console.log('No Docker daemon answers at /var/run/docker.sock; starting a private one for this session…');
      daemonStarting = startDockerd();
      daemon = await daemonStarting;
      if (stopping) throw interrupted;
      docker = daemon.host;
    }
    console.log(`Importing the small demo image ${IMAGE} (busybox)…`);
    await buildTestImage(docker, IMAGE);

    const adminPassword = randomBytes(12).toString('base64url');
    const consoleUrl = `https://127.0.0.1:${consolePort}`;
    console.log('Starting the Console…');
    await startPartHere(
      'Console',
      ['console', '--listen', `127.0.0.1:${consolePort}`, '--data', join(dir, 'console'), '--master-key-file', join(dir, 'console-master.key'), '--public-url', consoleUrl],
      / listening /,
      { ...process.env, DRAWBRIDGE_ADMIN_PASSWORD: adminPassword },
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
    await startPartHere(
      'Defender',
      ['defender', '--console', consoleUrl, '--join-token', join_.token, '--console-ca', join(dir, 'console-ca.pem'), '--state', join(dir, 'defender'), '--host-name', HOST_NAME, '--listen', `127.0.0.1:${port}`, '--docker', docker],
      /listening listen=/,
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
  docker run --rm ${IMAGE} echo hello from alice     # → hello from alice
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

Change the rules in the Console and the Defender enforces them within a second, e.g. let bruce exec:
  CA=${join(dir, 'console-ca.pem')}
  TOKEN=$(curl -s --cacert $CA ${consoleUrl}/api/v1/auth/login -H 'content-type: application/json' \\
    -d '{"username":"admin","password":"${adminPassword}"}' | sed 's/.*"token":"\\([^"]*\\)".*/\\1/')
  curl -s --cacert $CA -H "authorization: Bearer $TOKEN" ${consoleUrl}/api/v1/rules/export     # the rules, as YAML
  curl -s --cacert $CA -H "authorization: Bearer $TOKEN" -X DELETE ${consoleUrl}/api/v1/rules/devs-no-exec
  ${env('bruce')}
  docker exec demo id          # → uid=0(root) …

When you are done:
  ${env('alice')}
  docker rm -f demo demo-secret

Press Ctrl-C to stop${daemon ? ' (the private Docker daemon stops too)' : ''}.
`);
  } catch (err) {
    const asked = stopping !== undefined; // by a signal: onSignal reports and exits once stop() is done
    await stop();
    if (!asked) throw err;
  }
}

main().catch((err: Error) => {
  console.error(`npm start failed: ${err.message}`);
  process.exit(1);
});
