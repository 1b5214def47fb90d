/**
 * Reused read buffers, on real UNIX socket connections: a read's bytes are never overwritten while kept, a buffer is
 * reused once nothing keeps it, and only then.
 */
import { mkdtempSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ReadBuffers, READ_SIZE, retain, type Release } from './read-buffers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const f of cleanups.splice(0)) f();
});

interface Peer {
  /** The server's end of the connection: what it writes is read through the ReadBuffers reader. */
  send(bytes: Buffer): Promise<void>;
}

interface Read {
  readonly chunk: Buffer;
}

/** A connection whose reads go through `buffers`; `onRead` runs inside each read (as the upstream pool's handler). */
async function connection(buffers: ReadBuffers, onRead: (r: Read) => void = () => undefined): Promise<{ peer: Peer; reads: Read[]; received: () => number; client: Socket }> {
  const path = join(mkdtempSync(join(tmpdir(), 'rdb-')), 's.sock');
  let serverSide: Socket | undefined;
  const server: Server = createServer((s) => (serverSide = s));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const reads: Read[] = [];
  let received = 0;
  const client = connect({
    path,
    onread: buffers.reader((chunk) => {
      received += chunk.length;
      const r = { chunk };
      reads.push(r);
      onRead(r);
    }),
  });
  await new Promise<void>((resolve) => client.once('connect', resolve));
  while (!serverSide) await new Promise((r) => setTimeout(r, 5));
  cleanups.push(() => {
    client.destroy();
    serverSide?.destroy();
    server.close();
  });
  const peer: Peer = {
    send: async (bytes) => {
      const before = received;
      serverSide!.write(bytes);
      while (received < before + bytes.length) await new Promise((r) => setTimeout(r, 2));
    },
  };
  return { peer, reads, received: () => received, client };
}

const filled = (byte: number, n = 1000): Buffer => Buffer.alloc(n, byte);

describe('ReadBuffers', () => {
  it('reads into the same buffer again when no read was kept', async () => {
    const buffers = new ReadBuffers();
    const { peer, reads } = await connection(buffers);
    await peer.send(filled(1));
    await peer.send(filled(2));
    await peer.send(filled(3));
    expect(reads.length).toBe(3);
    expect(new Set(reads.map((r) => r.chunk.buffer)).size).toBe(1);
    expect(reads[0]!.chunk.buffer.byteLength).toBeGreaterThanOrEqual(READ_SIZE);
    expect(buffers.freeCount).toBe(0);
  });

  it('never reads into a kept buffer: its bytes stay as they were while later reads arrive', async () => {
    const buffers = new ReadBuffers();
    let release: Release | undefined;
    const { peer, reads } = await connection(buffers, (r) => {
      if (release === undefined) release = retain(r.chunk);
    });
    await peer.send(filled(7, 4000));
    const kept = reads[0]!.chunk;
    await peer.send(filled(8, 4000));
    await peer.send(filled(9, 4000));
    expect(kept.equals(filled(7, 4000))).toBe(true);
    expect(reads[1]!.chunk.buffer).not.toBe(kept.buffer);
    expect(reads[2]!.chunk.buffer).toBe(reads[1]!.chunk.buffer); // the next one, not kept, is reused
    expect(buffers.freeCount).toBe(0);
    release!();
    expect(buffers.freeCount).toBe(1);
    // A new connection takes the released buffer.
    const other = await connection(buffers);
    await other.peer.send(filled(4));
    expect(other.reads[0]!.chunk.buffer).toBe(kept.buffer);
    expect(buffers.freeCount).toBe(0);
  });

  it('gives a buffer back once all its keepers released it, and a second release of one keeper counts once', async () => {
    const buffers = new ReadBuffers();
    const releases: Release[] = [];
    const { peer } = await connection(buffers, (r) => {
      if (releases.length === 0) releases.push(retain(r.chunk), retain(r.chunk));
    });
    await peer.send(filled(1));
    await peer.send(filled(2)); // the kept buffer is retired: the socket reads into another one
    releases[0]!();
    releases[0]!();
    expect(buffers.freeCount).toBe(0); // the second keeper still holds it
    releases[1]!();
    expect(buffers.freeCount).toBe(1);
  });

  it('a buffer released while its read is being handled stays the socket\'s, never also on the free list', async () => {
    const buffers = new ReadBuffers();
    const { peer, reads } = await connection(buffers, (r) => retain(r.chunk)());
    await peer.send(filled(1));
    await peer.send(filled(2));
    expect(buffers.freeCount).toBe(0);
    expect(reads[1]!.chunk.buffer).toBe(reads[0]!.chunk.buffer);
    const other = await connection(buffers);
    await other.peer.send(filled(3));
    expect(other.reads[0]!.chunk.buffer).not.toBe(reads[0]!.chunk.buffer);
  });

  it('retains from any slice of a read; a buffer of its own retains nothing', async () => {
    const buffers = new ReadBuffers();
    let release: Release | undefined;
    const { peer, reads } = await connection(buffers, (r) => {
      if (release === undefined) release = retain(r.chunk.subarray(100, 200));
    });
    await peer.send(filled(5, 4000));
    await peer.send(filled(6, 4000));
    expect(reads[0]!.chunk.equals(filled(5, 4000))).toBe(true);
    expect(reads[1]!.chunk.buffer).not.toBe(reads[0]!.chunk.buffer);
    release!();
    expect(buffers.freeCount).toBe(1);
    retain(Buffer.from(reads[1]!.chunk))(); // a copy: nothing to hold or give back
    expect(buffers.freeCount).toBe(1);
  });

  it('keeps at most 64 free buffers', async () => {
    const buffers = new ReadBuffers();
    const releases: Release[] = [];
    const { peer } = await connection(buffers, (r) => releases.push(retain(r.chunk)));
    for (let i = 0; i < 70; i++) await peer.send(filled(i));
    await peer.send(filled(99)); // retires the 70th
    for (const release of releases.slice(0, 70)) release();
    expect(buffers.freeCount).toBe(64);
  });
});
