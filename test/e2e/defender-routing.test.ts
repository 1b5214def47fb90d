// What a request asks for and who asks, through the real Defender binary and a real dockerd: paths are classified
// as dockerd routes them (or refused), only attach and exec start may turn an mTLS connection into a raw stream (bytes
// both ways, half-close included; a refused hijack is relayed and the connection closed), and a certificate without
// a user name gets nothing at all. (Framing and bodies: defender-protocol.test.ts.)
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { containerNames, daemonRequest, removeLabelled } from '../support/daemon-request.js';
import { startDefenderProcess, type DefenderProcess } from '../support/defender-process.js';
import { rawClients } from '../support/e2e-drivers.js';
import type {} from '../support/global-setup.js'; // the ProvidedContext keys
import { issueClientCertWithSubject, writePemFiles } from '../support/pki.js';
import { pollUntil } from '../support/poll.js';
import { demuxDockerStream, rawRequest, RawTlsClient, type RawResponse } from '../support/tls-client.js';

const LABEL_KEY = 'drawbridge-test';
const LABEL = `${LABEL_KEY}=defender-routing`;
const UPGRADE = { Connection: 'Upgrade', Upgrade: 'tcp' };

const RULES = `
rules:
  - name: stopper-stops
    effect: allow
    users: [stopper]
    actions: [container_stop, container_list, container_inspect]
  - name: lister-never-stops
    effect: deny
    users: [lister]
    actions: [container_stop]
  - name: lister-reads
    effect: allow
    users: [lister]
    actions: [container_list, container_inspect]
  - name: explorer-unknown
    effect: allow
    users: [explorer]
    actions: [unknown]
  - name: star-everything
    effect: allow
    users: [star]
    actions: ['*']
  - name: noexec-never-starts-exec
    effect: deny
    users: [noexec]
    actions: [container_exec_start]
  - name: devs-everything
    effect: allow
    groups: [devs]
`;

