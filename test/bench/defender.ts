/**
 * `npm run bench:defender [-- options]`: the Defender against HAProxy (the same mTLS + keep-alive job without the
 * access control) and against dockerd's UNIX socket directly, in one run on this machine. Prints figures, ratios
 * and the targets; asserts nothing. A second yardstick, a Node TLS pipe with no HTTP work (node-tls-pipe.ts),
 * shows in the same run how close to HAProxy and to direct any Node proxy can come here.
 *
 * 1. keep-alive mTLS `GET /_ping` and `GET /v1.41/containers/json` (10 containers): req/s, p50/p99, from a
 *    separate load-generator process (load-client.ts), the same one for every target; rounds rotate the order.
 * 2. `docker ps` wall time with the real CLI (a new connection and handshake each time), runs interleaved.
 * 3. Streams: `docker cp`'s archive endpoint for a 1 GiB file both ways (download, and upload sent chunked as the
 *    docker CLI sends it) and `docker logs` of 256 MiB of 1 KiB lines.
 *
 * Options: --rounds 3 --duration 5 --warmup 1 --connections 16 --ps-runs 20 --archive-mib 1024 --upload-mib 1024
 *          --logs-mib 256 --haproxy-threads 1 --skip rps,ps,stream
 *          --profile DIR (CPU profile of the Defender, written at its exit)
 * Everything (dockerd, Defender, HAProxy, the pipe, containers, temp dirs) is removed at the end, on error and on Ctrl-C.
 */
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startDefenderProcess } from '../support/defender-process.js';
import { dockerCliEnv, startDockerd } from '../support/dockerd.js';
import { buildTestImage } from '../support/test-image.js';
import * as fx from './fixtures.js';
import { haproxyVersion, startHaproxy } from './haproxy.js';
import { startNodeTlsPipe } from './node-tls-pipe.js';
import { runJob, type RpsResult, type StreamResult, type Target } from './load-client.js';
import { fmt, median, processCpuMs, ratioRows, table, type RatioCheck } from './report.js';
import { cleanup, onCleanup } from './cleanups.js';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    connections: { type: 'string', default: '16' },
    'ps-runs': { type: 'string', default: '20' },
    'archive-mib': { type: 'string', default: '1024' },
    'upload-mib': { type: 'string', default: '1024' },
    'logs-mib': { type: 'string', default: '256' },
    'haproxy-threads': { type: 'string', default: '1' },
    skip: { type: 'string', default: '' },
    profile: { type: 'string' },
  },
});
const ROUNDS = Number(opt.rounds);
const CONNECTIONS = Number(opt.connections);
const HAPROXY_THREADS = Number(opt['haproxy-threads']);
const skip = new Set(opt.skip.split(',').filter(Boolean));


interface Bench {
  readonly name: string;
  readonly target: Target;
  /** The proxy's PID (for its CPU time); none for direct. */
  readonly pid?: number;
}

