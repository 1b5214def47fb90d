/**
 * The raw exchange with dockerd, against servers on a UNIX socket: Node's http server where a real HTTP server's
 * behaviour matters, and a raw socket server (scripted bytes, the real wire format) where the answer has to be one
 * that a correct server would never send.
 */
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { upstreamPool, type RequestBody, type UpstreamPool } from './upstream-exchange.js';

interface Answer {
  status: number;
  message: string;
  headers: string[];
  body: string;
  framing?: string;
  error?: string;
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanups.splice(0)) f();
});

async function listen(server: Server): Promise<string> {
  const path = join(mkdtempSync(join(tmpdir(), 'upx-')), 's.sock');
  await new Promise<void>((resolve) => server.listen(path, resolve));
  cleanups.push(() => server.close());
  return path;
}

function pool(path: string): { pool: UpstreamPool; connections: () => number } {
  let n = 0;
  const p = upstreamPool((onread) => {
    n++;
    return connect({ path, onread });
  });
  cleanups.push(() => p.close());
  return { pool: p, connections: () => n };
}

function run(p: UpstreamPool, method: string, target: string, headers: string[] = ['Host', 'docker'], body: RequestBody = { kind: 'buffer', body: null }, stream?: Buffer[], relay = false): Promise<Answer> {
  return new Promise((resolve) => {
    const a: Answer = { status: 0, message: '', headers: [], body: '' };
    const up = p.exchange(method, target, headers, body, {
      head(status, message, raw, framing) {
        Object.assign(a, { status, message, headers: raw, framing });
        return relay;
      },
      body(chunk) {
        a.body += chunk.toString();
      },
      idle() {},
      end: () => resolve(a),
      error(err) {
        a.error = err.message;
        resolve(a);
      },
    });
    if (stream) {
      for (const s of stream) up.write(s);
      up.finish();
    }
  });
}

/** A server answering every request (head and body read) with the given bytes, then doing `after` with the socket. */
async function scripted(answer: string, after: (s: Socket) => void = () => undefined): Promise<string> {
  return listen(
    createServer((socket) => {
      socket.on('error', () => undefined); // the client may be gone when the script writes
      let seen = '';
      socket.on('data', (d) => {
        seen += d.toString('latin1');
        while (seen.includes('\r\n\r\n')) {
          seen = seen.slice(seen.indexOf('\r\n\r\n') + 4);
          socket.write(answer);
          after(socket);
        }
      });
    }),
  );
}