let dp: DefenderProcess;
const certs: Record<string, string> = {};
const clients = rawClients(() => dp.port, certs);
const open = clients.open;
const dockerHost = (): string => inject('dockerHost');
const unique = (what: string): string => `dbu-${what}-${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  dp = await startDefenderProcess({ dockerHost: inject('dockerHost'), rules: RULES });
  certs.alice = await dp.certDir({ user: 'alice', groups: ['devs'] });
  certs.noexec = await dp.certDir({ user: 'noexec', groups: ['devs'] });
  for (const user of ['lister', 'stopper', 'explorer', 'star']) certs[user] = await dp.certDir({ user, groups: [] });
  // Chains to the Defender's CA, but names no user: the Console never issues such a certificate.
  const noCn = await issueClientCertWithSubject(dp.ca, 'OU=devs');
  certs.nocn = join(dp.dir, 'users', 'no-cn');
  await writePemFiles(certs.nocn, { 'ca.pem': dp.ca.cert, 'cert.pem': noCn.cert, 'key.pem': noCn.key });
});

afterAll(async () => {
  clients.destroyAll();
  await removeLabelled(dockerHost(), LABEL);
  if (dp) expect(await dp.stop()).toBe(0);
});

async function auditCount(): Promise<number> {
  return (await dp.audit()).length;
}

/** Exactly the `n` audit lines written after `mark` (the count before the requests were sent). */
const auditSince = (mark: number, n: number): Promise<Record<string, unknown>[]> => dp.auditSince(mark, n);

/** A container made directly on the daemon (not through the Defender). */
async function daemonContainer(cmd: string[], extra: Record<string, unknown> = {}, start = true): Promise<string> {
  const name = unique('c');
  const res = await daemonRequest(dockerHost(), 'POST', `/containers/create?name=${name}`, { Image: inject('testImage'), Cmd: cmd, Labels: { [LABEL_KEY]: 'defender-routing' }, ...extra });
  expect(res.status, res.body).toBe(201);
  if (start) expect((await daemonRequest(dockerHost(), 'POST', `/containers/${name}/start`)).status).toBe(204);
  return name;
}

function message(res: RawResponse): string {
  expect(res.headers['content-type']).toBe('application/json');
  return res.json<{ message: string }>().message;
}

function expectDenied(res: RawResponse, action: string, user: string, rule: string | null): void {
  expect(res.status).toBe(403);
  const by = rule === null ? 'the default deny-all rule' : `rule '${rule}'`;
  expect(message(res)).toBe(`[Drawbridge] The command '${action}' denied for user '${user}' by ${by}`);
}

function expectRejected(res: RawResponse, status: number, reason: RegExp): void {
  expect(res.status).toBe(status);
  expect(message(res)).toMatch(/^\[Drawbridge\] /);
  expect(message(res)).toMatch(reason);
}

describe('request paths', () => {
  it.each([
    ['a `..` segment', '/containers/x/../json', /not canonical/],
    ['`//`', '//containers/json', /not canonical/],
    ['an encoded `..` (%2e%2e)', '/containers/%2e%2e/info', /not canonical/],
    ['a bad percent escape', '/containers/%zz/json', /'%' not followed by two hex digits/],
    ['an API version below 1.24', '/v1.12/containers/json', /API version 1\.12 is older than 1\.24/],
  ])('refuses a path with %s with 400 naming why', async (_, target, reason) => {
    const client = await open('lister');
    const mark = await auditCount();
    await client.write(rawRequest('GET', target));
    expectRejected(await client.readResponse(), 400, reason);
    const [line] = await auditSince(mark, 1);
    expect(line).toMatchObject({ user: 'lister', action: 'unknown', method: 'GET', path: target, decision: 'reject', rule: null, status: 400 });
    expect(line!.reason).toMatch(reason);
  });

  it('classifies %2F in a container name as dockerd routes it (a/b/stop is a stop of a)', async () => {
    const name = await daemonContainer(['sleep', '600']);
    const target = `/containers/${name}%2Fstop?t=0`;

    const lister = await open('lister');
    const mark = await auditCount();
    await lister.write(rawRequest('POST', target));
    expectDenied(await lister.readResponse(), 'container_stop', 'lister', 'lister-never-stops');
    expect((await daemonRequest(dockerHost(), 'GET', `/containers/${name}/json`)).json<{ State: { Running: boolean } }>().State.Running).toBe(true);

    const stopper = await open('stopper');
    await stopper.write(rawRequest('POST', target));
    expect((await stopper.readResponse()).status).toBe(204);
    expect((await daemonRequest(dockerHost(), 'GET', `/containers/${name}/json`)).json<{ State: { Running: boolean } }>().State.Running).toBe(false);

    await stopper.write(rawRequest('GET', '/containers/a%2Fb/json'));
    const inspect = await stopper.readResponse();
    expect(inspect.status).toBe(404);
    expect(inspect.json<{ message: string }>().message).toMatch(/No such container: a\/b/);
    const lines = await auditSince(mark, 3);
    expect(lines.map((l) => [l.user, l.action, l.path, l.decision])).toEqual([
      ['lister', 'container_stop', `/containers/${name}%2Fstop`, 'deny'],
      ['stopper', 'container_stop', `/containers/${name}%2Fstop`, 'allow'],
      ['stopper', 'container_inspect', '/containers/a%2Fb/json', 'allow'],
    ]);
  });

  it('denies a route it does not know as `unknown` by the default deny-all rule', async () => {
    const client = await open('lister');
    const mark = await auditCount();
    await client.write(rawRequest('GET', '/containers/json/extra/bits'));
    expectDenied(await client.readResponse(), 'unknown', 'lister', null);
    const [line] = await auditSince(mark, 1);
    expect(line).toMatchObject({ user: 'lister', action: 'unknown', decision: 'deny', rule: 'default-deny-all', status: 403 });
  });

  it('lets a rule naming `unknown` allow it, and logs a warning', async () => {
    const client = await open('explorer');
    const mark = await auditCount();
    await client.write(rawRequest('GET', '/not/a/docker/route'));
    const res = await client.readResponse();
    expect(res.status).toBe(404); // dockerd's own answer
    expect(res.json()).toEqual({ message: 'page not found' });
    const [line] = await auditSince(mark, 1);
    expect(line).toMatchObject({ user: 'explorer', action: 'unknown', decision: 'allow', rule: 'explorer-unknown', status: null });
    await pollUntil('the warning on stderr', () => /WARN .*ALLOWED a request to a route Drawbridge does not know.*user=explorer.*rule=explorer-unknown/.test(dp.log()));
  });

  it('does not let `*` allow `unknown`', async () => {
    const client = await open('star');
    const mark = await auditCount();
    await client.write(rawRequest('GET', '/containers/json'));
    expect((await client.readResponse()).status).toBe(200); // * allows every known action
    await client.write(rawRequest('GET', '/not/a/docker/route'));
    expectDenied(await client.readResponse(), 'unknown', 'star', null);
    const lines = await auditSince(mark, 2);
    expect(lines.map((l) => [l.user, l.action, l.decision, l.rule, l.status])).toEqual([
      ['star', 'container_list', 'allow', 'star-everything', null],
      ['star', 'unknown', 'deny', 'default-deny-all', 403],
    ]);
  });

  it('ignores the query string when classifying: /containers/json?x=/start is container_list', async () => {
    const client = await open('lister');
    const mark = await auditCount();
    await client.write(rawRequest('GET', '/containers/json?x=/start'));
    const res = await client.readResponse();
    expect(res.status).toBe(200);
    expect(Array.isArray(res.json())).toBe(true);
    const [line] = await auditSince(mark, 1);
    expect(line).toMatchObject({ user: 'lister', action: 'container_list', path: '/containers/json', decision: 'allow' });
  });
});

