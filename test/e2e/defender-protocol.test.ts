// The Defender at the HTTP/1.1 byte level, against the real binary and a real dockerd: keep-alive and pipelining,
// request smuggling and ambiguous framing, and body inspection limits (paths, upgrades and identity are in
// defender-routing.test.ts; large streams both ways in defender-streams.test.ts). Requests are written as raw bytes on an mTLS connection (test/support/tls-client.ts);
// what really happened is checked on the daemon's own socket, and every decision against the audit log.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { containerNames, daemonRequest, removeLabelled } from '../support/daemon-request.js';
import { startDefenderProcess, type DefenderProcess } from '../support/defender-process.js';
import { rawClients } from '../support/e2e-drivers.js';
import type {} from '../support/global-setup.js'; // the ProvidedContext keys
import { pollUntil } from '../support/poll.js';
import { chunked, rawRequest, RawTlsClient, type RawResponse } from '../support/tls-client.js';

const LABEL = 'drawbridge-test=defender-protocol';
const MAX_BODY = 4096;

const RULES = `
rules:
  - name: stopper-stops
    effect: allow
    users: [stopper]
    actions: [container_stop, container_list, container_inspect, docker_ping]
  - name: lister-never-stops
    effect: deny
    users: [lister]
    actions: [container_stop]
  - name: lister-reads
    effect: allow
    users: [lister]
    actions: [container_list, container_inspect, docker_ping, docker_version]
  - name: builders-build
    effect: allow
    groups: [builders]
    actions: [container_create, container_inspect, container_list, container_delete, container_archive, docker_ping]
`;

