/**
 * Request bodies through serveConnection, over real sockets (client-connection.test-support.ts): in order over many
 * reads, framed by a Content-Length or by chunks (read by the Defender itself and handed on as slices of the reads,
 * which lie in reused buffers), waiting for their turn, 100-continue, and a reader answering a broken chunk.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ClientAnswer } from './client-answer.js';
import { answerOk, b, closeAll, later, ok, serve } from './client-connection.test-support.js';
import type { IncomingRequest } from './incoming-request.js';
import { retain } from './read-buffers.js';

afterEach(closeAll);

describe('serveConnection: request bodies', () => {
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
});
