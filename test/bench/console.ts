/**
 * `npm run bench:console [-- options]`: the real Console binary (`drawbridge console`), measured from outside. Prints
 * figures and the targets next to them; asserts nothing.
 *
 * 1. Certificate issuance: `POST /api/v1/certs` with pre-generated P-256 CSRs as a logged-in access user, on one
 *    keep-alive connection (sequential), then on `--concurrency` connections; `GET /api/v1/auth/me` on the same
 *    connections is the baseline (TLS, HTTP, session lookup, no issuance): the difference is issuance's own cost.
 *    Sequential calls alternate in blocks of 50 (me, certs, me, …) so both see the same conditions.
 * 2. Rule-change propagation: `--defenders` enrolled Defenders hold `--connections` policy streams, opened by a
 *    separate process (console-streams.ts) over worker threads; `--changes` rule edits (`PUT /api/v1/rules/{name}`)
 *    `--interval` ms apart; per change and per stream, from just before the PUT is written to the snapshot with the
 *    new (or a later) version being read, on the machine-wide monotonic clock.
 * 3. The Console's VmRSS idle and with the streams open; its CPU time (all threads) per request and per change.
 *
 * Options: --certs 300 --warmup 50 --concurrency 8 --connections 200 --defenders 200 --changes 30 --interval 300
 *          --rules 20 --threads 2 --skip certs,push --profile DIR (CPU profile of the Console, written when it stops)
 * Everything (Console, stream process, temp dirs) is removed at the end, on error and on Ctrl-C.
 */
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { clientTls, enrollDefender, type EnrolledDefender } from '../support/console-defender-client.js';
import { ADMIN_PASSWORD, startConsoleProcess, type ConsoleProcess } from '../support/console-process.js';
import { makeCsr } from '../support/csr.js';
import { ascending, cpuMs, keepAliveClient, memoryAfterGc, percentile, rssMb, sleep, type KeepAliveClient, type Memory } from './console-http.js';
import { nowMs, startStreamClient } from './console-streams.js';
import { fmt, ratioRows, table, type RatioCheck } from './report.js';
import { cleanup, cleaningUp, onCleanup } from './cleanups.js';

const { values: opt } = parseArgs({
  options: {
    certs: { type: 'string', default: '300' },
    warmup: { type: 'string', default: '50' },
    concurrency: { type: 'string', default: '8' },
    connections: { type: 'string', default: '200' },
    defenders: { type: 'string', default: '200' },
    changes: { type: 'string', default: '30' },
    interval: { type: 'string', default: '300' },
    rules: { type: 'string', default: '20' },
    threads: { type: 'string', default: '2' },
    skip: { type: 'string', default: '' },
    profile: { type: 'string' },
  },
});
const [CERTS, WARMUP, CONCURRENCY, CONNECTIONS, CHANGES, INTERVAL, RULES, THREADS] = ['certs', 'warmup', 'concurrency', 'connections', 'changes', 'interval', 'rules', 'threads'].map((k) => Number(opt[k as keyof typeof opt]));
const DEFENDERS = Math.min(Number(opt.defenders), CONNECTIONS!);
const skip = new Set(opt.skip.split(',').filter(Boolean));
const BLOCK = 50;


const progress = (s: string): void => console.log(`bench: ${s}`);

interface Phase {
  readonly latencies: number[];
  wallMs: number;
  cpuMs: number;
  errors: number;
  newConnections: number;
  firstError?: string;
}
const newPhase = (): Phase => ({ latencies: [], wallMs: 0, cpuMs: 0, errors: 0, newConnections: 0 });