describe('upgrades', () => {
  it.each([
    ['GET', '/containers/json', 'container_list'],
    ['POST', '/containers/ghost/start', 'container_start'],
  ])('refuses Upgrade on %s %s (not a hijack route) with 400 and closes the connection', async (method, target, action) => {
    const name = unique('after-upgrade');
    const client = await open('alice');
    const mark = await auditCount();
    // What follows the refused upgrade would be a raw stream, never a request: nothing of it may be acted on.
    const trailing = rawRequest('POST', `/containers/create?name=${name}`, { 'Content-Type': 'application/json' }, JSON.stringify({ Image: inject('testImage'), Labels: { [LABEL_KEY]: 'defender-routing' } }));
    await client.write(Buffer.concat([rawRequest(method, target, UPGRADE), trailing]));
    const res = await client.readResponse();
    expect(res.status).toBe(400);
    expect(message(res)).toBe(`[Drawbridge] '${action}' cannot upgrade the connection; only attach, exec start, session and grpc can`);
    expect(res.headers.connection).toBe('close');
    expect((await client.readUntilEnd()).toString()).toBe('');
    const [line] = await auditSince(mark, 1);
    expect(line).toMatchObject({ user: 'alice', action, method, decision: 'reject', status: 400 });
    expect(await containerNames(dockerHost(), name)).toEqual([]);
  });

  it('runs exec start as a raw stream both ways: stdin in, half-close, output still out', async () => {
    const container = await daemonContainer(['sleep', '600']);
    const client = await open('alice');
    const mark = await auditCount();
    await client.write(rawRequest('POST', `/containers/${container}/exec`, { 'Content-Type': 'application/json' }, JSON.stringify({ AttachStdin: true, AttachStdout: true, AttachStderr: true, Cmd: ['sh', '-c', 'cat; echo "cat exited $?" >&2'] })));
    const created = await client.readResponse();
    expect(created.status, created.text()).toBe(201);
    const { Id } = created.json<{ Id: string }>();

    // the same keep-alive connection now upgrades
    await client.write(rawRequest('POST', `/exec/${Id}/start`, { ...UPGRADE, 'Content-Type': 'application/json' }, JSON.stringify({ Detach: false, Tty: false })));
    const head = await client.readHead();
    expect(head.status).toBe(101);
    expect(head.headers.upgrade).toBe('tcp');
    await client.write('hello through the Defender\n');
    // both ways before any close: the echo of the first line comes back while stdin is still open
    const first = await client.readRaw((b) => b.includes('hello through the Defender'), 'the echo of stdin');
    await client.write('second line\n');
    client.end(); // stdin closed; the output must still arrive
    const out = demuxDockerStream(Buffer.concat([first, await client.readUntilEnd()]));
    expect(out.stdout).toBe('hello through the Defender\nsecond line\n');
    expect(out.stderr).toBe('cat exited 0\n');
    const inspect = await daemonRequest(dockerHost(), 'GET', `/exec/${Id}/json`);
    expect(inspect.json()).toMatchObject({ Running: false, ExitCode: 0 });
    const lines = await auditSince(mark, 2);
    expect(lines.map((l) => [l.user, l.action, l.decision, l.status])).toEqual([
      ['alice', 'container_exec_create', 'allow', null],
      ['alice', 'container_exec_start', 'allow', null],
    ]);
  });

  it('starts a hijack pipelined behind an ordinary request only after that answer, early stdin included', async () => {
    const container = await daemonContainer(['sleep', '600']);
    const exec = await daemonRequest(dockerHost(), 'POST', `/containers/${container}/exec`, { AttachStdin: true, AttachStdout: true, Cmd: ['cat'] });
    expect(exec.status, exec.body).toBe(201);
    const { Id } = exec.json<{ Id: string }>();
    const client = await open('alice');
    const mark = await auditCount();
    await client.write(Buffer.concat([
      rawRequest('GET', '/containers/json'),
      rawRequest('POST', `/exec/${Id}/start`, { ...UPGRADE, 'Content-Type': 'application/json' }, JSON.stringify({ Detach: false, Tty: false })),
      Buffer.from('sent before the 101\n'), // already stream bytes: stdin of the exec, never a request
    ]));
    const list = await client.readResponse();
    expect(list.status).toBe(200);
    expect(list.json<{ Names: string[] }[]>().some((c) => c.Names.includes(`/${container}`))).toBe(true);
    expect((await client.readHead()).status).toBe(101);
    client.end();
    expect(demuxDockerStream(await client.readUntilEnd())).toEqual({ stdout: 'sent before the 101\n', stderr: '' });
    const lines = await auditSince(mark, 2);
    expect(lines.map((l) => l.action)).toEqual(['container_list', 'container_exec_start']);
  });

  it('attaches to a container as a raw stream: input after start, half-close ends stdin, output to the end', async () => {
    const container = await daemonContainer(['sh', '-c', 'cat; echo bye'], { AttachStdin: true, OpenStdin: true, StdinOnce: true, AttachStdout: true, AttachStderr: true }, false);
    const client = await open('alice');
    const mark = await auditCount();
    await client.write(rawRequest('POST', `/containers/${container}/attach?stream=1&stdin=1&stdout=1&stderr=1`, UPGRADE));
    const head = await client.readHead();
    expect(head.status).toBe(101);
    expect((await daemonRequest(dockerHost(), 'POST', `/containers/${container}/start`)).status).toBe(204);
    await client.write('ping\n');
    client.end();
    const out = demuxDockerStream(await client.readUntilEnd());
    expect(out).toEqual({ stdout: 'ping\nbye\n', stderr: '' });
    await pollUntil('the container to exit', async () => {
      const state = (await daemonRequest(dockerHost(), 'GET', `/containers/${container}/json`)).json<{ State: { Running: boolean; ExitCode: number } }>().State;
      return !state.Running && state;
    });
    const [line] = await auditSince(mark, 1);
    expect(line).toMatchObject({ user: 'alice', action: 'container_attach', decision: 'allow', status: null });
  });

  it.each([
    ['attach', '/containers/no-such-container/attach?stream=1&stdout=1', undefined, 'container_attach', /No such container: no-such-container/],
    ['exec start', '/exec/0123456789abcdef/start', { Detach: false, Tty: false }, 'container_exec_start', /No such exec instance: 0123456789abcdef/],
  ])('relays dockerd\'s 404 for %s on something missing and closes the connection', async (_, target, body, action, reason) => {
    const client = await open('alice');
    const mark = await auditCount();
    await client.write(rawRequest('POST', target, { ...UPGRADE, ...(body ? { 'Content-Type': 'application/json' } : {}) }, body && JSON.stringify(body)));
    const res = await client.readResponse();
    await client.waitForEnd();
    expect(client.pending.toString()).toBe('');
    expect(res.status).toBe(404);
    expect(res.text()).toMatch(reason);
    // exactly what dockerd answers to the same request on its own socket (attach's is text/plain-ish raw-stream)
    const direct = await daemonRequest(dockerHost(), 'POST', target, body, UPGRADE);
    expect([res.status, res.headers['content-type'], res.text()]).toEqual([direct.status, direct.headers['content-type'], direct.body]);
    const [line] = await auditSince(mark, 1);
    expect(line).toMatchObject({ user: 'alice', action, decision: 'allow', status: null });
  });

  it('denies exec start to a user a rule forbids it: 403, the command never runs', async () => {
    const container = await daemonContainer(['sleep', '600']);
    const client = await open('noexec');
    const mark = await auditCount();
    await client.write(rawRequest('POST', `/containers/${container}/exec`, { 'Content-Type': 'application/json' }, JSON.stringify({ AttachStdout: true, Cmd: ['touch', '/tmp/ran'] })));
    const created = await client.readResponse();
    expect(created.status, created.text()).toBe(201); // exec create is allowed
    const { Id } = created.json<{ Id: string }>();
    await client.write(rawRequest('POST', `/exec/${Id}/start`, { ...UPGRADE, 'Content-Type': 'application/json' }, JSON.stringify({ Detach: false, Tty: false })));
    const res = await client.readResponse();
    expect(res.status).toBe(403);
    expect(message(res)).toBe("[Drawbridge] The command 'container_exec_start' denied for user 'noexec' by rule 'noexec-never-starts-exec'");
    await client.waitForEnd();
    const exec = (await daemonRequest(dockerHost(), 'GET', `/exec/${Id}/json`)).json<{ Running: boolean; ExitCode: number | null; Pid: number }>();
    expect(exec).toMatchObject({ Running: false, ExitCode: null, Pid: 0 });
    const lines = await auditSince(mark, 2);
    expect(lines.map((l) => [l.user, l.action, l.decision, l.rule, l.status])).toEqual([
      ['noexec', 'container_exec_create', 'allow', 'devs-everything', null],
      ['noexec', 'container_exec_start', 'deny', 'noexec-never-starts-exec', 403],
    ]);
  });
});