describe('upstream exchange', () => {
  it('reuses one keep-alive connection for consecutive requests', async () => {
    const path = await listen(createHttpServer((req, res) => res.end(`hello ${req.url}`)));
    const { pool: p, connections } = pool(path);
    for (let i = 0; i < 3; i++) expect((await run(p, 'GET', `/v1.41/x${i}`)).body).toBe(`hello /v1.41/x${i}`);
    expect(connections()).toBe(1);
  });

  it('de-frames a chunked answer and keeps its headers as sent', async () => {
    const path = await listen(
      createHttpServer((_req, res) => {
        res.setHeader('X-Docker', 'yes');
        res.write('one,');
        setTimeout(() => res.end('two'), 20);
      }),
    );
    const a = await run(pool(path).pool, 'GET', '/logs');
    expect(a.status).toBe(200);
    expect(a.body).toBe('one,two');
    expect(a.headers).toContain('X-Docker');
    expect(a.headers).toContain('chunked');
  });

  it('reads no body after a HEAD answer and keeps the connection', async () => {
    const path = await listen(createHttpServer((_req, res) => res.writeHead(200, { 'Content-Length': '5' }).end()));
    const { pool: p, connections } = pool(path);
    expect((await run(p, 'HEAD', '/_ping')).status).toBe(200);
    expect((await run(p, 'HEAD', '/_ping')).status).toBe(200);
    expect(connections()).toBe(1);
  });

  it('skips an interim 100 answer and relays the final one', async () => {
    const path = await scripted('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok');
    const a = await run(pool(path).pool, 'POST', '/x', ['Host', 'd', 'Content-Length', '0']);
    expect([a.status, a.message, a.body]).toEqual([201, 'Created', 'ok']);
  });

  it('reads an answer delimited by the end of the connection, and never reuses that connection', async () => {
    const path = await scripted('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it', (s) => s.end());
    const { pool: p, connections } = pool(path);
    expect((await run(p, 'GET', '/a')).body).toBe('all of it');
    expect((await run(p, 'GET', '/b')).body).toBe('all of it');
    expect(connections()).toBe(2);
  });

  it('fails an answer cut short by the end of the connection', async () => {
    const path = await scripted('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort', (s) => s.end());
    expect((await run(pool(path).pool, 'GET', '/a')).error).toMatch(/before its answer was complete/);
  });

  it('never reuses a connection that carried bytes after the answer', async () => {
    const path = await scripted('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil');
    const { pool: p, connections } = pool(path);
    expect((await run(p, 'GET', '/a')).body).toBe('ok');
    expect((await run(p, 'GET', '/b')).body).toBe('ok');
    expect(connections()).toBe(2);
  });

  it('fails on an answer it cannot parse', async () => {
    const path = await scripted('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok');
    expect((await run(pool(path).pool, 'GET', '/a')).error).toMatch(/could not be parsed/);
  });

  it('drops an idle pooled connection that receives anything', async () => {
    const path = await scripted('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', (s) => setTimeout(() => s.write('X'), 10));
    const { pool: p, connections } = pool(path);
    await run(p, 'GET', '/a');
    await new Promise((r) => setTimeout(r, 50));
    expect((await run(p, 'GET', '/b')).body).toBe('ok');
    expect(connections()).toBe(2);
  });

  it('streams a chunked request body that the server reads de-framed, and one with its declared length', async () => {
    const path = await listen(
      createHttpServer((req: IncomingMessage, res: ServerResponse) => {
        let body = '';
        req.on('data', (d: Buffer) => (body += d.toString())).on('end', () => res.end(`${req.headers['transfer-encoding'] ?? req.headers['content-length']}:${body}`));
      }),
    );
    const { pool: p, connections } = pool(path);
    const parts = [Buffer.from('abc'), Buffer.from('defg')];
    expect((await run(p, 'POST', '/load', ['Host', 'd', 'Transfer-Encoding', 'chunked'], { kind: 'chunked' }, parts)).body).toBe('chunked:abcdefg');
    expect((await run(p, 'POST', '/load', ['Host', 'd', 'Content-Length', '7'], { kind: 'length' }, parts)).body).toBe('7:abcdefg');
    expect(connections()).toBe(1);
  });

  it('does not reuse a connection answered before the request body was sent in full', async () => {
    const path = await scripted('HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n');
    const { pool: p, connections } = pool(path);
    const a = await new Promise<number>((resolve) => {
      p.exchange('POST', '/load', ['Host', 'd', 'Transfer-Encoding', 'chunked'], { kind: 'chunked' }, {
        head: (status) => resolve(status),
        body() {},
        idle() {},
        end() {},
        error() {},
      });
    });
    expect(a).toBe(413);
    await run(p, 'GET', '/b');
    expect(connections()).toBe(2);
  });

  it.each([
    ['a chunked body with its chunk lines', 'Transfer-Encoding: chunked\r\n\r\n4\r\none,\r\n3\r\ntwo\r\n0\r\n\r\n', 'chunked', '4\r\none,\r\n3\r\ntwo\r\n0\r\n\r\n'],
    ['a body of a stated length', 'Content-Length: 5\r\n\r\nhello', 'length', 'hello'],
  ])('relays %s byte for byte when asked, and reuses the connection', async (_what, rest, framing, relayed) => {
    const { pool: p, connections } = pool(await scripted(`HTTP/1.1 200 OK\r\n${rest}`));
    for (let i = 0; i < 2; i++) expect(await run(p, 'GET', '/a', undefined, undefined, undefined, true)).toMatchObject({ status: 200, framing, body: relayed });
    expect(connections()).toBe(1);
  });

  it.each([
    ['in a header', 'HTTP/1.1 200 OK\r\nTransfer-', 'Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n'],
    // The first CRLF CRLF of the second read is the body's last chunk, not the head's end.
    ['inside its final CRLF CRLF', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r', '\n2\r\nok\r\n0\r\n\r\n'],
  ])('de-frames a body whose head was split %s between reads, even when asked to relay it', async (_where, first, second) => {
    const path = await scripted(first, (s) => setTimeout(() => s.write(second), 20));
    expect(await run(pool(path).pool, 'GET', '/a', undefined, undefined, undefined, true)).toMatchObject({ framing: 'chunked', body: 'ok' });
  });

  it('relays nothing of a read that carries bytes after the answer', async () => {
    const path = await scripted('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    expect(await run(pool(path).pool, 'GET', '/a', undefined, undefined, undefined, true)).toMatchObject({ body: '', error: 'dockerd sent bytes after its answer' });
  });

  it('reports a daemon that is not there', async () => {
    const a = await run(pool(join(tmpdir(), 'no-such-dir-xyz', 's.sock')).pool, 'GET', '/_ping');
    expect(a.error).toMatch(/ENOENT/);
  });
});
