/**
 * A client's TLS connection read into reused buffers (client-reads.ts), over real TLS on 127.0.0.1: it is in effect on
 * this Node, the bytes arrive whole and in order however the reader pauses, a retained chunk is never read over, and
 * nothing is lent while the connection says not to.
 */
import 'reflect-metadata'; // @peculiar/x509's dependency injection
import { createHash, webcrypto } from 'node:crypto';
import { connect, createServer, type TLSSocket } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_READ_SIZE, lendClientReads } from './client-reads.js';
import { ReadBuffers, retain, type Release } from './read-buffers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanups.splice(0)) f();
});

let tlsFiles: { cert: string; key: string };
beforeAll(async () => {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=localhost',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_600_000),
    keys,
    signingAlgorithm: alg,
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  tlsFiles = { cert: cert.toString('pem'), key: `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n` };
});

interface Connection {
  /** The server's side, as the Defender gets it on 'secureConnection'. */
  readonly server: TLSSocket;
  readonly client: TLSSocket;
}

/** A TLS connection; `onSecure` runs on the server's socket where the Defender's server.ts runs serveConnection. */
async function tlsConnection(onSecure: (server: TLSSocket) => void): Promise<Connection> {
  const listener = createServer({ ...tlsFiles, allowHalfOpen: true });
  const accepted = new Promise<TLSSocket>((resolve) =>
    listener.once('secureConnection', (s: TLSSocket) => {
      onSecure(s);
      resolve(s);
    }),
  );
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const client = connect({ port: (listener.address() as { port: number }).port, host: '127.0.0.1', rejectUnauthorized: false });
  client.on('error', () => undefined);
  const server = await accepted;
  cleanups.push(() => {
    client.destroy();
    server.destroy();
    listener.close();
  });
  return { server, client };
}

/** `size` random-looking bytes written in pieces of `piece` (many TLS records, several per TCP read). */
function send(client: TLSSocket, size: number, piece = 100_000): string {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 7919 + (i >> 13)) & 0xff;
  for (let at = 0; at < size; at += piece) client.write(data.subarray(at, at + piece));
  client.end();
  return createHash('sha256').update(data).digest('hex');
}

interface ReadAll {
  readonly sha256: string;
  readonly bytes: number;
  readonly chunks: number;
  /** How many distinct buffers the chunks lay in. */
  readonly buffers: number;
}

/** Reads the server side to its end; `onChunk` sees each chunk during its 'data' call. */
function readAll(server: TLSSocket, onChunk: (chunk: Buffer) => void = () => undefined): Promise<ReadAll> {
  const hash = createHash('sha256');
  const memories = new Set<ArrayBufferLike>();
  let bytes = 0;
  let chunks = 0;
  return new Promise((resolve) => {
    server.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      memories.add(chunk.buffer);
      bytes += chunk.length;
      chunks++;
      onChunk(chunk);
    });
    server.once('end', () => resolve({ sha256: hash.digest('hex'), bytes, chunks, buffers: memories.size }));
  });
}

/** A TLS connection whose server side lends its reads while `lend()` says so, as serveConnection sets it up. */
async function lendingConnection(lend: () => boolean = () => true): Promise<Connection & { pool: ReadBuffers; lent: boolean }> {
  const pool = new ReadBuffers(CLIENT_READ_SIZE);
  let lent = false;
  const conn = await tlsConnection((s) => {
    s.on('data', () => undefined); // as serveConnection: a 'data' listener first
    lent = lendClientReads(s, pool, lend);
  });
  return { ...conn, pool, lent };
}

describe('lendClientReads', () => {
  it('is in effect on this Node: 8 MiB arrive whole, in a handful of reused buffers', async () => {
    const { server, client, lent } = await lendingConnection();
    expect(lent).toBe(true);
    const read = readAll(server);
    const sent = send(client, 8 * 1024 * 1024);
    const r = await read;
    expect([r.sha256, r.bytes]).toEqual([sent, 8 * 1024 * 1024]);
    expect(r.chunks).toBeGreaterThan(400); // one per TLS record
    expect(r.buffers).toBeLessThanOrEqual(2); // Node's own reads would have given each its own
  });

  it('a retained chunk is never read over; its buffer is reused once released', async () => {
    const { server, client, pool } = await lendingConnection();
    const kept: Array<{ copy: Buffer; chunk: Buffer; release: Release }> = [];
    const read = readAll(server, (chunk) => {
      if (kept.length < 50) kept.push({ chunk, copy: Buffer.from(chunk), release: retain(chunk) });
    });
    const sent = send(client, 4 * 1024 * 1024, 16_000);
    expect((await read).sha256).toBe(sent);
    expect(kept.filter((k) => !k.chunk.equals(k.copy))).toEqual([]); // what was kept still holds its bytes
    const held = new Set(kept.map((k) => k.chunk.buffer));
    expect(held.size).toBe(kept.length); // each kept read moved the next one to another buffer
    expect(pool.freeCount).toBe(0);
    for (const k of kept) k.release();
    expect(pool.freeCount).toBe(kept.length); // all back for reuse (the socket reads into one more)
  });

  it('a reader that pauses after every chunk still gets every byte in order', async () => {
    const { server, client } = await lendingConnection();
    const read = readAll(server, () => {
      server.pause();
      setImmediate(() => server.resume());
    });
    const sent = send(client, 6 * 1024 * 1024, 64 * 1024);
    const r = await read;
    expect([r.sha256, r.bytes]).toEqual([sent, 6 * 1024 * 1024]);
    expect(r.chunks).toBeGreaterThan(r.buffers); // lent: the same buffer again and again…
    expect(r.buffers).toBeGreaterThan(2); // …and copies, of what came while the socket was paused
  });

  it('lends nothing while the connection says not to: every chunk is a buffer of its own', async () => {
    const { server, client } = await lendingConnection(() => false);
    const read = readAll(server);
    const sent = send(client, 2 * 1024 * 1024);
    const r = await read;
    expect(r.sha256).toBe(sent);
    expect(r.buffers).toBe(r.chunks);
  });

  it('a socket that already reads into buffers of its own is left alone', async () => {
    const results: boolean[] = [];
    await tlsConnection((s) => {
      results.push(lendClientReads(s, new ReadBuffers(CLIENT_READ_SIZE), () => true));
      results.push(lendClientReads(s, new ReadBuffers(CLIENT_READ_SIZE), () => true));
    });
    expect(results).toEqual([true, false]);
  });
});
