/**
 * The Defender's own HTTP/1.1 server side, through real sockets: a `node:net` server on 127.0.0.1 and a raw net
 * client writing exact bytes. The server-side socket is handed over as a TLSSocket: serveConnection only uses the
 * plain socket API, TLS adds nothing to HTTP framing, and the Defender's TLS is covered by the e2e tests.
 */
import { connect, createServer, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ClientAnswer } from './client-answer.js';
import { serveConnection, type ClientConnection, type ConnectionHandlers } from './client-connection.js';
import type { IncomingRequest } from './incoming-request.js';
import { CLIENT_READ_SIZE } from './client-reads.js';
import { ReadBuffers, retain } from './read-buffers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanups.splice(0)) f();
});

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const later = (ms = 20): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Peer {
  client: Socket;
  server: Socket;
  conn: ClientConnection;
  /** Handler calls, and whatever the test adds, in order. */
  log: string[];
  /** Everything the client received so far. */
  wire(): string;
  /** Everything the client received, once the server ended or closed the connection. */
  ended: Promise<string>;
}

async function serve(handlers: Partial<ConnectionHandlers>): Promise<Peer> {
  const log: string[] = [];
  const all: ConnectionHandlers = {
    request(req, answer) {
      log.push(`request ${req.method} ${req.url}`);
      handlers.request?.(req, answer);
    },
    upgrade(req, head) {
      log.push(`upgrade ${req.method} ${req.url} ${head.toString('latin1')}`);
      handlers.upgrade?.(req, head);
    },
    malformed(socket, culprit, reason) {
      log.push(`malformed ${culprit === null ? 'null' : culprit.url} ${reason}`);
      handlers.malformed?.(socket, culprit, reason);
    },
  };
  const listener = createServer({ allowHalfOpen: true }); // as the Defender's TLS server
  const accepted = new Promise<{ server: Socket; conn: ClientConnection }>((resolve) =>
    listener.once('connection', (server) => resolve({ server, conn: serveConnection(server as TLSSocket, all, { maxHeaderSize: 16 * 1024, closing: () => false, readBuffers: new ReadBuffers(CLIENT_READ_SIZE) }) })),
  );
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  // Half-open like a client still uploading after the server's FIN (the docker CLI's `load`), which lingering is for.
  const client = connect({ port: (listener.address() as { port: number }).port, host: '127.0.0.1', allowHalfOpen: true });
  client.on('error', () => undefined); // a destroyed server side may answer with a reset
  let received = '';
  client.on('data', (d: Buffer) => (received += d.toString('latin1')));
  const ended = new Promise<string>((resolve) => {
    client.once('end', () => resolve(received));
    client.once('close', () => resolve(received));
  });
  const { server, conn } = await accepted;
  cleanups.push(() => {
    client.destroy();
    server.destroy();
    listener.close();
  });
  return { client, server, conn, log, wire: () => received, ended };
}

/** A handler answering `200 OK` with a length after `delay` ms (synchronously without one). */
function answerOk(body: string, log?: string[], delay?: number) {
  return (req: IncomingRequest, answer: ClientAnswer): void => {
    const send = (): void => {
      log?.push(`answering ${req.url}`);
      answer.writeHead(200, 'OK', ['Content-Length', String(body.length)]);
      answer.end(b(body));
    };
    if (delay === undefined) send();
    else setTimeout(send, delay);
  };
}

const ok = (body: string, extra = ''): string => `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`;