let dp: DefenderProcess;
const certs: Record<string, string> = {};
const clients = rawClients(() => dp.port, certs);
const open = clients.open;
const dockerHost = (): string => inject('dockerHost');
const unique = (what: string): string => `dbp-${what}-${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  dp = await startDefenderProcess({ dockerHost: inject('dockerHost'), rules: RULES, args: ['--max-body', String(MAX_BODY)] });
  for (const [user, groups] of [['lister', []], ['stopper', []], ['bob', ['builders']]] as const) {
    certs[user] = await dp.certDir({ user, groups: [...groups] });
  }
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

/**
 * Every audit line after `mark` up to a marker request sent now on a fresh connection: whatever a finished
 * connection caused was logged before the marker (the audit log is written in order, before anything is forwarded).
 */
async function auditUntilMarker(mark: number): Promise<Record<string, unknown>[]> {
  const marker = await open('lister');
  await marker.write(rawRequest('GET', '/_ping?marker'));
  expect((await marker.readResponse()).status).toBe(200);
  const lines = await pollUntil('the marker audit line', async () => {
    const all = (await dp.audit()).slice(mark);
    const at = all.findIndex((l) => l.user === 'lister' && l.action === 'docker_ping');
    return at >= 0 && all.slice(0, at);
  });
  return lines;
}

function createBody(image: string, cmd: string[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ Image: image, Cmd: cmd, Labels: { [LABEL.split('=')[0]!]: LABEL.split('=')[1]! }, ...extra });
}

function expectDenied(res: RawResponse, action: string, user: string, rule: string | null): void {
  expect(res.status).toBe(403);
  expect(res.headers['content-type']).toBe('application/json');
  const by = rule === null ? 'the default deny-all rule' : `rule '${rule}'`;
  expect(res.json()).toEqual({ message: `[Drawbridge] The command '${action}' denied for user '${user}' by ${by}` });
}

function expectRejected(res: RawResponse, status: number, reason: RegExp): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toBe('application/json');
  const { message } = res.json<{ message: string }>();
  expect(message).toMatch(/^\[Drawbridge\] /);
  expect(message).toMatch(reason);
}

describe('keep-alive', () => {
  const requests = (): Buffer[] => [
    rawRequest('GET', '/_ping'),
    rawRequest('POST', '/containers/ghost/stop'),
    rawRequest('GET', '/containers/json'),
  ];

  async function expectThreeDecisions(client: RawTlsClient, responses: RawResponse[], mark: number): Promise<void> {
    expect(responses[0]!.status).toBe(200);
    expect(responses[0]!.text()).toBe('OK');
    expectDenied(responses[1]!, 'container_stop', 'lister', 'lister-never-stops');
    expect(responses[2]!.status).toBe(200);
    expect(Array.isArray(responses[2]!.json())).toBe(true);
    expect(client.ended).toBe(false); // a denial does not cost the connection
    const lines = await auditSince(mark, 3); // in wire order, pipelined or not
    expect(lines.map((l) => [l.user, l.action, l.method, l.path, l.decision, l.rule, l.status])).toEqual([
      ['lister', 'docker_ping', 'GET', '/_ping', 'allow', 'lister-reads', null],
      ['lister', 'container_stop', 'POST', '/containers/ghost/stop', 'deny', 'lister-never-stops', 403],
      ['lister', 'container_list', 'GET', '/containers/json', 'allow', 'lister-reads', null],
    ]);
  }

  it('decides allowed, denied, allowed requests on one connection each on its own, one audit line each', async () => {
    const client = await open('lister');
    const mark = await auditCount();
    const responses: RawResponse[] = [];
    for (const request of requests()) {
      await client.write(request);
      responses.push(await client.readResponse());
    }
    await expectThreeDecisions(client, responses, mark);
  });

  it('decides pipelined requests sent in a single write, answering in order', async () => {
    const client = await open('lister');
    const mark = await auditCount();
    await client.write(Buffer.concat(requests()));
    const responses = [await client.readResponse(), await client.readResponse(), await client.readResponse()];
    await expectThreeDecisions(client, responses, mark);
  });
});

describe('smuggling and framing', () => {
  it('parses bytes after a Content-Length: 0 request as the next request and decides it on its own', async () => {
    const name = unique('smuggled');
    const client = await open('stopper');
    const mark = await auditCount();
    const body = createBody(inject('testImage'), ['true']);
    await client.write(
      Buffer.concat([
        rawRequest('POST', '/containers/ghost/stop', { 'Content-Length': 0 }),
        rawRequest('POST', `/containers/create?name=${name}`, { 'Content-Type': 'application/json' }, body),
      ]),
    );
    const stop = await client.readResponse();
    expect(stop.status).toBe(404); // forwarded: dockerd's own answer
    expect(stop.json<{ message: string }>().message).toMatch(/No such container: ghost/);
    expectDenied(await client.readResponse(), 'container_create', 'stopper', null);
    const lines = await auditSince(mark, 2);
    expect(lines.map((l) => [l.user, l.action, l.path, l.decision, l.status])).toEqual([
      ['stopper', 'container_stop', '/containers/ghost/stop', 'allow', null],
      ['stopper', 'container_create', '/containers/create', 'deny', 403],
    ]);
    expect(await containerNames(dockerHost(), name)).toEqual([]);
  });

  const cl = (body: Buffer): string => `Content-Length: ${body.length}`;
  it.each<[string, (body: Buffer) => { headers: string[]; payload: Buffer }, RegExp]>([
    ['Content-Length with Transfer-Encoding', (b) => ({ headers: [cl(b), 'Transfer-Encoding: chunked'], payload: chunked(b) }), /Content-Length|malformed/],
    ['two Content-Length headers', (b) => ({ headers: [cl(b), cl(b)], payload: b }), /Content-Length|malformed/],
    ['Transfer-Encoding: gzip', (b) => ({ headers: ['Transfer-Encoding: gzip'], payload: b }), /Transfer-Encoding|malformed/],
    ['Transfer-Encoding: gzip, chunked', (b) => ({ headers: ['Transfer-Encoding: gzip, chunked'], payload: chunked(b) }), /Transfer-Encoding 'gzip, chunked'/],
    ['two Transfer-Encoding headers', (b) => ({ headers: ['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'], payload: chunked(b) }), /Transfer-Encoding|malformed/],
    ['a form-encoded body', (b) => ({ headers: ['Content-Type: application/x-www-form-urlencoded', cl(b)], payload: b }), /form-encoded/],
    // Go reads the first Content-Type, lower-cased with Unicode folding: both of these are a form for dockerd.
    ['a form type with a second Content-Type after it', (b) => ({ headers: ['Content-Type: application/x-www-form-urlencoded', 'Content-Type: x', cl(b)], payload: b }), /more than one Content-Type/],
    ['a non-ASCII Content-Type (applİcation/…)', (b) => ({ headers: ['Content-Type: appl\u0130cation/x-www-form-urlencoded', cl(b)], payload: b }), /Content-Type header is not plain ASCII/],
  ])('refuses %s with 400, closes the connection and creates nothing', async (_, frame, reason) => {
    const name = unique('framing');
    const client = await open('bob');
    const mark = await auditCount();
    const { headers, payload } = frame(Buffer.from(createBody(inject('testImage'), ['true'])));
    await client.write(Buffer.concat([Buffer.from(`POST /containers/create?name=${name} HTTP/1.1\r\nHost: docker\r\n${headers.join('\r\n')}\r\n\r\n`), payload]));
    const res = await client.readResponse();
    expectRejected(res, 400, reason);
    expect(res.headers.connection).toBe('close');
    await client.waitForEnd();
    expect(client.pending.toString(), 'bytes after the one answer').toBe('');
    const [line] = await auditSince(mark, 1);
    expect(line).toMatchObject({ user: 'bob', groups: ['builders'], decision: 'reject', status: 400 });
    expect(await containerNames(dockerHost(), name)).toEqual([]);
  });
  it.each([
    ['in its head', Buffer.from('GET /_ping HTTP/1.1\r\nHost: docker\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'), '', 'HPE_UNEXPECTED_CONTENT_LENGTH'],
    ['in its chunked body', Buffer.concat([rawRequest('POST', '/containers/create', { 'Transfer-Encoding': 'chunked' }), Buffer.from('2\r\n{}\r\nzz\r\n')]), '/containers/create', 'HPE_INVALID_CHUNK_SIZE'],
  ])('answers a request malformed %s pipelined behind a good one only after the good one\'s answer', async (_, malformed, path, code) => {
    const client = await open('bob');
    const mark = await auditCount();
    await client.write(Buffer.concat([rawRequest('GET', '/containers/json'), malformed]));
    const list = await client.readResponse();
    expect(list.status).toBe(200);
    expect(Array.isArray(list.json())).toBe(true);
    expectRejected(await client.readResponse(), 400, new RegExp(`malformed HTTP request \\(${code}\\)`));
    await client.waitForEnd();
    expect(client.pending.toString()).toBe('');
    const lines = await auditSince(mark, 2);
    expect(lines.map((l) => [l.user, l.action, l.path, l.decision, l.status])).toEqual([
      ['bob', 'container_list', '/containers/json', 'allow', null],
      ['bob', 'unknown', path, 'reject', 400],
    ]);
  });

  it.each<[string, string, (name: string) => Buffer, number]>([
    ['a body over --max-body (413)', 'bob', (n) => rawRequest('POST', `/containers/create?name=${n}-first`, { 'Content-Type': 'application/json' }, createBody(inject('testImage'), ['echo', 'x'.repeat(MAX_BODY)])), 413],
    ['a denied request with a body (403)', 'stopper', (n) => rawRequest('POST', `/containers/create?name=${n}-first`, { 'Content-Type': 'application/json' }, createBody(inject('testImage'), ['true'])), 403],
    ["the client's own Connection: close", 'bob', () => rawRequest('GET', '/_ping', { Connection: 'close' }), 200],
  ])('processes nothing pipelined behind an answer that closes the connection: %s', async (_, user, first, status) => {
    const name = unique('behind-close');
    const client = await open(user);
    const mark = await auditCount();
    const behind = rawRequest('POST', `/containers/create?name=${name}`, { 'Content-Type': 'application/json' }, createBody(inject('testImage'), ['true']));
    await client.write(Buffer.concat([first(name), behind]));
    const res = await client.readResponse();
    expect(res.status).toBe(status);
    expect(res.headers.connection).toBe('close');
    await client.waitForEnd();
    expect(client.pending.toString(), 'a second answer').toBe('');
    const lines = await auditUntilMarker(mark);
    expect(lines, JSON.stringify(lines)).toHaveLength(1);
    expect(lines[0]).toMatchObject({ user, status: status === 200 ? null : status });
    expect(await containerNames(dockerHost(), name)).toEqual([]);
  });

  it('refuses a chunked body whose framing breaks half-way: one answer, one audit line, nothing created', async () => {
    const name = unique('badchunk');
    const client = await open('bob');
    const mark = await auditCount();
    const body = createBody(inject('testImage'), ['true']);
    await client.write(Buffer.concat([
      rawRequest('POST', `/containers/create?name=${name}`, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }),
      Buffer.from(`${body.length.toString(16)}\r\n${body}\r\nzz\r\n`),
    ]));
    expectRejected(await client.readResponse(), 400, /the request body is malformed \(HPE_INVALID_CHUNK_SIZE\)/);
    await client.waitForEnd();
    expect(client.pending.toString()).toBe('');
    const [line] = await auditSince(mark, 1);
    expect(line).toMatchObject({ user: 'bob', decision: 'reject', status: 400 });
    expect(await containerNames(dockerHost(), name)).toEqual([]);
  });
});

describe('request bodies', () => {
  it('reads a chunked JSON body in full and forwards it: the container is created as asked', async () => {
    const name = unique('chunked');
    const client = await open('bob');
    const mark = await auditCount();
    const body = createBody(inject('testImage'), ['echo', 'sent', 'in', 'chunks'], { Env: ['A=1'] });
    await client.write(rawRequest('POST', `/containers/create?name=${name}`, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }, chunked(body, 7)));
    const res = await client.readResponse();
    expect(res.status, res.text()).toBe(201);
    const { Id } = res.json<{ Id: string }>();
    const inspect = await daemonRequest(dockerHost(), 'GET', `/containers/${Id}/json`);
    expect(inspect.status).toBe(200);
    const config = inspect.json<{ Name: string; Config: { Image: string; Cmd: string[]; Env: string[] } }>();
    expect(config.Name).toBe(`/${name}`);
    expect(config.Config.Image).toBe(inject('testImage'));
    expect(config.Config.Cmd).toEqual(['echo', 'sent', 'in', 'chunks']);
    expect(config.Config.Env).toContain('A=1');
    const [line] = await auditSince(mark, 1);
    expect(line).toMatchObject({ user: 'bob', action: 'container_create', decision: 'allow', rule: 'builders-build', status: null });
  });

  it('refuses a body that is not JSON with 400', async () => {
    const name = unique('badjson');
    const client = await open('bob');
    const mark = await auditCount();
    await client.write(rawRequest('POST', `/containers/create?name=${name}`, { 'Content-Type': 'application/json' }, '{"Image": "x", '));
    expectRejected(await client.readResponse(), 400, /not valid JSON/);
    const [line] = await auditSince(mark, 1);
    expect(line).toMatchObject({ user: 'bob', action: 'container_create', decision: 'reject', status: 400 });
    expect(await containerNames(dockerHost(), name)).toEqual([]);
  });

  it.each(['Content-Length', 'chunked'] as const)('refuses a body over --max-body sent with %s: 413, nothing created', async (framing) => {
    const name = unique('big');
    const client = await open('bob');
    const mark = await auditCount();
    const body = createBody(inject('testImage'), ['echo', 'x'.repeat(MAX_BODY)]);
    expect(Buffer.byteLength(body)).toBeGreaterThan(MAX_BODY);
    const request =
      framing === 'chunked'
        ? rawRequest('POST', `/containers/create?name=${name}`, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }, chunked(body, 1024))
        : rawRequest('POST', `/containers/create?name=${name}`, { 'Content-Type': 'application/json' }, body);
    await client.write(request);
    const res = await client.readResponse();
    expectRejected(res, 413, new RegExp(`over the Defender's limit of ${MAX_BODY} bytes`));
    expect(res.headers.connection).toBe('close');
    const [line] = await auditSince(mark, 1);
    expect(line).toMatchObject({ user: 'bob', action: 'container_create', decision: 'reject', status: 413 });
    expect(await containerNames(dockerHost(), name)).toEqual([]);
  });

  it('accepts a body of exactly --max-body bytes', async () => {
    const name = unique('limit');
    const client = await open('bob');
    const mark = await auditCount();
    const short = createBody(inject('testImage'), ['echo', '']);
    const body = createBody(inject('testImage'), ['echo', 'y'.repeat(MAX_BODY - Buffer.byteLength(short))]);
    expect(Buffer.byteLength(body)).toBe(MAX_BODY);
    await client.write(rawRequest('POST', `/containers/create?name=${name}`, { 'Content-Type': 'application/json' }, body));
    const res = await client.readResponse();
    expect(res.status, res.text()).toBe(201);
    expect(await containerNames(dockerHost(), name)).toEqual([name]);
    const [line] = await auditSince(mark, 1);
    expect(line).toMatchObject({ user: 'bob', action: 'container_create', decision: 'allow', status: null });
  });

  it('forwards a zero-length create: the answer is dockerd\'s own error', async () => {
    const client = await open('bob');
    const mark = await auditCount();
    await client.write(rawRequest('POST', '/containers/create', { 'Content-Type': 'application/json', 'Content-Length': 0 }));
    const res = await client.readResponse();
    const direct = await daemonRequest(dockerHost(), 'POST', '/containers/create', Buffer.alloc(0)); // the same, past the Defender
    expect(direct.status).toBeGreaterThanOrEqual(400);
    expect([res.status, res.json()]).toEqual([direct.status, direct.json()]);
    const [line] = await auditSince(mark, 1);
    expect(line).toMatchObject({ user: 'bob', action: 'container_create', decision: 'allow', status: null });
  });
});
