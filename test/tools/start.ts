/**
 * `npm start`: a Defender in front of this machine's Docker, ready to try as two example users.
 *
 * - Uses the local Docker socket when it answers; otherwise starts a private dockerd (root on Linux) for the session.
 * - Generates a fresh local CA, the Defender's certificate and client certificates for alice (group ops) and bruce
 *   (group devs) under .drawbridge/quickstart/, writes an example rules file, and runs the real
 *   `drawbridge defender` on 127.0.0.1:9998 (DRAWBRIDGE_PORT to change it).
 * - Prints the docker commands to try as each user. Ctrl-C stops everything it started.
 */
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { startDockerd, type DockerDaemon } from '../support/dockerd.js';
import { DRAWBRIDGE_BIN, REPO_ROOT } from '../support/defender-process.js';
import { createCa, writePemFiles } from '../support/pki.js';
import { buildTestImage } from '../support/test-image.js';

const HOST_NAME = 'dev-local';
const IMAGE = 'drawbridge-demo:busybox';

const RULES = `# Example access rules: first match wins; nothing matched → the default deny-all rule.
# Edit this file while the Defender runs: it reloads within a second (a broken edit keeps the last good rules).
rules:
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

async function main(): Promise<void> {
  const port = Number(process.env.DRAWBRIDGE_PORT ?? 9998);
  const dir = join(REPO_ROOT, '.drawbridge', 'quickstart');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });

  let daemon: DockerDaemon | null = null;
  let docker = 'unix:///var/run/docker.sock';
  if (await ping('/var/run/docker.sock')) {
    console.log('Using the local Docker daemon at /var/run/docker.sock.');
  } else {
    console.log('No Docker daemon answers at /var/run/docker.sock; starting a private one for this session…');
    daemon = await startDockerd();
    docker = daemon.host;
  }
  console.log(`Importing the small demo image ${IMAGE} (busybox)…`);
  await buildTestImage(docker, IMAGE);

  console.log('Generating a local CA and certificates…');
  const ca = await createCa('Drawbridge quickstart CA');
  const server = await ca.issueServerCert({ dnsNames: ['localhost'], ips: ['127.0.0.1'] });
  await writePemFiles(join(dir, 'defender'), { 'ca.pem': ca.cert, 'cert.pem': server.cert, 'key.pem': server.key });
  const users = { alice: ['ops'], bruce: ['devs'] } as const;
  for (const [user, groups] of Object.entries(users)) {
    const pem = await ca.issueClientCert({ user, groups: [...groups] });
    await writePemFiles(join(dir, 'users', user), { 'ca.pem': ca.cert, 'cert.pem': pem.cert, 'key.pem': pem.key });
  }
  const rules = join(dir, 'rules.yaml');
  await writeFile(rules, RULES);

  const child = spawn(
    process.execPath,
    [
      DRAWBRIDGE_BIN, 'defender',
      '--listen', `127.0.0.1:${port}`,
      '--docker', docker,
      '--tls-ca', join(dir, 'defender/ca.pem'),
      '--tls-cert', join(dir, 'defender/cert.pem'),
      '--tls-key', join(dir, 'defender/key.pem'),
      '--rules', rules,
      '--host-name', HOST_NAME,
      '--audit-log', join(dir, 'audit.jsonl'),
    ],
    { stdio: ['ignore', 'inherit', 'pipe'] },
  );
  let printed = false;
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    process.stderr.write(text);
    if (!printed && text.includes(' listening ')) {
      printed = true;
      const env = (user: string): string => `export DOCKER_HOST=tcp://127.0.0.1:${port} DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=${join(dir, 'users', user)}`;
      console.log(`
The Defender is running on 127.0.0.1:${port} as host '${HOST_NAME}', rules in ${rules}
(audit: ${join(dir, 'audit.jsonl')}). In another terminal:

  # alice, group ops: may do everything
  ${env('alice')}
  docker run --rm ${IMAGE} echo hello from alice
  docker run -d --name demo ${IMAGE} sleep 600 && docker exec demo id

  # bruce, group devs: may run containers on dev-* hosts, never exec or copy files out
  ${env('bruce')}
  docker ps
  docker run --rm ${IMAGE} echo hello from bruce
  docker exec demo id          # → denied by rule 'devs-no-exec'
  docker volume ls             # → denied by the default deny-all rule

Press Ctrl-C to stop${daemon ? ' (the private Docker daemon stops too)' : ''}.
`);
    }
  });

  const stop = async (): Promise<void> => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(null)));
    await daemon?.stop();
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(0)));
  process.once('SIGTERM', () => void stop().then(() => process.exit(0)));
  child.once('exit', (code) => {
    if (code !== 0 && code !== null) {
      console.error(`The Defender exited with code ${code}.`);
      void daemon?.stop().then(() => process.exit(code));
    }
  });
}

main().catch((err: Error) => {
  console.error(`npm start failed: ${err.message}`);
  process.exit(1);
});