describe('serveConnection', () => {
  it('runs pipelined requests one at a time and answers them in order', async () => {
    const p = await serve({ request: (req, answer) => answerOk(req.url, p.log, req.url === '/a' ? 30 : undefined)(req, answer) });
    p.client.write('GET /a HTTP/1.1\r\nHost: d\r\n\r\nGET /b HTTP/1.1\r\nHost: d\r\n\r\n');
    await vi.waitFor(() => expect(p.wire()).toBe(ok('/a') + ok('/b')));
    expect(p.log).toEqual(['request GET /a', 'answering /a', 'request GET /b', 'answering /b']);
  });

  it('answers thousands of pipelined requests answered at once, one after the other (never nested in each other)', async () => {
    let depth = 0;
    let deepest = 0;
    const p = await serve({
      request: (req, answer) => {
        deepest = Math.max(deepest, ++depth);
        answerOk('', undefined, req.url === '/first' ? 30 : undefined)(req, answer); // the others queue up meanwhile
        depth--;
      },
    });
    const n = 5000;
    p.client.write('GET /first HTTP/1.1\r\nHost: d\r\n\r\n');
    p.client.write('GET /x HTTP/1.1\r\nHost: d\r\n\r\n'.repeat(n));
    await vi.waitFor(() => expect(p.wire().length).toBe(ok('').length * (n + 1)), { timeout: 5000 });
    expect(deepest).toBe(1);
  });

  it.each([
    ['33 requests', 'GET /q HTTP/1.1\r\nHost: d\r\n\r\n'.repeat(33)],
    ['a body over 1 MiB', `POST /q HTTP/1.1\r\nHost: d\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n${'x'.repeat(2 * 1024 * 1024)}`],
  ])('stops reading while what waits behind an answer is over its limit (%s), and reads on once its turn comes', async (_what, behind) => {
    let release = (): void => undefined;
    const p = await serve({
      request: (req, answer) => {
        if (req.url === '/slow') release = () => answerOk('')(req, answer);
        else req.readBody({ data: () => undefined, end: () => answerOk('')(req, answer), error: () => undefined });
      },
    });
    p.client.write(`GET /slow HTTP/1.1\r\nHost: d\r\n\r\n${behind}`);
    await vi.waitFor(() => expect(p.log).toEqual(['request GET /slow']));
    await vi.waitFor(() => expect(p.server.isPaused()).toBe(true));
    release();
    const answers = behind.startsWith('GET') ? 34 : 2;
    await vi.waitFor(() => expect(p.wire().length).toBe(ok('').length * answers), { timeout: 5000 });
    expect(p.server.isPaused()).toBe(false);
  });

  it('reassembles a head split across writes, with more headers than llhttp hands over at once', async () => {
    const p = await serve({ request: (req, a) => (p.log.push(`${req.rawHeaders.length} ${req.rawHeaders.slice(-2).join('=')}`), answerOk('')(req, a)) });
    const headers = Array.from({ length: 40 }, (_, i) => `X-H${i}: v${i}\r\n`).join('');
    for (const piece of ['GET /some/lo', `ng/url HTTP/1.1\r\n${headers.slice(0, 200)}`, `${headers.slice(200)}\r\nGET /two HTTP/1.1\r\nA: b\r\n\r\n`]) {
      p.client.write(piece);
      await later();
    }
    await vi.waitFor(() => expect(p.wire()).toBe(ok('') + ok('')));
    expect(p.log).toEqual(['request GET /some/long/url', '80 X-H39=v39', 'request GET /two', '2 A=b']);
  });

  describe('frames answers', () => {
    type Row = { name: string; request: string; answer(a: ClientAnswer): Promise<void> | void; wire: string; closes: boolean };
    const rows: Row[] = [
      {
        name: 'Content-Length kept as given',
        request: 'GET / HTTP/1.1\r\n\r\n',
        answer: (a) => (a.writeHead(200, 'OK', ['Content-Length', '5']), a.write(b('hel')), a.end(b('lo'))),
        wire: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello',
        closes: false,
      },
      {
        name: 'no length on HTTP/1.1: chunked',
        request: 'GET / HTTP/1.1\r\n\r\n',
        async answer(a) {
          a.writeHead(200, 'OK', ['Content-Type', 'text/plain']);
          a.flushHeaders();
          await later();
          a.write(b('ab'));
          a.write(Buffer.alloc(0)); // never a premature last chunk
          await later();
          a.end(b('cdefghijklmnopqrs'));
        },
        wire: 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n11\r\ncdefghijklmnopqrs\r\n0\r\n\r\n',
        closes: false,
      },
      {
        name: 'HTTP/1.0: close-delimited',
        request: 'GET / HTTP/1.0\r\n\r\n',
        answer: (a) => (a.writeHead(200, 'OK', []), a.write(b('he')), a.end(b('llo'))),
        wire: 'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello',
        closes: true,
      },
      {
        name: 'HTTP/1.0 keep-alive with a length',
        request: 'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
        answer: (a) => (a.writeHead(200, 'OK', ['Content-Length', '2']), a.end(b('hi'))),
        wire: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nhi',
        closes: false,
      },
      {
        name: 'HEAD: no body bytes',
        request: 'HEAD / HTTP/1.1\r\n\r\n',
        answer: (a) => (a.writeHead(200, 'OK', ['Content-Length', '5']), a.end(b('hello'))),
        wire: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n',
        closes: false,
      },
      {
        name: '204: no body bytes, no chunking',
        request: 'DELETE /x HTTP/1.1\r\n\r\n',
        answer: (a) => (a.writeHead(204, 'No Content', []), a.write(b('x')), a.end(b('y'))),
        wire: 'HTTP/1.1 204 No Content\r\n\r\n',
        closes: false,
      },
    ];
    it.each(rows)('$name', async (row) => {
      const p = await serve({ request: (_req, a) => void row.answer(a) });
      p.client.write(row.request);
      if (row.closes) {
        expect(await p.ended).toBe(row.wire);
        return;
      }
      await vi.waitFor(() => expect(p.wire()).toBe(row.wire));
      await later();
      expect([p.wire(), p.server.writableEnded, p.conn.idle]).toEqual([row.wire, false, true]);
      p.client.end();
      expect(await p.ended).toBe(row.wire);
    });
  });

  it.each(['synchronously', 'later'])('closes after a client Connection: close answered %s, never starting what follows', async (when) => {
    const p = await serve({ request: answerOk('ok', undefined, when === 'later' ? 20 : undefined) });
    p.client.write('GET /a HTTP/1.1\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n');
    expect(await p.ended).toBe(ok('ok', 'Connection: close\r\n'));
    await later();
    expect(p.log).toEqual(['request GET /a']);
  });

  it('lingers after refusing an upload: the client reads the answer while it still sends, without a reset', async () => {
    const p = await serve({ request: (_req, a) => (a.writeHead(403, 'Forbidden', ['Content-Length', '2'], true), a.end(b('no'))) });
    const errors: string[] = [];
    p.client.on('error', (e) => errors.push(e.message));
    p.client.write('POST /images/load HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n' + 'x'.repeat(1000));
    expect(await p.ended).toBe('HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno');
    await new Promise((resolve) => p.client.write(Buffer.alloc(512 * 1024), resolve));
    expect(p.server.destroyed).toBe(false);
    p.client.end();
    await new Promise((resolve) => p.server.once('close', resolve));
    expect([errors, p.log]).toEqual([[], ['request POST /images/load']]);
  });

  it('hands a body arriving in several writes to its reader in order, ending it once', async () => {
    const p = await serve({
      request(req, answer) {
        req.readBody({
          data: (d) => p.log.push(`data ${d.toString('latin1')}`),
          end: () => (p.log.push('end'), answerOk('done')(req, answer)),
          error: (e) => p.log.push(`error ${e.message}`),
        });
      },
    });
    const sent = ['POST /load HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n', '2\r\nde\r\n', '4\r\nfg', 'hi\r\n0\r\n\r\n'];
    const seen = [['request POST /load', 'data abc'], ['data de'], ['data fg'], ['data hi', 'end']];
    const expected: string[] = [];
    for (const [i, bytes] of sent.entries()) {
      p.client.write(bytes);
      expected.push(...seen[i]!);
      await vi.waitFor(() => expect(p.log).toEqual(expected));
    }
    await vi.waitFor(() => expect(p.wire()).toBe(ok('done')));
  });

  describe('a body framed by a Content-Length or by chunks (read by the Defender, handed on as slices of the reads)', () => {
    /** A reader that keeps every piece (retained: it lies in a reused read buffer) and answers `<bytes received>`. */
    const collect = (p: { log: string[] }, pieces: Buffer[]) => (req: IncomingRequest, answer: ClientAnswer): void =>
      req.readBody({
        data: (d) => void (retain(d), pieces.push(d)),
        end: () => (p.log.push(`end ${req.url}`), answerOk(String(Buffer.concat(pieces).length))(req, answer)),
        error: (e) => p.log.push(`error ${req.url} ${e.message}`),
      });
    const body = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251));

    it('arrives whole and in order over many reads, and what follows it in its last read is the next request', async () => {
      const pieces: Buffer[] = [];
      const p = await serve({ request: (req, answer) => (req.url === '/load' ? collect(p, pieces)(req, answer) : answerOk('next')(req, answer)) });
      const reads = new Set<ArrayBufferLike>();
      p.server.prependListener('data', (d: Buffer) => reads.add(d.buffer));
      p.client.write(Buffer.concat([b(`POST /load HTTP/1.1\r\nContent-Length: ${body.length}\r\n\r\n`), body.subarray(0, 1000)]));
      for (const [from, to] of [[1000, 1001], [1001, 70_000], [70_000, 299_999]] as const) {
        await later(10);
        p.client.write(body.subarray(from, to));
      }
      await later(10);
      p.client.write(Buffer.concat([body.subarray(299_999), b('GET /next HTTP/1.1\r\n\r\n')]));
      await vi.waitFor(() => expect(p.wire()).toBe(ok(String(body.length)) + ok('next')));
      expect(Buffer.concat(pieces).equals(body)).toBe(true);
      expect(p.log).toEqual(['request POST /load', 'end /load', 'request GET /next']);
      expect(pieces.filter((d) => !reads.has(d.buffer))).toEqual([]); // every piece lies in the read it came in
    });

    it('reads chunks split anywhere across reads, drops extensions and trailers, and parses what follows', async () => {
      const pieces: Buffer[] = [];
      const p = await serve({ request: (req, answer) => (req.url === '/build' ? collect(p, pieces)(req, answer) : answerOk('next')(req, answer)) });
      const reads = new Set<ArrayBufferLike>();
      p.server.prependListener('data', (d: Buffer) => reads.add(d.buffer));
      const encoded: Buffer[] = [b('POST /build HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n')];
      for (let at = 0, size = 1; at < body.length; at += size, size = size * 3 + 1) {
        const data = body.subarray(at, at + size);
        encoded.push(b(`${data.length.toString(16)}${size % 2 ? ';ext=1' : ''}\r\n`), data, b('\r\n'));
      }
      const wire = Buffer.concat([...encoded, b('0\r\nX-Trailer: t\r\n\r\nGET /next HTTP/1.1\r\n\r\n')]);
      for (let at = 0; at < wire.length; at += 7919) {
        p.client.write(wire.subarray(at, at + 7919));
        if (at % 3 === 0) await later(2);
      }
      await vi.waitFor(() => expect(p.wire()).toBe(ok(String(body.length)) + ok('next')));
      expect(Buffer.concat(pieces).equals(body)).toBe(true);
      expect(p.log).toEqual(['request POST /build', 'end /build', 'request GET /next']);
      expect(pieces.filter((d) => !reads.has(d.buffer))).toEqual([]);
    });

    it('waits, slice by slice, for its turn behind a slow request', async () => {
      const pieces: Buffer[] = [];
      const p = await serve({ request: (req, answer) => (req.url === '/slow' ? answerOk('slow', undefined, 80)(req, answer) : collect(p, pieces)(req, answer)) });
      p.client.write(`GET /slow HTTP/1.1\r\n\r\nPOST /load HTTP/1.1\r\nContent-Length: ${body.length}\r\n\r\n`);
      for (let at = 0; at < body.length; at += 100_000) {
        await later(10);
        p.client.write(body.subarray(at, at + 100_000));
      }
      await vi.waitFor(() => expect(p.wire()).toBe(ok('slow') + ok(String(body.length))));
      expect(Buffer.concat(pieces).equals(body)).toBe(true);
    });

    it.each([
      ['a Content-Length', 'same read', 'Content-Length: 3\r\n\r\nabc'],
      ['a Content-Length', 'next read', 'Content-Length: 3\r\n\r\nabc'],
      ['chunks', 'same read', 'Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
      ['chunks', 'next read', 'Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
    ])('after a body framed by %s, refuses a malformed head in the %s with Docker’s JSON 400', async (_framing, where, rest) => {
      const p = await serve({ request: (req, answer) => collect(p, [])(req, answer) });
      const bad = 'GET / HTTP/1.1\r\nBad Header: x\r\n\r\n';
      p.client.write(`POST /a HTTP/1.1\r\n${rest}${where === 'same read' ? bad : ''}`);
      if (where === 'next read') {
        await vi.waitFor(() => expect(p.wire()).toBe(ok('3')));
        p.client.write(bad);
      }
      const body = '{"message":"[Drawbridge] malformed HTTP request (HPE_INVALID_HEADER_TOKEN)"}';
      expect(await p.ended).toBe(`${ok('3')}HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      expect(p.log).toEqual(['request POST /a', 'end /a', 'malformed null malformed HTTP request (HPE_INVALID_HEADER_TOKEN)']);
    });

    it('hands an upgrade that follows it in the same read exactly the bytes after the upgrade\'s head', async () => {
      const pieces: Buffer[] = [];
      const p = await serve({ request: collect({ log: [] }, pieces), upgrade: (_req, head) => p.log.push(`head ${head.toString('latin1')}`) });
      p.client.write('POST /a HTTP/1.1\r\nContent-Length: 6\r\n\r\nabc');
      await later(10);
      p.client.write('defPOST /exec/1/start HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nRAW');
      await vi.waitFor(() => expect(p.log.at(-1)).toBe('head RAW'));
      expect(Buffer.concat(pieces).toString('latin1')).toBe('abcdef');
    });

    it('fails its reader when the client stops half-way', async () => {
      const p = await serve({ request: (req, answer) => collect(p, [])(req, answer) });
      p.client.write(`POST /load HTTP/1.1\r\nContent-Length: ${body.length}\r\n\r\n`);
      await later(10);
      p.client.write(body.subarray(0, 5000));
      await later(10);
      p.client.end();
      await vi.waitFor(() => expect(p.log).toEqual(['request POST /load', 'error /load the client closed the connection']));
    });
  });

  it('answers Expect: 100-continue only when the body is read', async () => {
    let read = (): void => undefined;
    const p = await serve({
      request(req, answer) {
        if (req.url === '/refused') return void (answer.writeHead(403, 'Forbidden', ['Content-Length', '0'], true), answer.end());
        read = () => req.readBody({ data: (d) => p.log.push(`data ${d.toString('latin1')}`), end: () => answerOk('')(req, answer), error: () => undefined });
      },
    });
    p.client.write('POST /read HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n');
    await vi.waitFor(() => expect(p.log).toEqual(['request POST /read']));
    await later();
    expect(p.wire()).toBe('');
    read();
    await vi.waitFor(() => expect(p.wire()).toBe('HTTP/1.1 100 Continue\r\n\r\n'));
    p.client.write('xyz');
    await vi.waitFor(() => expect(p.wire()).toBe('HTTP/1.1 100 Continue\r\n\r\n' + ok('')));
    p.client.write('POST /refused HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n');
    expect(await p.ended).toBe('HTTP/1.1 100 Continue\r\n\r\n' + ok('') + 'HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    expect(p.log).toEqual(['request POST /read', 'data xyz', 'request POST /refused']);
  });

  // RFC 9110 §10.1.1: a server MUST ignore a 100-continue expectation in an HTTP/1.0 request (a 1.0 client would
  // take `HTTP/1.1 100 Continue` for the final answer).
  it('ignores Expect: 100-continue from an HTTP/1.0 client', async () => {
    const p = await serve({ request: (req, a) => req.readBody({ data: () => undefined, end: () => answerOk('ok')(req, a), error: () => undefined }) });
    p.client.write('POST / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n');
    await vi.waitFor(() => expect(p.log).toEqual(['request POST /']));
    await later();
    p.client.write('xyz');
    expect(await p.ended).toBe(ok('ok', 'Connection: close\r\n'));
  });

  describe('refuses a malformed head with Docker’s JSON 400 and closes', () => {
    const rows = [
      { name: 'two Content-Lengths', head: 'POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', code: 'HPE_UNEXPECTED_CONTENT_LENGTH', culprit: 'null' },
      { name: 'a space in a header name', head: 'GET / HTTP/1.1\r\nBad Header: x\r\n\r\n', code: 'HPE_INVALID_HEADER_TOKEN', culprit: 'null' },
      { name: 'Content-Length with chunked', head: 'POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n', code: 'HPE_INVALID_TRANSFER_ENCODING', culprit: 'null' },
      // Its head was parsed, but its turn had not come: nobody reads its body, so the connection answers.
      { name: 'a broken chunk in a waiting request', head: 'POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n', code: 'HPE_INVALID_CHUNK_SIZE', culprit: '/b' },
    ];
    it.each(rows)('$name, in its turn after the request before it', async ({ head, code, culprit }) => {
      const p = await serve({ request: answerOk('first', undefined, 20) });
      p.client.write(`GET /first HTTP/1.1\r\n\r\n${head}GET /never HTTP/1.1\r\n\r\n`);
      const body = `{"message":"[Drawbridge] malformed HTTP request (${code})"}`;
      const refusal = `HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
      expect(await p.ended).toBe(ok('first') + refusal);
      expect(p.log).toEqual(['request GET /first', `malformed ${culprit} malformed HTTP request (${code})`]);
    });
  });

  it('lets the reader of a body answer a broken chunk in it, and answers nothing else', async () => {
    const p = await serve({
      request(req, answer) {
        req.readBody({
          data: (d) => p.log.push(`data ${d.toString('latin1')}`),
          end: () => p.log.push('end'),
          error: (e) => p.log.push(`error ${e.message}`),
          malformed(err) {
            p.log.push(`reader ${err.status} ${err.message}`);
            answer.writeHead(400, 'Bad Request', ['Content-Length', '3'], true);
            answer.end(b('bad'));
            return true;
          },
        });
      },
    });
    p.client.write('POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n');
    await vi.waitFor(() => expect(p.log).toEqual(['request POST /b', 'data abc']));
    p.client.write('zz\r\nGET /never HTTP/1.1\r\n\r\n');
    expect(await p.ended).toBe('HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbad');
    await later();
    expect(p.log).toEqual(['request POST /b', 'data abc', 'reader 400 [Drawbridge] the request body is malformed (HPE_INVALID_CHUNK_SIZE)']);
  });

  it('hands an upgrade, in its turn, the bytes after its head and then the socket', async () => {
    const p = await serve({
      request: answerOk('first', undefined, 20),
      upgrade(req, head) {
        p.log.push(`head ${JSON.stringify(head.toString('latin1'))} ${req.header('upgrade')}`);
        req.socket.on('data', (d: Buffer) => p.log.push(`raw ${d.toString('latin1')}`));
        req.socket.write('HTTP/1.1 101 UPGRADED\r\n\r\n');
        req.socket.resume();
      },
    });
    p.client.write('GET /first HTTP/1.1\r\n\r\nPOST /exec/1/start HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nraw\r\nGET /no HTTP/1.1\r\n\r\n');
    await vi.waitFor(() => expect(p.wire()).toBe(ok('first') + 'HTTP/1.1 101 UPGRADED\r\n\r\n'));
    p.client.write('GET /still-raw HTTP/1.1\r\n\r\n');
    const head = 'raw\r\nGET /no HTTP/1.1\r\n\r\n';
    await vi.waitFor(() =>
      expect(p.log).toEqual(['request GET /first', `upgrade POST /exec/1/start ${head}`, `head ${JSON.stringify(head)} tcp`, 'raw GET /still-raw HTTP/1.1\r\n\r\n']),
    );
  });

  describe('timeouts and shutdown', () => {
    it('closes an idle keep-alive connection after 65 s', async () => {
      const p = await serve({ request: answerOk('ok') });
      p.client.write('GET / HTTP/1.1\r\n\r\n');
      await vi.waitFor(() => expect(p.wire()).toBe(ok('ok')));
      p.conn.sweep(Date.now() + 30_000);
      expect([p.conn.idle, p.server.destroyed]).toEqual([true, false]);
      p.conn.sweep(Date.now() + 66_000);
      expect(p.server.destroyed).toBe(true);
      expect(await p.ended).toBe(ok('ok'));
    });

    it('closes a connection whose head is still incomplete after 60 s', async () => {
      const p = await serve({});
      p.client.write('GET / HTTP/1.1\r\nHost: d\r\n');
      await vi.waitFor(() => expect(p.conn.idle).toBe(false));
      p.conn.closeIfIdle();
      p.conn.sweep(Date.now() + 30_000);
      expect(p.server.destroyed).toBe(false);
      p.conn.sweep(Date.now() + 61_000);
      expect(p.server.destroyed).toBe(true);
      expect([await p.ended, p.log]).toEqual(['', []]);
    });

    it('never cuts a request being handled, however long', async () => {
      let answer: ClientAnswer | null = null;
      const p = await serve({ request: (_req, a) => (answer = a) });
      p.client.write('GET /logs?follow=1 HTTP/1.1\r\n\r\n');
      await vi.waitFor(() => expect(answer).not.toBeNull());
      p.conn.sweep(Date.now() + 10 * 3_600_000);
      p.conn.closeIfIdle();
      expect([p.conn.idle, p.server.destroyed]).toEqual([false, false]);
      answer!.writeHead(200, 'OK', ['Content-Length', '2']);
      answer!.end(b('ok'));
      await vi.waitFor(() => expect(p.wire()).toBe(ok('ok')));
      expect(p.conn.idle).toBe(true);
      p.conn.closeIfIdle();
      expect(p.server.destroyed).toBe(true);
      expect(await p.ended).toBe(ok('ok'));
    });
  });

  it('still answers a request whose client half-closed, then ends the connection', async () => {
    const p = await serve({ request: answerOk('ok', undefined, 30) });
    p.client.end('GET / HTTP/1.1\r\n\r\n');
    expect(await p.ended).toBe(ok('ok'));
    expect(p.log).toEqual(['request GET /']);
  });
});
