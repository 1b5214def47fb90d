// Running the real Defender binary the way an operator does: rules reloads (good and broken), refusing to start on
// a bad configuration, Prometheus metrics, a --config file, and a graceful SIGTERM with a stream still open.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { connect as tcpConnect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { daemonRequest, removeLabelled } from '../support/daemon-request.js';
import { DRAWBRIDGE_BIN, startDefenderProcess, type DefenderProcess } from '../support/defender-process.js';
import type {} from '../support/global-setup.js'; // the ProvidedContext keys
import { createCa, writePemFiles, type CertificateAuthority } from '../support/pki.js';
import { pollUntil } from '../support/poll.js';
import { rawRequest, RawTlsClient, type RawResponse } from '../support/tls-client.js';

const LABEL_KEY = 'drawbridge-test';
const LABEL = `${LABEL_KEY}=defender-operations`;

// The Defender polls the rules file every 250 ms; a change must be in force within about a second. The deadline
// leaves room for a loaded machine; nothing waits for it unless the change is late.
const RELOAD_DEADLINE_MS = 3_000;

const readerRules = (extra = ''): string => `
rules:
  - name: alice-reads
    effect: allow
    users: [alice]
    actions: [container_list, docker_ping]
${extra}`;

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});
afterAll(async () => {
  await removeLabelled(inject('dockerHost'), LABEL);
});

/** A Defender started by the test harness; stopped after the test (its exit code checked). */
async function defender(rules: string, args: string[] = []): Promise<DefenderProcess> {
  const dp = await startDefenderProcess({ dockerHost: inject('dockerHost'), rules, args });
  cleanup.push(async () => {
    const running = dp.child.exitCode === null && dp.child.signalCode === null;
    const code = await dp.stop(); // also removes its directory
    if (running) expect(code).toBe(0);
  });
  return dp;
}

async function request(port: number, certDir: string, method: string, target: string, headers: Record<string, string> = {}, body?: string): Promise<RawResponse> {
  const client = await RawTlsClient.connect(port, certDir);
  try {
    await client.write(rawRequest(method, target, headers, body));
    return await client.readResponse(method);
  } finally {
    client.destroy();
  }
}

const messageOf = (res: RawResponse): string => res.json<{ message: string }>().message;

describe('rules file', () => {
  it('enforces a new version of the rules file without a restart', async () => {
    const dp = await defender(readerRules());
    const alice = await dp.certDir({ user: 'alice', groups: [] });
    const before = await request(dp.port, alice, 'GET', '/version');
    expect([before.status, messageOf(before)]).toEqual([403, "[Drawbridge] The command 'docker_version' denied for user 'alice' by the default deny-all rule"]);

    await dp.writeRules(readerRules(`  - name: alice-version\n    effect: allow\n    users: [alice]\n    actions: [docker_version]\n`));
    const after = await pollUntil('the new rule to be enforced', async () => {
      const res = await request(dp.port, alice, 'GET', '/version');
      return res.status === 200 && res;
    }, RELOAD_DEADLINE_MS);
    expect(after.json()).toHaveProperty('ApiVersion');
    await pollUntil('the reload to be logged', () => /INFO drawbridge-defender: rules reloaded .*rules=2/.test(dp.log()));
    const last = await pollUntil('the audit line of the allowed request', async () => (await dp.audit()).find((l) => l.decision === 'allow'));
    expect(last).toMatchObject({ user: 'alice', action: 'docker_version', rule: 'alice-version' });
  });

  it('keeps the last good rules when an edit breaks the file, and names the rule, field and line', async () => {
    const good = readerRules(`  - name: alice-version\n    effect: allow\n    users: [alice]\n    actions: [docker_version]\n`);
    const dp = await defender(good);
    const alice = await dp.certDir({ user: 'alice', groups: [] });
    expect((await request(dp.port, alice, 'GET', '/version')).status).toBe(200);

    // A broken edit that, were it applied, would no longer allow docker_version.
    const broken = `rules:\n  - name: alice-reads\n    effect: allow\n    users: [alice]\n    actions: [container_list]\n  - name: typo-rule\n    effect: permit\n    users: [alice]\n`;
    await dp.writeRules(broken);
    await pollUntil('the broken edit to be reported', () => /keeping the last good rules/.test(dp.log()), RELOAD_DEADLINE_MS);
    expect(dp.log()).toContain(`the rules file changed but is invalid; keeping the last good rules:\nline 7, rule 'typo-rule' (#2), field 'effect': must be "allow" or "deny"`);
    expect((await request(dp.port, alice, 'GET', '/version')).status).toBe(200); // still the good rules
    const lines = await pollUntil('both audit lines', async () => {
      const all = await dp.audit();
      return all.length >= 2 && all;
    });
    expect(lines.map((l) => [l.action, l.decision, l.rule])).toEqual([
      ['docker_version', 'allow', 'alice-version'],
      ['docker_version', 'allow', 'alice-version'],
    ]);

    // fixing the file is picked up again
    await dp.writeRules(readerRules());
    await pollUntil('the fixed rules to be enforced', async () => (await request(dp.port, alice, 'GET', '/version')).status === 403, RELOAD_DEADLINE_MS);
  });
});