/** Runs `count` calls of `call`, `concurrency` at a time, adding to `into`. */
async function run(into: Phase, pid: number, count: number, concurrency: number, call: () => Promise<{ status: number; text: string; ms: number; reused: boolean }>, ok: number): Promise<void> {
  let left = count;
  const [t0, c0] = [performance.now(), cpuMs(pid)];
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (left-- > 0) {
      const r = await call();
      into.latencies.push(r.ms);
      if (!r.reused) into.newConnections++;
      if (r.status !== ok) {
        into.errors++;
        into.firstError ??= `HTTP ${r.status} ${r.text.slice(0, 300)}`;
      }
    }
  }));
  into.wallMs += performance.now() - t0;
  into.cpuMs += cpuMs(pid) - c0;
}

function phaseRow(name: string, p: Phase): string[] {
  const s = ascending(p.latencies);
  return [`  ${name}`, String(s.length), fmt(percentile(s, 50), 2), fmt(percentile(s, 99), 2), fmt(s.at(-1) ?? NaN, 2), fmt((s.length / p.wallMs) * 1000), fmt((p.cpuMs * 1000) / s.length), String(p.errors)];
}

async function certBench(cp: ConsoleProcess, out: string[], checks: RatioCheck[]): Promise<void> {
  const pid = cp.child.pid!;
  const admin = await cp.adminToken();
  const user = await cp.call('POST', '/api/v1/users', { token: admin, json: { name: 'bench-user', password: ADMIN_PASSWORD, role: 'user', groups: ['devs', 'bench'] } });
  if (user.status !== 201) throw new Error(`creating the bench user: HTTP ${user.status} ${user.text}`);
  const token = await cp.login('bench-user', ADMIN_PASSWORD);
  const total = WARMUP! + 2 * CERTS!;
  progress(`generating ${total} P-256 CSRs`);
  const csrs: string[] = [];
  for (let i = 0; i < total; i++) csrs.push((await makeCsr(`CN=bench-${i}`)).csr);
  const results: Record<string, Phase> = {};
  for (const [label, conc] of [['sequential', 1], [`concurrency ${CONCURRENCY}`, CONCURRENCY!]] as const) {
    const client: KeepAliveClient = keepAliveClient(cp.url, cp.caPem, conc);
    const me = (): ReturnType<KeepAliveClient['call']> => client.call('GET', '/api/v1/auth/me', { token });
    const cert = (): ReturnType<KeepAliveClient['call']> => client.call('POST', '/api/v1/certs', { token, json: { csr: csrs.pop()! } });
    const [meP, certP] = [(results[`me ${label}`] = newPhase()), (results[`cert ${label}`] = newPhase())];
    if (conc === 1) {
      progress(`warm-up: ${WARMUP} × (GET /auth/me, POST /certs), not measured`);
      const w = newPhase();
      for (let i = 0; i < WARMUP!; i++) await run(w, pid, 1, 1, me, 200).then(() => run(w, pid, 1, 1, cert, 201));
      if (w.errors) throw new Error(`warm-up failed: ${w.firstError}`);
      progress(`sequential: ${CERTS} × GET /auth/me and ${CERTS} × POST /certs on one keep-alive connection, blocks of ${BLOCK}`);
      for (let done = 0; done < CERTS!; done += BLOCK) {
        const n = Math.min(BLOCK, CERTS! - done);
        await run(meP, pid, n, 1, me, 200);
        await run(certP, pid, n, 1, cert, 201);
      }
    } else {
      progress(`${label}: ${CERTS} × GET /auth/me, then ${CERTS} × POST /certs`);
      await run(meP, pid, CERTS!, conc, me, 200);
      await run(certP, pid, CERTS!, conc, cert, 201);
    }
    client.close();
  }
  const rows: string[][] = [];
  const p50 = (k: string): number => percentile(ascending(results[k]!.latencies), 50);
  for (const label of ['sequential', `concurrency ${CONCURRENCY}`]) {
    const [me, cert] = [results[`me ${label}`]!, results[`cert ${label}`]!];
    rows.push([`${label} (new connections while measured: ${cert.newConnections + me.newConnections})`, '', '', '', '', '', '', '']);
    rows.push(phaseRow('GET /api/v1/auth/me (baseline)', me), phaseRow('POST /api/v1/certs', cert));
    const ratio = p50(`cert ${label}`) / p50(`me ${label}`);
    rows.push([`  issuance alone = certs − me (p50 ratio ${fmt(ratio, 1)}×)`, '', fmt(p50(`cert ${label}`) - p50(`me ${label}`), 2), '', '', '', fmt((cert.cpuMs / cert.latencies.length - me.cpuMs / me.latencies.length) * 1000), '']);
    for (const p of [me, cert]) if (p.errors) out.push(`  ${label}: ${p.errors} errors, first: ${p.firstError}`);
    checks.push({ what: `POST /api/v1/certs p50, ${label} (ms)`, value: p50(`cert ${label}`), op: '<=', target: 5 });
  }
  out.push('', `Certificate issuance from a P-256 CSR (access user, 2 groups), keep-alive; ${CERTS} requests each after ${WARMUP} warm-up pairs; Console CPU = all its threads`);
  out.push(table(['', 'requests', 'p50 ms', 'p99 ms', 'max ms', 'req/s', 'Console CPU µs/req', 'errors'], rows));
}

