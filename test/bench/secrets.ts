/**
 * `npm run bench:secrets [-- options]`: what secrets cost. Prints figures and the targets next to them; asserts
 * nothing.
 *
 * 1. `docker run --rm <image> true` wall time with the real docker CLI through a Console-managed Defender, with
 *    and without injected secrets (`--env` env secrets and `--files` file secrets on the same container, chosen by
 *    a label scope), runs interleaved; direct to dockerd as the reference. Target: +10 ms at most (medians).
 * 2. Console sync of `--secrets` secrets (default 1,000) from a Vault KV v2 store (the in-repo protocol server,
 *    through the real provider): creating the rules (their values are fetched first), then a refresh after every
 *    value changed at the store, until an enrolled Defender holds the new values.
 *
 * Options: --runs 15 --env 5 --files 5 --secrets 1000 --skip run,sync
 * Everything (dockerd, Console, Defender, Vault fake, containers, temp dirs) is removed at the end, on error and on
 * Ctrl-C.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startConsoleProcess, type ConsoleProcess } from '../support/console-process.js';
import { makeCsr } from '../support/csr.js';
import { docker } from '../support/docker-cli.js';
import { dockerCliEnv, startDockerd } from '../support/dockerd.js';
import { startDefenderProcess } from '../support/defender-process.js';
import { writePemFiles } from '../support/pki.js';
import { VaultServer } from '../support/secret-stores/vault-server.js';
import { buildTestImage } from '../support/test-image.js';
import { clientTls, enrollDefender, openPolicyStream } from '../support/console-defender-client.js';
import { fmt, median, table } from './report.js';
import { cleanup, onCleanup } from './cleanups.js';

const { values: opt } = parseArgs({
  options: {
    runs: { type: 'string', default: '15' },
    env: { type: 'string', default: '5' },
    files: { type: 'string', default: '5' },
    secrets: { type: 'string', default: '1000' },
    skip: { type: 'string', default: '' },
  },
});
const RUNS = Number(opt.runs);
const ENV = Number(opt.env);
const FILES = Number(opt.files);
const SECRETS = Number(opt.secrets);
const skip = new Set(opt.skip.split(',').filter(Boolean));


async function api(c: ConsoleProcess, method: string, path: string, json?: unknown): Promise<any> {
  const r = await c.call(method, path, { token: await c.adminToken(), ...(json === undefined ? {} : { json }) });
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.text}`);
  return r.body;
}

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await f();
  return performance.now() - t;
}

async function benchRun(work: string, consoleProc: ConsoleProcess): Promise<void> {
  console.log(`\n1. docker run --rm <image> true, ${RUNS} runs each, interleaved (${ENV} env + ${FILES} file secrets injected)`);
  const daemon = await startDockerd();
  onCleanup(() => daemon.stop());
  const image = await buildTestImage(daemon.host);
  const defender = await startDefenderProcess({
    dockerHost: daemon.host,
    hostName: 'bench-secrets',
    console: { url: consoleProc.url, joinToken: (await api(consoleProc, 'POST', '/api/v1/defenders/join-tokens', {})).token, ca: consoleProc.caPem },
  });
  onCleanup(() => defender.stop());

  await api(consoleProc, 'POST', '/api/v1/users', { name: 'bench', password: 'bench-password-1234', role: 'user', groups: ['bench'] });
  await api(consoleProc, 'POST', '/api/v1/rules', { name: 'bench-all', effect: 'allow', groups: ['bench'], actions: ['*'] });
  await api(consoleProc, 'POST', '/api/v1/secret-stores', { name: 'bench-builtin', kind: 'builtin', config: {} });
  for (let i = 0; i < Math.max(ENV, FILES); i++) await api(consoleProc, 'PUT', '/api/v1/secret-stores/bench-builtin/values', { path: `s${i}`, value: `bench-secret-value-${i}` });
  const scope = { labels: ['bench.secrets=yes'], hosts: ['bench-secrets'] };
  if (ENV > 0) await api(consoleProc, 'POST', '/api/v1/secret-rules', { name: 'bench-env', mode: 'env', scope, secrets: Array.from({ length: ENV }, (_, i) => ({ name: `BENCH_${i}`, store: 'bench-builtin', path: `s${i}` })) });
  if (FILES > 0) await api(consoleProc, 'POST', '/api/v1/secret-rules', { name: 'bench-files', mode: 'file', scope, secrets: Array.from({ length: FILES }, (_, i) => ({ name: `bench-${i}`, store: 'bench-builtin', path: `s${i}` })) });

  const token = await consoleProc.login('bench', 'bench-password-1234');
  const { csr, key } = await makeCsr();
  const issued = await consoleProc.call('POST', '/api/v1/certs', { token, json: { csr } });
  if (issued.status !== 201) throw new Error(`certificate: ${issued.text}`);
  const certDir = join(work, 'bench-cert');
  await writePemFiles(certDir, { 'ca.pem': consoleProc.caPem, 'cert.pem': issued.body.cert, 'key.pem': key });
  const viaDefender = { ...defender.dockerEnv(certDir) };
  const direct = dockerCliEnv(daemon.host);

  // The Defender has the secret rules once a labelled run sees a secret.
  for (let i = 0; ; i++) {
    const r = await docker(['run', '--rm', '--label', 'bench.secrets=yes', image, 'sh', '-c', 'echo $BENCH_0'], { env: viaDefender, timeoutMs: 30_000 });
    if (r.code === 0 && r.stdout.trim() === 'bench-secret-value-0') break;
    if (i > 50) throw new Error(`the Defender does not inject the bench secrets: ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 200));
  }
  const kinds = {
    'direct (dockerd socket)': (): string[] => ['run', '--rm', image, 'true'],
    'Defender, no secrets': (): string[] => ['run', '--rm', image, 'true'],
    'Defender, with secrets': (): string[] => ['run', '--rm', '--label', 'bench.secrets=yes', image, 'true'],
  } as const;
  const times: Record<keyof typeof kinds, number[]> = { 'direct (dockerd socket)': [], 'Defender, no secrets': [], 'Defender, with secrets': [] };
  for (let i = 0; i < RUNS + 2; i++) {
    for (const [name, args] of Object.entries(kinds) as [keyof typeof kinds, () => string[]][]) {
      const env = name.startsWith('direct') ? direct : viaDefender;
      const ms = await timed(async () => {
        const r = await docker(args(), { env, timeoutMs: 60_000 });
        if (r.code !== 0) throw new Error(`docker ${args().join(' ')} (${name}): ${r.stderr}`);
      });
      if (i >= 2) times[name].push(ms); // two warm-up rounds
    }
  }
  const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)])) as Record<keyof typeof kinds, number>;
  console.log(table(['docker run --rm … true', 'median ms', 'min ms', 'max ms'], Object.entries(times).map(([k, v]) => [k, fmt(median(v), 1), fmt(Math.min(...v), 1), fmt(Math.max(...v), 1)])));
  const extra = m['Defender, with secrets'] - m['Defender, no secrets'];
  console.log(`secrets add ${fmt(extra, 1)} ms per docker run (target ≤ +10 ms: ${extra <= 10 ? 'met' : 'MISSED'}); the Defender adds ${fmt(m['Defender, no secrets'] - m['direct (dockerd socket)'], 1)} ms without secrets`);
}

async function benchSync(consoleProc: ConsoleProcess): Promise<void> {
  console.log(`\n2. Console sync of ${SECRETS} secrets from Vault KV v2 (protocol server, real provider)`);
  const vault = new VaultServer();
  await vault.server.listen();
  onCleanup(() => vault.server.close());
  vault.addToken('bench-token');
  const kv = vault.mount('secret', 2);
  for (let i = 0; i < SECRETS; i++) kv.set(`bench/s${i}`, { value: `v1-${i}` });
  await api(consoleProc, 'POST', '/api/v1/secret-stores', { name: 'bench-vault', kind: 'vault', config: { address: vault.server.url, auth: { method: 'token', token: 'bench-token' } } });

  const t = await api(consoleProc, 'POST', '/api/v1/defenders/join-tokens', {});
  const enrolled = await enrollDefender(consoleProc, t.token, 'bench-sync');
  if (!enrolled.ok) throw new Error(`enrolment: ${enrolled.res.text}`);
  const stream = await openPolicyStream(consoleProc.url, clientTls(enrolled.defender), 0);
  onCleanup(async () => stream.close());

  const perRule = 100;
  const createStart = performance.now();
  let fetchMs = 0;
  for (let r = 0; r * perRule < SECRETS; r++) {
    const secrets = Array.from({ length: Math.min(perRule, SECRETS - r * perRule) }, (_, j) => ({ name: `S_${r * perRule + j}`, store: 'bench-vault', path: `bench/s${r * perRule + j}`, key: 'value' }));
    const created = await api(consoleProc, 'POST', '/api/v1/secret-rules', { name: `bench-sync-${r}`, mode: 'env', scope: { hosts: ['bench-sync'] }, secrets });
    if (created.sync.failed.length) throw new Error(`fetch failed: ${JSON.stringify(created.sync.failed[0])}`);
    fetchMs += created.sync.durationMs;
  }
  const createMs = performance.now() - createStart;

  for (let i = 0; i < SECRETS; i++) kv.set(`bench/s${i}`, { value: `v2-${i}` });
  const refreshStart = performance.now();
  const refreshed = await api(consoleProc, 'POST', '/api/v1/secrets/refresh');
  const refreshMs = performance.now() - refreshStart;
  const version = (await api(consoleProc, 'GET', '/api/v1/secret-rules')).version as number;
  await stream.next((l) => l.type === 'snapshot' && l.snapshot.version >= version && l.snapshot.secrets.values.every((v) => v.value.startsWith('v2-')), 30_000);
  const pushedMs = performance.now() - refreshStart;
  console.log(
    table(
      ['sync', 'ms', 'per secret ms'],
      [
        [`create ${Math.ceil(SECRETS / perRule)} rules (fetch included)`, fmt(createMs), fmt(createMs / SECRETS, 2)],
        ['  of which fetching (Console-side)', fmt(fetchMs), fmt(fetchMs / SECRETS, 2)],
        [`refresh: ${refreshed.sync.changed} changed values`, fmt(refreshMs), fmt(refreshMs / SECRETS, 2)],
        ['refresh until the Defender holds them all', fmt(pushedMs), ''],
      ],
    ),
  );
}

async function main(): Promise<void> {
  console.log(`bench:secrets on ${cpus().length} CPUs, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}, node ${process.version}`);
  const work = await mkdtemp(join(tmpdir(), 'drawbridge-bench-secrets-'));
  onCleanup(() => rm(work, { recursive: true, force: true }));
  const consoleProc = await startConsoleProcess({ args: ['--secret-sync-interval', '0'] });
  onCleanup(() => consoleProc.stop({ remove: true }));
  if (!skip.has('run')) await benchRun(work, consoleProc);
  if (!skip.has('sync')) await benchSync(consoleProc);
}

main()
  .catch((e: Error) => {
    console.error(`bench: ${e.stack ?? e.message}`);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