const progress = (s: string): void => console.log(`bench: ${s}`);
const NODE_PIPE = 'Node TLS pipe (no HTTP)';
const rotate = <T>(list: readonly T[], n: number): T[] => list.map((_, i) => list[(i + n) % list.length]!);

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'drawbridge-bench-'));
  onCleanup(() => rm(work, { recursive: true, force: true }));
  const load0 = loadavg()[0]!;

  progress('starting a private dockerd and building the test image');
  const daemon = await startDockerd();
  onCleanup(() => daemon.stop());
  const direct = dockerCliEnv(daemon.host, { ...process.env, DOCKER_CONFIG: join(work, 'docker-config') });
  const image = await buildTestImage(daemon.host);
  const dockerdPid = Number(await readFile(join(daemon.dir, 'pid'), 'utf8'));
  const dockerdVersion = await fx.docker(direct, ['version', '--format', '{{.Server.Version}} (CLI {{.Client.Version}})']);
  await fx.createListContainers(direct, image);

  if (opt.profile) {
    await mkdir(resolve(opt.profile), { recursive: true });
    process.env.NODE_OPTIONS = `--import ${new URL('./cpu-profile-preload.js', import.meta.url).href}`;
    process.env.DRAWBRIDGE_CPU_PROFILE_DIR = resolve(opt.profile);
  }
  const defender = await startDefenderProcess({ dockerHost: daemon.host, rules: fx.BENCH_RULES });
  delete process.env.NODE_OPTIONS;
  delete process.env.DRAWBRIDGE_CPU_PROFILE_DIR;
  onCleanup(() => defender.stop());
  const certs = await defender.certDir(fx.BENCH_USER);
  const cert = (name: string): string => join(certs, name);
  const benches: Bench[] = [
    { name: 'direct (unix, plain HTTP)', target: { kind: 'unix', socketPath: daemon.socketPath } },
    { name: 'Defender', target: { kind: 'tls', port: defender.port, ca: cert('ca.pem'), cert: cert('cert.pem'), key: cert('key.pem') }, pid: defender.child.pid },
  ];
  const env: Record<string, NodeJS.ProcessEnv> = { 'direct (unix, plain HTTP)': direct, Defender: defender.dockerEnv(certs) };

  const server = join(defender.dir, 'server');
  const haVersion = haproxyVersion();
  if (haVersion) {
    const ha = await startHaproxy({ dir: work, dockerSocket: daemon.socketPath, cert: join(server, 'cert.pem'), key: join(server, 'key.pem'), ca: join(server, 'ca.pem'), threads: HAPROXY_THREADS });
    onCleanup(() => ha.stop());
    benches.splice(1, 0, { name: 'HAProxy', target: { kind: 'tls', port: ha.port, ca: cert('ca.pem'), cert: cert('cert.pem'), key: cert('key.pem') }, pid: ha.pid });
    env.HAProxy = { ...env.Defender, DOCKER_HOST: `tcp://127.0.0.1:${ha.port}` };
  } else progress('haproxy is not installed: HAProxy rows are skipped (apt-get install haproxy)');
  // The ceiling of any Node proxy here: TLS and a byte pipe, none of the Defender's work (node-tls-pipe.ts).
  const pipe = await startNodeTlsPipe({ dockerSocket: daemon.socketPath, cert: join(server, 'cert.pem'), key: join(server, 'key.pem'), ca: join(server, 'ca.pem') });
  onCleanup(() => pipe.stop());
  benches.push({ name: NODE_PIPE, target: { kind: 'tls', port: pipe.port, ca: cert('ca.pem'), cert: cert('cert.pem'), key: cert('key.pem') }, pid: pipe.pid });
  env[NODE_PIPE] = { ...env.Defender, DOCKER_HOST: `tcp://127.0.0.1:${pipe.port}` };

  // Sanity: every target answers 200 before anything is measured.
  const tlsOf: Record<string, string> = {};
  for (const b of benches) {
    const r = await runJob({ mode: 'rps', target: b.target, path: '/_ping', connections: 1, warmupMs: 0, durationMs: 300 });
    if (r.errors > 0 || r.completed === 0) throw new Error(`${b.name} does not answer GET /_ping with 200:\n${defender.log()}`);
    tlsOf[b.name] = r.tls ?? 'plain';
  }

  const out: string[] = [];
  const checks: RatioCheck[] = [];
  out.push(
    `Drawbridge Defender benchmark — ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, Node ${process.version}, dockerd ${dockerdVersion},`,
    `HAProxy ${haVersion ?? 'not installed'} (nbthread ${HAPROXY_THREADS}, no logging), Defender audit log to a file, ${fx.BENCH_RULES.match(/- name:/g)!.length} rules (the bench user's is last);`,
    `TLS: ${benches.filter((b) => b.target.kind === 'tls').map((b) => `${b.name} ${tlsOf[b.name]}`).join(', ')}; 1-min load average before start ${load0.toFixed(2)}`,
  );

  if (!skip.has('rps')) {
    const paths = ['/_ping', '/v1.41/containers/json'];
    const results = new Map<string, Array<RpsResult & { proxyUs: number; dockerdUs: number }>>();
    progress('warm-up: 2 s of each request through each target (JIT, pools), not measured');
    for (const path of paths) for (const b of benches) await runJob({ mode: 'rps', target: b.target, path, connections: CONNECTIONS, warmupMs: 0, durationMs: 2000 });
    for (let round = 0; round < ROUNDS; round++) {
      for (const path of paths) {
        for (const b of rotate(benches, round)) {
          progress(`round ${round + 1}/${ROUNDS}: ${path} via ${b.name}`);
          const [p0, d0] = [processCpuMs(b.pid), processCpuMs(dockerdPid)];
          const r = await runJob({ mode: 'rps', target: b.target, path, connections: CONNECTIONS, warmupMs: Number(opt.warmup) * 1000, durationMs: Number(opt.duration) * 1000 });
          const [p1, d1] = [processCpuMs(b.pid), processCpuMs(dockerdPid)];
          const key = `${path}\u0000${b.name}`;
          results.set(key, [...(results.get(key) ?? []), { ...r, proxyUs: ((p1 - p0) * 1000) / r.total, dockerdUs: ((d1 - d0) * 1000) / r.total }]);
        }
      }
    }
    const rows: string[][] = [];
    const med = (path: string, name: string, f: (r: RpsResult & { proxyUs: number; dockerdUs: number }) => number): number =>
      median((results.get(`${path}\u0000${name}`) ?? []).map(f));
    for (const path of paths) {
      rows.push([`GET ${path}`, '', '', '', '', '', '', '', '']);
      for (const b of benches) {
        const rs = results.get(`${path}\u0000${b.name}`)!;
        rows.push([
          `  ${b.name}`, fmt(med(path, b.name, (r) => r.rps)), rs.map((r) => fmt(r.rps)).join(' / '), fmt(med(path, b.name, (r) => r.p50Ms), 2), fmt(med(path, b.name, (r) => r.p99Ms), 2),
          String(rs.reduce((n, r) => n + r.errors, 0)), fmt(med(path, b.name, (r) => r.proxyUs)), fmt(med(path, b.name, (r) => r.dockerdUs)), fmt(med(path, b.name, (r) => (r.clientCpuMs * 1000) / r.total)),
        ]);
      }
      if (haVersion) {
        checks.push({ what: `GET ${path} req/s  Defender / HAProxy`, value: med(path, 'Defender', (r) => r.rps) / med(path, 'HAProxy', (r) => r.rps), op: '>=', target: 0.9 });
        checks.push({ what: `GET ${path} p99    Defender / HAProxy`, value: med(path, 'Defender', (r) => r.p99Ms) / med(path, 'HAProxy', (r) => r.p99Ms), op: '<=', target: 1.2 });
        checks.push({ what: `GET ${path} req/s  Node TLS pipe / HAProxy (reference)`, value: med(path, NODE_PIPE, (r) => r.rps) / med(path, 'HAProxy', (r) => r.rps), op: '>=', target: 0.9 });
      }
    }
    out.push('', `Keep-alive requests: ${CONNECTIONS} connections, one request in flight each; ${opt.warmup} s warm-up + ${opt.duration} s; median of ${ROUNDS} rounds (req/s of each round shown)`);
    out.push(table(['', 'req/s', 'rounds', 'p50 ms', 'p99 ms', 'errors', 'proxy CPU µs/req', 'dockerd CPU µs/req', 'client CPU µs/req'], rows));
  }

  if (!skip.has('ps')) {
    const runs = Number(opt['ps-runs']);
    const times = new Map<string, number[]>(benches.map((b) => [b.name, []]));
    progress(`docker ps × ${runs} per target (+3 warm-up), interleaved`);
    for (let i = -3; i < runs; i++) {
      for (const b of rotate(benches, i + 3)) {
        const ms = await fx.timeDockerPs(env[b.name]!);
        if (i >= 0) times.get(b.name)!.push(ms);
      }
    }
    const sorted = (name: string): number[] => [...times.get(name)!].sort((a, b) => a - b);
    out.push('', `docker ps (real CLI, new connection + handshake per run): ${runs} runs each, interleaved`);
    out.push(table(['', 'median ms', 'min ms', 'max ms'], benches.map((b) => [`  ${b.name}`, fmt(median(sorted(b.name)), 1), fmt(sorted(b.name)[0]!, 1), fmt(sorted(b.name).at(-1)!, 1)])));
    if (haVersion) checks.push({ what: 'docker ps time   Defender / HAProxy', value: median(times.get('Defender')!) / median(times.get('HAProxy')!), op: '<=', target: 1.1 });
  }

  if (!skip.has('stream')) {
    const archiveBytes = Number(opt['archive-mib']) * 1024 * 1024;
    const logsBytes = Number(opt['logs-mib']) * 1024 * 1024;
    progress(`writing ${opt['archive-mib']} MiB into a container and ${opt['logs-mib']} MiB into another's log`);
    onCleanup(() => fx.removeContainers(direct, ['bench-archive', 'bench-logs', 'bench-upload']));
    const streams: Array<{ name: string; path: string; uploadBytes?: number }> = [
      { name: `archive (docker cp) of a ${opt['archive-mib']} MiB file`, path: await fx.createArchiveContainer(direct, image, archiveBytes) },
      { name: `upload (docker cp into a container) of a ${opt['upload-mib']} MiB file`, path: await fx.createUploadContainer(direct, image), uploadBytes: Number(opt['upload-mib']) * 1024 * 1024 },
      { name: `logs of ${opt['logs-mib']} MiB in 1 KiB lines`, path: await fx.createLogsContainer(direct, image, logsBytes) },
    ];
    // A round that fails (a target that stalls) is reported and left out of the medians; the others go on.
    const results = new Map<string, Array<{ mbPerS: number; bytes: number; proxyS: number }>>();
    const failed: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const s of streams) {
        for (const b of rotate(benches, round)) {
          progress(`round ${round + 1}/${ROUNDS}: ${s.name} via ${b.name}`);
          const p0 = processCpuMs(b.pid);
          const key = `${s.name}\u0000${b.name}`;
          let r: StreamResult | null = null;
          try {
            r = await runJob({ mode: 'stream', target: b.target, path: s.path, ...(s.uploadBytes === undefined ? {} : { uploadBytes: s.uploadBytes }) });
            if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
          } catch (err) {
            const lines = (err as Error).message.split('\n');
            const why = (lines.find((l) => /^\w*Error: /.test(l)) ?? lines[0]!).trim(); // the load client's error, not its stack
            failed.push(`${s.name.split(' ')[0]} via ${b.name}, round ${round + 1}: ${why}`);
            progress(`FAILED: ${failed.at(-1)}`);
            r = null; // a result with another status is not a measurement either
          }
          const row = r ? { mbPerS: r.mbPerS, bytes: r.bytes, proxyS: (processCpuMs(b.pid) - p0) / 1000 } : { mbPerS: NaN, bytes: NaN, proxyS: NaN };
          results.set(key, [...(results.get(key) ?? []), row]);
        }
      }
    }
    if (failed.some((f) => f.includes('via Defender') || f.includes('via direct'))) process.exitCode = 1; // a yardstick proxy may fail; the Defender and direct may not
    const rows: string[][] = [];
    const mbps = (s: string, name: string): number => median(results.get(`${s}\u0000${name}`)!.map((r) => r.mbPerS));
    for (const s of streams) {
      rows.push([s.name, '', '', '', '']);
      for (const b of benches) {
        const rs = results.get(`${s.name}\u0000${b.name}`)!;
        rows.push([`  ${b.name}`, fmt(mbps(s.name, b.name)), rs.map((r) => fmt(r.mbPerS)).join(' / '), fmt(median(rs.map((r) => r.bytes)) / 1e6), fmt(median(rs.map((r) => r.proxyS)), 2)]);
      }
      checks.push({ what: `${s.name.split(' ')[0]} stream MB/s  Defender / direct`, value: mbps(s.name, 'Defender') / mbps(s.name, benches[0]!.name), op: '>=', target: 0.9 });
      checks.push({ what: `${s.name.split(' ')[0]} stream MB/s  Node TLS pipe / direct (reference)`, value: mbps(s.name, NODE_PIPE) / mbps(s.name, benches[0]!.name), op: '>=', target: 0.9 });
      if (haVersion) checks.push({ what: `${s.name.split(' ')[0]} stream MB/s  HAProxy / direct (reference)`, value: mbps(s.name, 'HAProxy') / mbps(s.name, benches[0]!.name), op: '>=', target: 0.9 });
    }
    out.push('', `Streams: one connection, body counted and discarded (upload: sent from memory); median of ${ROUNDS} rounds`);
    out.push(table(['', 'MB/s', 'rounds', 'MB', 'proxy CPU s'], rows));
    if (failed.length > 0) out.push(`Failed rounds (— above, left out of the medians):\n${failed.map((f) => `  ${f}`).join('\n')}`);
    await fx.removeContainers(direct, ['bench-archive', 'bench-logs', 'bench-upload']);
  }

  const audit = await stat(defender.auditPath).catch(() => null);
  out.push('', `Ratios against the targets${haVersion ? '' : ' (no HAProxy: Defender/HAProxy ratios skipped)'}`);
  out.push(table(['', 'measured', 'target', ''], ratioRows(checks)));
  out.push('', `Defender audit log: ${fmt((audit?.size ?? 0) / 1e6, 1)} MB written during the run; 1-min load average at the end ${loadavg()[0]!.toFixed(2)}`);
  console.log(`\n${out.join('\n')}\n`);
  if (opt.profile) progress(`the Defender's CPU profile is written to ${resolve(opt.profile)} when it stops`);
}

main()
  .catch((error: Error) => {
    console.error(`bench: ${error.stack ?? error.message}`);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
