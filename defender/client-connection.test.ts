/**
 * The Defender's own HTTP/1.1 server side (serveConnection), through real sockets (client-connection.test-support.ts):
 * pipelining, answers, malformed heads, upgrades, timeouts. Request bodies: client-connection-bodies.test.ts.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ClientAnswer } from './client-answer.js';
import { answerOk, b, closeAll, later, ok, serve } from './client-connection.test-support.js';

afterEach(closeAll);

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
