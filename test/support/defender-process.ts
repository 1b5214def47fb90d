/**
 * Runs the real `drawbridge defender` binary (dist/main/cli/drawbridge.js) for end-to-end tests and tools, with a
 * fresh test PKI: a CA, the Defender's server certificate for 127.0.0.1/localhost, and a client certificate
 * directory per user in the layout the docker CLI reads (`ca.pem`, `cert.pem`, `key.pem`).
 *
 * With `console`, the Defender is Console-managed instead (`--console`): it enrols with the join token, listens
 * on a free 127.0.0.1 port it asks for at enrolment, keeps its state in `stateDir`, and also writes its audit to
 * `auditPath`. Users' certificates then come from the Console (the test CA's `certDir` is refused), and
 * `restart()` runs it again on the same state (without the token).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Identity } from '../../shared/identity/certificate-identity.js';
import { freePort } from './console-process.js';
import { pollUntil } from './poll.js';
import { createCa, writePemFiles, type CertificateAuthority, type ClientCertOptions } from './pki.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root, from test/support (sources under vitest) or dist/test/support (compiled tools). */
export const REPO_ROOT = resolve(here, here.includes(`${join('dist', 'test')}`) ? '../../..' : '../..');
export const DRAWBRIDGE_BIN = join(REPO_ROOT, 'dist/main/cli/drawbridge.js');

export interface DefenderProcessOptions {
  /** The Docker daemon to put the Defender in front of (`unix:///…`). */
  readonly dockerHost: string;
  /** Rules file text (YAML); required unless `console`. */
  readonly rules?: string;
  /** Console-managed: the Console's URL, a join token (first start) and how to verify the Console while enrolling. */
  readonly console?: { readonly url: string; readonly joinToken?: string; readonly ca?: string; readonly pin?: string };
  /** Console mode: reuse this state directory (default: a fresh one inside `dir`). */
  readonly stateDir?: string;
  readonly hostName?: string;
  /** Extra flags for `drawbridge defender`. */
  readonly args?: readonly string[];
  /** Reuse a CA (e.g. to test a second Defender with the same users). */
  readonly ca?: CertificateAuthority;
  /**
   * The Defender's TLS files as PEM text, e.g. a server certificate issued by a Console and that Console's CA (then
   * only certificates of that CA get in; `certDir` still issues from the test CA, which this Defender refuses).
   */
  readonly tls?: { readonly ca: string; readonly cert: string; readonly key: string };
}

export interface DefenderProcess {
  readonly dir: string;
  readonly ca: CertificateAuthority;
  readonly port: number;
  /** `tcp://127.0.0.1:PORT`. */
  readonly host: string;
  readonly rulesPath: string;
  readonly auditPath: string;
  /** Console mode: the state directory (keys, cache, spool). */
  readonly stateDir: string;
  readonly child: ChildProcess;
  /** Everything the Defender wrote on stderr so far. */
  log(): string;
  /** Audit lines written so far, parsed. */
  audit(): Promise<Record<string, unknown>[]>;
  /** Waits for exactly the `n` audit lines written after the first `mark` ones (fails if more appear). */
  auditSince(mark: number, n: number): Promise<Record<string, unknown>[]>;
  /** Writes a client certificate directory for `identity` and returns its path (for DOCKER_CERT_PATH). */
  certDir(identity: Identity, opts?: ClientCertOptions & { name?: string }): Promise<string>;
  /** The environment for the real docker CLI acting as the user whose cert dir is given. */
  dockerEnv(certDir: string): NodeJS.ProcessEnv;
  writeRules(text: string): Promise<void>;
  /** SIGTERM and wait for exit; resolves to the exit code. */
  stop(): Promise<number | null>;
  /** Console mode: SIGTERM, then the same Defender again on the same state (and files), without the join token. */
  restart(): Promise<DefenderProcess>;
}