async function pushBench(cp: ConsoleProcess, out: string[], checks: RatioCheck[], measureMemory: (what: string) => Promise<void>): Promise<void> {
  const pid = cp.child.pid!;
  const admin = await cp.adminToken();
  progress(`creating ${RULES} rules`);
  const rule = (name: string, k: number) => ({ name, effect: 'allow', users: ['*', `-bench-blocked-${k}`], groups: [`team-${k}`, 'devs'], hosts: ['dev-*', `build-${k}`], actions: ['container_list', 'container_logs', 'docker_ping'] });
  for (let k = 0; k < RULES!; k++) {
    const r = await cp.call('POST', '/api/v1/rules', { token: admin, json: rule(k === RULES! - 1 ? 'bench-changing' : `bench-rule-${k}`, k) });
    if (r.status !== 201) throw new Error(`creating a rule: HTTP ${r.status} ${r.text}`);
  }
  const jt = await cp.call<{ token: string }>('POST', '/api/v1/defenders/join-tokens', { token: admin, json: { ttlSeconds: 3600, singleUse: false } });
  if (jt.status !== 201) throw new Error(`creating a join token: HTTP ${jt.status} ${jt.text}`);
  progress(`enrolling ${DEFENDERS} Defenders`);
  const enrolled: EnrolledDefender[] = [];
  const enrolMs: number[] = [];
  for (let next = 0; next < DEFENDERS; ) {
    const batch = Array.from({ length: Math.min(4, DEFENDERS - next) }, (_, i) => next + i);
    next += batch.length;
    await Promise.all(batch.map(async (i) => {
      const t0 = performance.now();
      const r = await enrollDefender(cp, jt.body.token, `bench-defender-${i}`);
      if (!r.ok) throw new Error(`enrolling bench-defender-${i}: HTTP ${r.res.status} ${r.res.text}`);
      enrolMs.push(performance.now() - t0);
      enrolled[i] = r.defender;
    }));
  }
  await measureMemory(`idle, ${DEFENDERS} Defenders enrolled, no streams`);

  progress(`opening ${CONNECTIONS} policy streams from a separate process (${THREADS} worker threads)`);
  const [t0, c0] = [performance.now(), cpuMs(pid)];
  const streams = await startStreamClient({ url: cp.url, ca: cp.caPem, identities: enrolled.map((d) => ({ cert: clientTls(d).cert, key: clientTls(d).key })), connections: CONNECTIONS!, threads: THREADS! });
  onCleanup(() => streams.close());
  const openMs = performance.now() - t0;
  const openCpu = cpuMs(pid) - c0;
  const rssOpen = rssMb(pid);
  await measureMemory(`${CONNECTIONS} streams open`);

  const editor = keepAliveClient(cp.url, cp.caPem, 1);
  const changes: Array<{ sentAt: number; version: number; putMs: number }> = [];
  const WARM = 3;
  progress(`${WARM} warm-up + ${CHANGES} measured rule changes, ${INTERVAL} ms apart`);
  let [c1, s1] = [0, 0];
  const start = performance.now();
  for (let k = 0; k < WARM + CHANGES!; k++) {
    await sleep(start + k * INTERVAL! - performance.now());
    if (k === WARM) [c1, s1] = [cpuMs(pid), cpuMs(streams.pid)];
    const sentAt = nowMs();
    const r = await editor.call('PUT', '/api/v1/rules/bench-changing', { token: admin, json: { ...rule('bench-changing', RULES! - 1), users: [`bench-user-${k}`] } });
    if (r.status !== 200) throw new Error(`PUT /api/v1/rules/bench-changing: HTTP ${r.status} ${r.text}`);
    if (k >= WARM) changes.push({ sentAt, version: (JSON.parse(r.text) as { version: number }).version, putMs: r.ms });
  }
  editor.close();
  await sleep(Math.max(2000, INTERVAL!));
  const [changeCpu, clientCpu] = [cpuMs(pid) - c1, cpuMs(streams.pid) - s1];
  const result = await streams.collect();
  await measureMemory(`${CONNECTIONS} streams open, after ${CHANGES} changes`);

  const all: number[] = [];
  const last: number[] = [];
  const first: number[] = [];
  let missing = 0;
  for (const ch of changes) {
    const per: number[] = [];
    for (const a of result.arrivals) {
      let got = NaN;
      for (let i = 0; i < a.length; i += 2) if (a[i]! >= ch.version) { got = a[i + 1]! - ch.sentAt; break; }
      if (Number.isNaN(got)) missing++;
      else per.push(got);
    }
    all.push(...per);
    if (per.length) {
      last.push(Math.max(...per));
      first.push(Math.min(...per));
    }
  }
  const row = (name: string, v: number[]): string[] => {
    const s = ascending(v);
    return [`  ${name}`, String(s.length), fmt(percentile(s, 50), 1), fmt(percentile(s, 99), 1), fmt(s.at(-1) ?? NaN, 1)];
  };
  out.push('', `Rule-change propagation: ${CONNECTIONS} policy streams of ${DEFENDERS} enrolled Defenders, ${RULES} rules, ${CHANGES} changes ${INTERVAL} ms apart (after ${WARM} warm-up changes)`);
  out.push(table(['', 'samples', 'p50 ms', 'p99 ms', 'max ms'], [
    row('PUT /rules/{name} sent → snapshot read, every delivery', all),
    row('PUT sent → FIRST stream has it, per change', first),
    row('PUT sent → LAST stream has it, per change', last),
    row('PUT /rules/{name} round trip', changes.map((c) => c.putMs)),
    row('enrolment (client keys + CSRs, new TLS connection)', enrolMs),
  ]));
  out.push(`  deliveries missing: ${missing} of ${changes.length * result.arrivals.length}; streams ended early: ${result.ended}; opening ${CONNECTIONS} streams: ${fmt(openMs)} ms, Console CPU ${fmt(openCpu)} ms, VmRSS just after (no GC) ${fmt(rssOpen, 1)} MB`);
  out.push(`  CPU per rule change: Console ${fmt(changeCpu / CHANGES!, 1)} ms (PUT + push to ${CONNECTIONS} streams), stream client ${fmt(clientCpu / CHANGES!, 1)} ms (reading them)`);
  checks.push({ what: 'rule change → snapshot p99, every delivery (ms)', value: percentile(ascending(all), 99), op: '<=', target: 500 });
  checks.push({ what: 'rule change → LAST stream, worst change (ms)', value: ascending(last).at(-1) ?? NaN, op: '<=', target: 500 });
  progress('closing the streams');
  await streams.close();
  await sleep(500);
  await measureMemory('streams closed');
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'drawbridge-bench-console-'));
  onCleanup(() => rm(work, { recursive: true, force: true }));
  const load0 = loadavg()[0]!;
  const profileDir = opt.profile ? resolve(opt.profile) : undefined;
  const preload = (name: string): string => `--import ${new URL(`./${name}`, import.meta.url).href}`;
  const memoryFile = join(work, 'memory.json');
  process.env.NODE_OPTIONS = preload('console-gc-preload.js');
  process.env.DRAWBRIDGE_BENCH_MEMORY_FILE = memoryFile;
  if (profileDir) {
    await mkdir(profileDir, { recursive: true });
    process.env.NODE_OPTIONS += ` ${preload('cpu-profile-preload.js')}`;
    process.env.DRAWBRIDGE_CPU_PROFILE_DIR = profileDir;
  }
  progress('starting the Console');
  const cp = await startConsoleProcess({ dir: work }).finally(() => {
    for (const k of ['NODE_OPTIONS', 'DRAWBRIDGE_BENCH_MEMORY_FILE', 'DRAWBRIDGE_CPU_PROFILE_DIR']) delete process.env[k];
  });
  const pid = cp.child.pid!;
  onCleanup(async () => {
    await cp.stop();
    // The preload names its file defender-<pid>-<thread>; the Console runs on the main thread (0).
    if (profileDir) await rename(join(profileDir, `defender-${pid}-0.cpuprofile`), join(profileDir, `console-${pid}.cpuprofile`));
  });
  await cp.adminToken();
  const memory: Array<[string, Memory]> = [];
  const measureMemory = async (what: string): Promise<void> => void memory.push([what, await memoryAfterGc(pid, memoryFile)]);
  await sleep(500);
  await measureMemory('idle after start and admin login');

  const out: string[] = [
    `Drawbridge Console benchmark — ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, Node ${process.version}; the Console logs to a pipe read by this process;`,
    `clients: this process (issuance, rule changes) and one separate process with ${THREADS} worker threads (policy streams); 1-min load average before start ${load0.toFixed(2)}`,
  ];
  const checks: RatioCheck[] = [];
  if (!skip.has('certs')) {
    await certBench(cp, out, checks);
    await measureMemory(`idle after issuing ${WARMUP! + 2 * CERTS!} certificates`);
  }
  if (!skip.has('push')) await pushBench(cp, out, checks, measureMemory);

  const base = memory[0]![1].rssMb;
  out.push('', 'Console memory after a full GC (VmRSS from /proc/<pid>/status; heap and external from process.memoryUsage())');
  out.push(table(['', 'VmRSS MB', 'vs start MB', 'JS heap used MB', 'external MB'], memory.map(([what, m]) => [`  ${what}`, fmt(m.rssMb, 1), fmt(m.rssMb - base, 1), fmt(m.heapUsedMb, 1), fmt(m.externalMb, 1)])));
  const before = memory.find(([w]) => w.includes('no streams'))?.[1];
  const open = memory.find(([w]) => w.endsWith('streams open'))?.[1];
  if (before && open) out.push(`  per open stream: ${fmt(((open.rssMb - before.rssMb) * 1024) / CONNECTIONS!, 1)} KB VmRSS, ${fmt(((open.heapUsedMb + open.externalMb - before.heapUsedMb - before.externalMb) * 1024) / CONNECTIONS!, 1)} KB JS heap + external`);
  out.push('', 'Targets');
  out.push(table(['', 'measured', 'target', ''], ratioRows(checks)));
  out.push('', `1-min load average at the end ${loadavg()[0]!.toFixed(2)}`);
  console.log(`\n${out.join('\n')}\n`);
  if (profileDir) progress(`the Console's CPU profile is written to ${profileDir}/console-${pid}.cpuprofile when it stops`);
}

main()
  .catch((error: Error) => {
    if (!cleaningUp()) console.error(`bench: ${error.stack ?? error.message}`); // after Ctrl-C: the Console is already gone
    process.exitCode = 1;
  })
  .finally(() => cleanup());
