/**
 * ClientAnswer's handling of pieces that lie in reused read buffers (read-buffers.ts), on a real TCP connection: a
 * piece is given back only once the socket wrote it or it was copied, exactly once, also when the client goes away;
 * and TCP_NODELAY is cleared for a bulk answer only, then set again.
 * The server side is a plain net socket handed over as a TLSSocket (ClientAnswer uses only the socket API).
 */
import { connect, createServer, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ClientAnswer } from './client-answer.js';
import type { IncomingRequest } from './incoming-request.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanups.splice(0)) f();
});

/** A connected pair: `server` is what the answer writes on; `received()` counts what the client got. */
async function pair(): Promise<{ server: Socket; client: Socket; received: () => Buffer }> {
  const listener = createServer();
  const accepted = new Promise<Socket>((resolve) => listener.once('connection', resolve));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const client = connect({ port: (listener.address() as { port: number }).port, host: '127.0.0.1' });
  client.on('error', () => undefined);
  const chunks: Buffer[] = [];
  client.on('data', (d: Buffer) => chunks.push(d));
  const server = await accepted;
  server.on('error', () => undefined);
  cleanups.push(() => {
    client.destroy();
    server.destroy();
    listener.close();
  });
  return { server, client, received: () => Buffer.concat(chunks) };
}

const request = { method: 'GET', httpMinor: 1, keepAlive: true } as IncomingRequest;

function answerOn(server: Socket): ClientAnswer {
  return new ClientAnswer(server as TLSSocket, request, () => false, () => undefined);
}

describe('ClientAnswer with pieces of read buffers', () => {
  it('gives a piece back after the socket wrote it, and pieces copied into one write at once', async () => {
    const { server, received } = await pair();
    const log: string[] = [];
    const big = Buffer.alloc(300_000, 'a');
    const answer = answerOn(server);
    answer.writeHead(200, 'OK', ['Content-Length', String(big.length + 4)]);
    answer.write(big, () => log.push('big given back'));
    log.push('big queued');
    await vi.waitFor(() => expect(log).toEqual(['big queued', 'big given back']));
    answer.write(Buffer.from('ta'), () => log.push('ta given back'));
    answer.write(Buffer.from('il'), () => log.push('il given back'));
    answer.end();
    expect(log.slice(2)).toEqual(['ta given back', 'il given back']); // copied into one write when the answer ended
    await vi.waitFor(() => expect(received().toString('latin1')).toMatch(/\r\n\r\na{300000}tail$/));
    expect(log).toHaveLength(4);
  });

  it('gives every piece back once when the client goes away with pieces waiting, and writes nothing after', async () => {
    const { server, client } = await pair();
    client.pause(); // the kernel's buffers fill up: the first write stays under way, the others wait
    const given: number[] = [];
    const answer = answerOn(server);
    answer.writeHead(200, 'OK', ['Content-Length', String(5 * 4_000_000)]);
    let ok = true;
    for (let i = 0; i < 5; i++) ok = answer.write(Buffer.alloc(4_000_000, i), () => given.push(i));
    expect(ok).toBe(false); // over the high-water mark: the caller waits for onDrain
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(given.length).toBeLessThan(5);
    client.destroy();
    server.once('close', () => answer.clientGone()); // as client-connection.ts does
    await vi.waitFor(() => expect([...given].sort()).toEqual([0, 1, 2, 3, 4]));
    expect(answer.write(Buffer.from('late'), () => given.push(9))).toBe(false);
    expect(given.filter((g) => g === 9)).toHaveLength(1); // refused, given back at once
  });

  it('lets Nagle merge the writes of an answer only once its body passed 256 KiB, and sets TCP_NODELAY again at its end', async () => {
    const { server, received } = await pair();
    const noDelay = vi.spyOn(server, 'setNoDelay');
    const small = answerOn(server);
    small.writeHead(200, 'OK', ['Content-Length', '4']);
    small.end(Buffer.from('tiny'));
    expect(noDelay).not.toHaveBeenCalled();
    const bulk = answerOn(server);
    bulk.writeHead(200, 'OK', []); // chunked: dockerd's `logs`
    for (let i = 0; i < 256; i++) bulk.write(Buffer.alloc(1024, 'l'));
    expect(noDelay).not.toHaveBeenCalled(); // exactly 256 KiB: still answered piece by piece
    bulk.write(Buffer.from('one more'));
    expect(noDelay.mock.calls).toEqual([[false]]);
    bulk.end();
    expect(noDelay.mock.calls).toEqual([[false], [true]]);
    await vi.waitFor(() => expect(received().toString('latin1')).toMatch(/one more\r\n0\r\n\r\n$/));
  });
});
