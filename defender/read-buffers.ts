/**
 * dockerd's answers (64 KiB buffers) and what clients send (16 KiB, client-reads.ts) are read into reused buffers
 * (net.Socket's documented `onread` option) instead of a fresh one per read. A gigabyte `docker cp` otherwise
 * allocates tens of thousands of buffers, each faulting in new pages, that V8 frees only in full garbage collections
 * triggered by their size (a sixth of the Defender's CPU on such a stream).
 *
 * A read's bytes are valid until its handler returns, unless code they were handed to `retain`s them (any slice
 * will do). The buffer is then not read into again until every keeper released it (ClientAnswer does once the piece
 * was written to the client). Releasing twice counts once; a keeper that never releases only costs one buffer,
 * collected as usual.
 */
import type { OnReadOpts } from 'node:net';

export const READ_SIZE = 64 * 1024;
/** Free buffers kept for reuse (4 MiB of READ_SIZE ones); more are left to the garbage collector. */
const MAX_FREE = 64;

/** Gives a kept piece's buffer back (once all its keepers did). */
export type Release = () => void;

interface Lease {
  readonly buf: Buffer;
  /** Keepers that did not release yet. */
  holds: number;
  /** No longer read into: back to the free list once `holds` is 0. */
  retired: boolean;
}

export class ReadBuffers {
  private readonly free: Buffer[] = [];

  /** `size`: of each buffer, the most one read delivers. */
  constructor(readonly size = READ_SIZE) {}

  get freeCount(): number {
    return this.free.length;
  }

  /**
   * `onread` options for one socket; `deliver` gets each read's bytes (`retain` keeps them). What `deliver` returns
   * is what Node's callback returns: false stops reading (as a full Readable does).
   */
  reader(deliver: (chunk: Buffer) => boolean | void): OnReadOpts {
    let lease = this.lease();
    return {
      // Node asks for the next read's buffer after each callback: the same one unless its bytes were kept.
      buffer: () => {
        if (lease.holds > 0) {
          lease.retired = true;
          lease = this.lease();
        }
        return lease.buf;
      },
      callback: (nread: number) => deliver(lease.buf.subarray(0, nread)) !== false,
    };
  }

  private lease(): Lease {
    const l: Lease = { buf: this.take(), holds: 0, retired: false };
    leases.set(l.buf.buffer, () => this.hold(l));
    return l;
  }

  private hold(l: Lease): Release {
    l.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--l.holds === 0 && l.retired) this.give(l.buf);
    };
  }

  private take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  private give(buf: Buffer): void {
    if (this.free.length < MAX_FREE) this.free.push(buf);
  }
}

/** How to hold the lease each read buffer is in now, by its memory: what `retain` finds from any slice of a read. */
const leases = new WeakMap<ArrayBufferLike, () => Release>();

const NOTHING_HELD: Release = () => undefined;

/**
 * Keeps the read a chunk lies in from being read into again, until the returned function is called; for a chunk that
 * lies in no read buffer (a copy, a buffer of its own) it does nothing. Call it while the chunk is still valid: in the
 * call that handed it over.
 */
export function retain(chunk: Buffer): Release {
  const entry = leases.get(chunk.buffer);
  return entry ? entry() : NOTHING_HELD;
}