describe('identity', () => {
  const NO_CN = '[Drawbridge] the certificate has no CN (user name); ask your administrator for a Drawbridge certificate';

  it('refuses every request from a certificate without a CN with 403 and says why', async () => {
    const name = unique('nocn');
    const client = await open('nocn'); // the handshake itself succeeds: the certificate chains to the CA
    const mark = await auditCount();
    const requests: [string, string, Record<string, string>, string | undefined][] = [
      ['GET', '/_ping', {}, undefined],
      ['GET', '/containers/json', {}, undefined],
      ['POST', `/containers/create?name=${name}`, { 'Content-Type': 'application/json' }, JSON.stringify({ Image: inject('testImage') })],
    ];
    for (const [method, target, headers, body] of requests) {
      await client.write(rawRequest(method, target, headers, body));
      const res = await client.readResponse();
      expect(res.status).toBe(403);
      expect(message(res)).toBe(NO_CN);
    }
    const lines = await auditSince(mark, 3);
    for (const [i, line] of lines.entries()) {
      expect(line).toMatchObject({ user: null, groups: [], method: requests[i]![0], decision: 'reject', status: 403, reason: expect.stringMatching(/no CN/) });
    }
    expect(await containerNames(dockerHost(), name)).toEqual([]);
  });

  it('reads each new connection\'s identity from its own certificate, also for certificates it saw before', async () => {
    // Identities are kept by certificate: alternating certificates on fresh connections must never get another's.
    const order = ['lister', 'nocn', 'alice', 'lister', 'alice', 'nocn', 'lister'];
    const mark = await auditCount();
    for (const who of order) {
      const client = await open(who);
      await client.write(rawRequest('GET', '/containers/json', {}, undefined));
      expect((await client.readResponse()).status).toBe(who === 'nocn' ? 403 : 200);
      client.destroy();
    }
    const lines = await auditSince(mark, order.length);
    expect(lines.map((l) => [l.user, l.groups, l.decision])).toEqual(order.map((who) => ({
      lister: ['lister', [], 'allow'],
      alice: ['alice', ['devs'], 'allow'],
      nocn: [null, [], 'reject'],
    })[who]));
  });

  it('refuses an upgrade from a certificate without a CN with 403 too', async () => {
    const container = await daemonContainer(['sleep', '600']);
    const client = await open('nocn');
    const mark = await auditCount();
    await client.write(rawRequest('POST', `/containers/${container}/attach?stream=1&stdout=1`, UPGRADE));
    const res = await client.readResponse();
    expect(res.status).toBe(403);
    expect(message(res)).toBe(NO_CN);
    await client.waitForEnd();
    const [line] = await auditSince(mark, 1);
    expect(line).toMatchObject({ user: null, method: 'POST', decision: 'reject', status: 403 });
  });
});
