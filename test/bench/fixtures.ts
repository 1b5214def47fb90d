/**
 * What the Defender benchmark runs against: a realistic rules file whose walk is not trivially short, the
 * containers `docker ps`/`GET /containers/json` list, and the containers the stream measurements read from.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const BENCH_USER = { user: 'bench', groups: ['perf', 'contractors-eu'] } as const;

/**
 * Twenty rules in front of the one that allows the bench user everything. None matches the bench user's
 * requests, but most get past the user and group checks and fail only on hosts or actions, as rules for other
 * teams on other hosts would; the Defender runs as host `dev-a`.
 */
export const BENCH_RULES = `rules:
  - name: contractors-frozen
    effect: deny
    groups: [contractors]
  - name: nobody-execs-in-prod
    effect: deny
    hosts: ['prod-*']
    actions: ['container_exec_*', container_attach, container_attachws]
  - name: ops-everything-prod
    effect: allow
    groups: [ops, sre]
    hosts: ['prod-*', 'dr-*']
  - name: ops-everything
    effect: allow
    groups: [ops]
  - name: interns-no-writes
    effect: deny
    groups: [interns]
    actions: [container_create, 'container_exec_*', image_build, image_push, 'volume_*', 'network_*']
  - name: no-image-push-outside-ci
    effect: deny
    users: ['*', -ci-bot, -release-bot]
    actions: [image_push, image_tag]
  - name: no-privileged-plugins
    effect: deny
    actions: ['plugin_*']
  - name: no-swarm
    effect: deny
    hosts: ['*', -swarm-manager-1]
    actions: ['swarm_*', 'node_*', 'service_*', 'secret_*', 'config_*', 'task_*']
  - name: ci-builds
    effect: allow
    users: [ci-bot, release-bot]
    actions: [image_build, image_push, image_tag, image_list, image_inspect, image_delete, docker_ping]
  - name: data-team-volumes
    effect: allow
    groups: [data, analytics]
    hosts: ['dev-*', 'stage-*']
    actions: ['volume_*', 'container_*']
  - name: qa-on-stage
    effect: allow
    groups: [qa]
    hosts: ['stage-*', 'qa-*']
  - name: stage-read-only
    effect: allow
    hosts: ['stage-*']
    actions: [container_list, container_inspect, container_logs, image_list, docker_ping, docker_version, docker_info]
  - name: devs-no-exec-on-shared
    effect: deny
    groups: [devs]
    hosts: ['shared-*']
    actions: ['container_exec_*']
  - name: devs-on-dev
    effect: allow
    groups: [devs, frontend, backend]
    hosts: ['dev-*']
  - name: oncall-restart
    effect: allow
    groups: [oncall]
    actions: [container_restart, container_start, container_stop, container_logs, container_list]
  - name: auditors-read
    effect: allow
    groups: [auditors, security]
    actions: [container_list, container_inspect, image_list, image_inspect, docker_events, docker_info]
  - name: no-system-prune
    effect: deny
    users: ['*', -root-admin]
    actions: [container_prune, image_prune, volume_prune, network_prune, build_prune]
  - name: mobile-team-builds
    effect: allow
    groups: [mobile]
    hosts: ['build-*']
    actions: [image_build, container_create, container_start, container_wait, container_logs]
  - name: ml-gpu-hosts
    effect: allow
    groups: [ml]
    hosts: ['gpu-*']
  - name: perf-on-bench-hosts
    effect: allow
    groups: [perf]
    hosts: ['bench-*', 'perf-*']
  - name: bench-allow-all
    effect: allow
    users: [bench]
`;

export const LIST_CONTAINERS = 10;

/** The docker CLI; resolves with its stdout. */
export async function docker(env: NodeJS.ProcessEnv, args: readonly string[]): Promise<string> {
  return (await run('docker', [...args], { env, maxBuffer: 16 * 1024 * 1024 })).stdout.trim();
}

/** `LIST_CONTAINERS` created (not running) containers for the list endpoints to return. */
export async function createListContainers(env: NodeJS.ProcessEnv, image: string): Promise<void> {
  for (let i = 0; i < LIST_CONTAINERS; i++) {
    await docker(env, ['create', '--name', `bench-list-${i}`, '--label', `bench.index=${i}`, '--env', 'A=1', image, 'sleep', '3600']);
  }
}

/** Runs a container to completion in the background (its output goes to its log, not to us). */
async function runDetached(env: NodeJS.ProcessEnv, name: string, image: string, script: string): Promise<void> {
  await docker(env, ['run', '-d', '--name', name, image, 'sh', '-c', script]);
  const code = await docker(env, ['wait', name]);
  if (code !== '0') throw new Error(`container ${name} exited with ${code}`);
}

/** A stopped container with a file of `bytes` zeros at /big (read back with GET …/archive?path=/big). */
export async function createArchiveContainer(env: NodeJS.ProcessEnv, image: string, bytes: number): Promise<string> {
  await runDetached(env, 'bench-archive', image, `head -c ${bytes} /dev/zero > /big`);
  return '/v1.41/containers/bench-archive/archive?path=%2Fbig';
}

/** A stopped container to upload into (PUT …/archive, as `docker cp FILE bench-upload:/tmp`). */
export async function createUploadContainer(env: NodeJS.ProcessEnv, image: string): Promise<string> {
  await docker(env, ['create', '--name', 'bench-upload', image, 'true']);
  return '/v1.41/containers/bench-upload/archive?path=%2Ftmp';
}

/** A stopped container whose json-file log holds `bytes` of 1 KiB lines (read back with GET …/logs). */
export async function createLogsContainer(env: NodeJS.ProcessEnv, image: string, bytes: number): Promise<string> {
  await runDetached(env, 'bench-logs', image, `yes "$(head -c 1023 /dev/zero | tr '\\0' x)" | head -c ${bytes}`);
  return '/v1.41/containers/bench-logs/logs?stdout=1';
}

export async function removeContainers(env: NodeJS.ProcessEnv, names: readonly string[]): Promise<void> {
  await docker(env, ['rm', '-f', ...names]).catch(() => undefined);
}

/** Wall time of one `docker ps`, in ms; throws when it fails. */
export function timeDockerPs(env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('docker', ['ps'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.on('error', reject);
    child.on('exit', (code) => {
      const ms = performance.now() - started;
      if (code === 0) resolve(ms);
      else reject(new Error(`docker ps failed (${code}) with DOCKER_HOST=${env.DOCKER_HOST}: ${err.trim()}`));
    });
  });
}