/** Runs `drawbridge defender ARGS` directly. */
function spawnDefender(args: string[]): { child: ChildProcess; stderr: () => string; exited: Promise<number | null>; listening: Promise<number> } {
  const child = spawn(process.execPath, [DRAWBRIDGE_BIN, 'defender', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  child.stdout!.resume();
  // 'close', not 'exit': by then everything it wrote on stderr has been read
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const listening = pollUntil('the Defender to listen', () => {
    if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${stderr}`);
    const m = /listening listen=\S+:(\d+)/.exec(stderr);
    return m ? Number(m[1]) : undefined;
  }, 15_000);
  listening.catch(() => undefined);
  cleanup.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  });
  return { child, stderr: () => stderr, exited, listening };
}

interface Pki {
  readonly dir: string;
  readonly ca: CertificateAuthority;
  readonly tls: { ca: string; cert: string; key: string };
  userDir(user: string, groups?: string[]): Promise<string>;
}

async function makePki(): Promise<Pki> {
  const dir = await mkdtemp(join(tmpdir(), 'drawbridge-ops-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  const ca = await createCa();
  const server = await ca.issueServerCert({ dnsNames: ['localhost'], ips: ['127.0.0.1'] });
  await writePemFiles(join(dir, 'server'), { 'ca.pem': ca.cert, 'cert.pem': server.cert, 'key.pem': server.key });
  return {
    dir,
    ca,
    tls: { ca: join(dir, 'server/ca.pem'), cert: join(dir, 'server/cert.pem'), key: join(dir, 'server/key.pem') },
    async userDir(user, groups = []) {
      const pem = await ca.issueClientCert({ user, groups });
      const path = join(dir, 'users', user);
      await writePemFiles(path, { 'ca.pem': ca.cert, 'cert.pem': pem.cert, 'key.pem': pem.key });
      return path;
    },
  };
}

describe('startup', () => {
  it.each<[string, (pki: Pki, rules: string) => Promise<string[]>, RegExp]>([
    [
      'a broken rules file',
      async (pki) => {
        const rules = join(pki.dir, 'broken.yaml');
        await writeFile(rules, 'rules:\n  - name: ok\n    effect: allow\n  - name: bad\n    effect: allow\n    actions: [container_crate]\n');
        return ['--tls-ca', pki.tls.ca, '--tls-cert', pki.tls.cert, '--tls-key', pki.tls.key, '--rules', rules];
      },
      /^drawbridge defender: the rules file \S+broken\.yaml is invalid:\nline 6, rule 'bad' \(#2\), field 'actions\.0': 'container_crate' matches no Docker action/,
    ],
    [
      'a missing rules file',
      async (pki) => ['--tls-ca', pki.tls.ca, '--tls-cert', pki.tls.cert, '--tls-key', pki.tls.key, '--rules', join(pki.dir, 'nope.yaml')],
      /^drawbridge defender: cannot read the rules file \S+nope\.yaml: ENOENT/,
    ],
    [
      'no --tls-ca',
      async (pki, rules) => ['--tls-cert', pki.tls.cert, '--tls-key', pki.tls.key, '--rules', rules],
      /^drawbridge defender: --tls-ca \(tlsCa\): is required \(the CA that signs client certificates\)/,
    ],
    [
      'a --tls-ca that does not exist',
      async (pki, rules) => ['--tls-ca', join(pki.dir, 'missing-ca.pem'), '--tls-cert', pki.tls.cert, '--tls-key', pki.tls.key, '--rules', rules],
      /^drawbridge defender: cannot read the CA file \S+missing-ca\.pem: ENOENT/,
    ],
    [
      'an unknown flag',
      async (pki, rules) => ['--tls-ca', pki.tls.ca, '--tls-cert', pki.tls.cert, '--tls-key', pki.tls.key, '--rules', rules, '--max-bdy', '1'],
      /^drawbridge defender: .*'--max-bdy'.*\nRun 'drawbridge defender --help' for the options\./,
    ],
  ])('refuses to start with %s: exit code 2 and a clear message', async (_, argsFor, message) => {
    const pki = await makePki();
    const rules = join(pki.dir, 'rules.yaml');
    await writeFile(rules, readerRules());
    const run = spawnDefender(['--listen', '127.0.0.1:0', '--docker', inject('dockerHost'), ...(await argsFor(pki, rules))]);
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toMatch(message);
    expect(run.stderr()).not.toMatch(/listening|at .*\.js:\d+/); // never started, no stack trace
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (s: string) => (body += s));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

describe('metrics', () => {
  it('counts requests by action and decision at GET /metrics', async () => {
    const port = await freePort();
    const dp = await defender(readerRules(), ['--metrics', `127.0.0.1:${port}`]);
    expect(dp.log()).toMatch(new RegExp(`listening .*metrics=127\\.0\\.0\\.1:${port}`));
    const alice = await dp.certDir({ user: 'alice', groups: [] });
    const sent: [string, string, number][] = [
      ['GET', '/containers/json', 200],
      ['GET', '/containers/json?all=1', 200],
      ['GET', '/_ping', 200],
      ['GET', '/version', 403],
      ['POST', '/containers/create', 403],
      ['GET', '/containers/%2e%2e/json', 400],
      ['GET', '/no/such/route', 403],
    ];
    const client = await RawTlsClient.connect(dp.port, alice);
    for (const [method, target, status] of sent) {
      await client.write(rawRequest(method, target));
      expect((await client.readResponse(method)).status, `${method} ${target}`).toBe(status);
    }
    client.destroy();

    const res = await httpGet(port, '/metrics');
    expect(res.status).toBe(200);
    const counters = Object.fromEntries([...res.body.matchAll(/^drawbridge_requests_total\{action="([^"]+)",decision="([^"]+)"\} (\d+)$/gm)].map((m) => [`${m[1]} ${m[2]}`, Number(m[3])]));
    expect(counters).toEqual({
      'container_list allow': 2,
      'docker_ping allow': 1,
      'docker_version deny': 1,
      'container_create deny': 1,
      'unknown reject': 1,
      'unknown deny': 1,
    });
    expect(res.body).toMatch(/^drawbridge_rules 1$/m);
    expect(res.body).toMatch(/^drawbridge_request_duration_seconds_count 7$/m);
    expect((await httpGet(port, '/other')).status).toBe(404);
  });
});

describe('--config FILE', () => {
  const rules = `
rules:
  - name: alice-on-cfg-host
    effect: allow
    users: [alice]
    hosts: [cfg-host]
    actions: [container_list, container_create]
`;
  /** The same requests against a Defender; what came back and what was audited, without timestamps. */
  async function observe(port: number, certDir: string, auditPath: string): Promise<unknown[]> {
    const results: unknown[] = [];
    const big = JSON.stringify({ Image: inject('testImage'), Cmd: ['echo', 'x'.repeat(3000)], Labels: { [LABEL_KEY]: 'defender-operations' } });
    for (const [method, target, body] of [['GET', '/containers/json', undefined], ['GET', '/version', undefined], ['POST', '/containers/create', big]] as const) {
      const res = await request(port, certDir, method, target, body ? { 'Content-Type': 'application/json' } : {}, body);
      results.push([res.status, res.status === 200 ? 'ok' : messageOf(res)]);
    }
    const audit = await pollUntil('3 audit lines', async () => {
      const lines = (await readFile(auditPath, 'utf8').catch(() => '')).split('\n').filter(Boolean);
      return lines.length >= 3 && lines;
    });
    return [...results, ...audit.map((l) => ({ ...(JSON.parse(l) as object), time: 'T' }))];
  }

  it('takes the same settings from a YAML file as from flags', async () => {
    const pki = await makePki();
    const rulesPath = join(pki.dir, 'rules.yaml');
    await writeFile(rulesPath, rules);
    const alice = await pki.userDir('alice');
    const settings = { docker: inject('dockerHost'), tlsCa: pki.tls.ca, tlsCert: pki.tls.cert, tlsKey: pki.tls.key, rules: rulesPath, hostName: 'cfg-host', maxBody: 2048 };

    const configPath = join(pki.dir, 'defender.yaml');
    const fileAudit = join(pki.dir, 'file-audit.jsonl');
    await writeFile(configPath, Object.entries({ listen: '127.0.0.1:0', ...settings, auditLog: fileAudit, shutdownTimeout: 1 }).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join('\n'));
    const fromFile = spawnDefender(['--config', configPath]);
    const filePort = await fromFile.listening;

    const flagAudit = join(pki.dir, 'flag-audit.jsonl');
    const fromFlags = spawnDefender([
      '--listen', '127.0.0.1:0', '--docker', settings.docker, '--tls-ca', settings.tlsCa, '--tls-cert', settings.tlsCert, '--tls-key', settings.tlsKey,
      '--rules', settings.rules, '--host-name', settings.hostName, '--max-body', String(settings.maxBody), '--audit-log', flagAudit, '--shutdown-timeout', '1',
    ]);
    const flagPort = await fromFlags.listening;

    const viaFile = await observe(filePort, alice, fileAudit);
    expect(viaFile.slice(0, 3)).toEqual([
      [200, 'ok'],
      [403, "[Drawbridge] The command 'docker_version' denied for user 'alice' by the default deny-all rule"],
      [413, expect.stringMatching(/^\[Drawbridge\] the request body \(\d+ bytes\) is over the Defender's limit of 2048 bytes$/)],
    ]);
    expect(viaFile[3]).toMatchObject({ host: 'cfg-host', user: 'alice', action: 'container_list', decision: 'allow' });
    expect(await observe(flagPort, alice, flagAudit)).toEqual(viaFile);

    fromFile.child.kill('SIGTERM');
    fromFlags.child.kill('SIGTERM');
    expect(await fromFile.exited).toBe(0);
    expect(await fromFlags.exited).toBe(0);
  });

  it('lets flags win over the file', async () => {
    const pki = await makePki();
    const rulesPath = join(pki.dir, 'rules.yaml');
    await writeFile(rulesPath, rules);
    const alice = await pki.userDir('alice');
    const configPath = join(pki.dir, 'defender.yaml');
    const auditPath = join(pki.dir, 'audit.jsonl');
    await writeFile(configPath, [
      'listen: 127.0.0.1:0', `docker: ${inject('dockerHost')}`, `tlsCa: ${pki.tls.ca}`, `tlsCert: ${pki.tls.cert}`, `tlsKey: ${pki.tls.key}`,
      `rules: ${rulesPath}`, 'hostName: cfg-host', `auditLog: ${auditPath}`,
    ].join('\n'));
    const run = spawnDefender(['--config', configPath, '--host-name', 'flag-host']);
    const port = await run.listening;
    expect(run.stderr()).toMatch(/listening .*host=flag-host/);
    const res = await request(port, alice, 'GET', '/containers/json');
    expect([res.status, messageOf(res)]).toEqual([403, "[Drawbridge] The command 'container_list' denied for user 'alice' by the default deny-all rule"]);
    const [line] = await pollUntil('the audit line', async () => {
      const lines = (await readFile(auditPath, 'utf8').catch(() => '')).split('\n').filter(Boolean);
      return lines.length > 0 && lines;
    });
    expect(JSON.parse(line!)).toMatchObject({ host: 'flag-host', decision: 'deny' });
  });
});

describe('graceful shutdown', () => {
  it('on SIGTERM refuses new connections, keeps an open logs -f stream flowing for the grace period, then exits 0 (a connection stalled before its TLS handshake does not hold it)', async () => {
    const name = `dbo-tick-${randomBytes(4).toString('hex')}`;
    const created = await daemonRequest(inject('dockerHost'), 'POST', `/containers/create?name=${name}`, {
      Image: inject('testImage'),
      Cmd: ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.05; done'],
      Labels: { [LABEL_KEY]: 'defender-operations' },
    });
    expect(created.status, created.body).toBe(201);
    expect((await daemonRequest(inject('dockerHost'), 'POST', `/containers/${name}/start`)).status).toBe(204);

    const dp = await defender(`rules:\n  - name: alice-logs\n    effect: allow\n    users: [alice]\n    actions: [container_logs, docker_ping]\n`, ['--shutdown-timeout', '2']);
    const alice = await dp.certDir({ user: 'alice', groups: [] });
    const stream = await RawTlsClient.connect(dp.port, alice);
    cleanup.push(async () => stream.destroy());
    await stream.write(rawRequest('GET', `/containers/${name}/logs?follow=1&stdout=1&tail=0`));
    const head = await stream.readHead();
    expect(head.status).toBe(200);
    expect(head.headers['transfer-encoding']).toBe('chunked');

    let received = '';
    const ticks = (): number[] => [...received.matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
    const readTicks = async (until: () => boolean): Promise<void> => {
      while (!until()) {
        const chunk = await stream.readChunk();
        if (chunk === null) throw new Error('the logs stream ended');
        received += chunk.toString('latin1'); // frames: 8-byte header + text; the text is all we look at
      }
    };
    await readTicks(() => ticks().length > 0);

    // A client that connects and never sends its ClientHello: Node would wait 120 s for the handshake.
    const stalled = tcpConnect(dp.port, '127.0.0.1');
    const stalledClosed = new Promise<void>((resolve) => stalled.once('close', () => resolve()).once('error', () => undefined));
    await new Promise<void>((resolve, reject) => stalled.once('connect', resolve).once('error', reject));
    cleanup.push(async () => void stalled.destroy());

    const exited = new Promise<number | null>((resolve) => dp.child.once('exit', (code) => resolve(code)));
    dp.child.kill('SIGTERM');
    await pollUntil('new connections to be refused', async () => {
      try {
        (await RawTlsClient.connect(dp.port, alice)).destroy();
        return false;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code === 'ECONNREFUSED';
      }
    });
    const lastBeforeRefused = Math.max(...ticks());
    expect(dp.child.exitCode).toBe(null); // still serving the stream
    await readTicks(() => Math.max(...ticks()) >= lastBeforeRefused + 3); // still delivering after the listener closed

    // When the grace period is over the stream is cut (no last chunk) and the process exits cleanly.
    await expect(readTicks(() => false)).rejects.toThrow(/the connection (was closed|failed)/);
    expect(await exited).toBe(0);
    await stalledClosed;
    await pollUntil('the shutdown to be logged', () => /INFO drawbridge-defender: shutting down signal=SIGTERM/.test(dp.log()));
  });
});