export async function startDefenderProcess(opts: DefenderProcessOptions, reuseDir?: string): Promise<DefenderProcess> {
  const dir = reuseDir ?? (await mkdtemp(join(tmpdir(), 'drawbridge-defender-')));
  const ca = opts.ca ?? (await createCa());
  const rulesPath = join(dir, 'rules.yaml');
  const auditPath = join(dir, 'audit.jsonl');
  const stateDir = opts.stateDir ?? join(dir, 'state');
  let modeArgs: string[];
  if (opts.console) {
    const c = opts.console;
    if (c.ca) await writePemFiles(dir, { 'console-ca.pem': c.ca });
    modeArgs = [
      '--console', c.url, '--state', stateDir, '--listen', `127.0.0.1:${await freePort()}`, '--address', '127.0.0.1',
      ...(c.joinToken ? ['--join-token', c.joinToken] : []),
      ...(c.ca ? ['--console-ca', join(dir, 'console-ca.pem')] : []),
      ...(c.pin ? ['--console-pin', c.pin] : []),
    ];
  } else {
    if (opts.rules === undefined) throw new Error('startDefenderProcess: give `rules` (or `console`)');
    const server = opts.tls ?? { ca: ca.cert, ...(await ca.issueServerCert({ dnsNames: ['localhost'], ips: ['127.0.0.1'] })) };
    await writePemFiles(join(dir, 'server'), { 'ca.pem': server.ca, 'cert.pem': server.cert, 'key.pem': server.key });
    await writeFile(rulesPath, opts.rules);
    modeArgs = [
      '--listen', '127.0.0.1:0',
      '--tls-ca', join(dir, 'server/ca.pem'),
      '--tls-cert', join(dir, 'server/cert.pem'),
      '--tls-key', join(dir, 'server/key.pem'),
      '--rules', rulesPath,
    ];
  }
  const child = spawn(
    process.execPath,
    [
      DRAWBRIDGE_BIN, 'defender',
      ...modeArgs,
      '--docker', opts.dockerHost,
      '--host-name', opts.hostName ?? 'dev-a',
      '--audit-log', auditPath,
      ...(opts.args ?? []),
    ],
    { stdio: ['ignore', 'inherit', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const port = await new Promise<number>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`the Defender did not start in 15 s:\n${stderr}`)), 15_000);
    const onData = (): void => {
      const m = /listening listen=(\S+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        child.stderr!.off('data', onData);
        res(Number(/:(\d+)$/.exec(m[1]!)?.[1] ?? 0)); // 0: a UNIX socket (console mode)
      }
    };
    child.stderr!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      rej(new Error(`the Defender exited with ${code} before listening:\n${stderr}`));
    });
  });
  let users = 0;
  const readAudit = async (): Promise<Record<string, unknown>[]> => {
    const text = await readFile(auditPath, 'utf8').catch(() => '');
    return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  };
  const stop = async (remove: boolean): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const code = await exited;
    if (remove) await rm(dir, { recursive: true, force: true });
    return code;
  };
  return {
    dir,
    ca,
    port,
    host: `tcp://127.0.0.1:${port}`,
    rulesPath,
    auditPath,
    stateDir,
    child,
    log: () => stderr,
    audit: readAudit,
    async auditSince(mark, n) {
      const lines = await pollUntil(`${n} audit line(s) after #${mark}`, async () => {
        const all = await readAudit();
        return all.length >= mark + n && all;
      });
      if (lines.length !== mark + n) throw new Error(`expected ${n} audit line(s) after #${mark}, got ${lines.length - mark}: ${JSON.stringify(lines.slice(mark))}`);
      return lines.slice(mark);
    },
    async certDir(identity, certOpts = {}) {
      const pem = await ca.issueClientCert(identity, certOpts);
      const path = join(dir, 'users', certOpts.name ?? `${identity.user}-${++users}`);
      await writePemFiles(path, { 'ca.pem': ca.cert, 'cert.pem': pem.cert, 'key.pem': pem.key });
      return path;
    },
    dockerEnv(certDir) {
      const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: `tcp://127.0.0.1:${port}`, DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: certDir, DOCKER_CONFIG: join(dir, 'docker-config') };
      delete env.DOCKER_CONTEXT;
      return env;
    },
    async writeRules(text) {
      const tmp = `${rulesPath}.tmp`;
      await writeFile(tmp, text);
      await rename(tmp, rulesPath);
    },
    stop: () => stop(true),
    async restart() {
      if (!opts.console) throw new Error('restart() is for Console-managed Defenders');
      await stop(false);
      const { joinToken: _, ...consoleOpts } = opts.console;
      return startDefenderProcess({ ...opts, console: consoleOpts, stateDir }, dir);
    },
  };
}
