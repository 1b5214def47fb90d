/**
 * dockerd's answers are read into reused 64 KiB buffers (net.Socket's documented `onread` option) instead of a fresh
 * one per read. A gigabyte `docker cp` otherwise allocates 16,000 buffers, each faulting in new pages, that V8 frees
 * only in full garbage collections triggered by their size (a sixth of the Defender's CPU on such a stream).
 *
 * A read's bytes are valid until its handler returns, unless the handler `keep`s them: the buffer is then not read
 * into again until every keeper released it (ClientAnswer does once the piece was written to the client). Releasing
 * twice counts once; a keeper that never releases only costs one buffer, collected as usual.
 */
import type { OnReadOpts } from 'node:net';

export const READ_SIZE = 64 * 1024;
/** Free buffers kept for reuse (4 MiB); more are left to the garbage collector. */
const MAX_FREE = 64;

/** Gives a kept piece's buffer back (once all its keepers did). */
export type Release = () => void;
/** Called by a read's handler to use the bytes after it returned. */
export type Keep = () => Release;

interface Lease {
  readonly buf: Buffer;
  /** Keepers that did not release yet. */
  holds: number;
  /** No longer read into: back to the free list once `holds` is 0. */
  retired: boolean;
}

export class ReadBuffers {
  private readonly free: Buffer[] = [];

  get freeCount(): number {
    return this.free.length;
  }

  /** `onread` options for one socket; `deliver` gets each read's bytes and the means to keep them. */
  reader(deliver: (chunk: Buffer, keep: Keep) => void): OnReadOpts {
    let lease: Lease = { buf: this.take(), holds: 0, retired: false };
    const keep = (): Release => {
      const l = lease;
      l.holds++;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        if (--l.holds === 0 && l.retired) this.give(l.buf);
      };
    };
    return {
      // Node asks for the next read's buffer after each callback: the same one unless its bytes were kept.
      buffer: () => {
        if (lease.holds > 0) {
          lease.retired = true;
          lease = { buf: this.take(), holds: 0, retired: false };
        }
        return lease.buf;
      },
      callback: (nread: number) => {
        deliver(lease.buf.subarray(0, nread), keep);
        return true; // keep reading (backpressure pauses the socket itself)
      },
    };
  }

  private take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(READ_SIZE);
  }

  private give(buf: Buffer): void {
    if (this.free.length < MAX_FREE) this.free.push(buf);
  }
}
