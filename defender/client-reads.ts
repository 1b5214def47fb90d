/**
 * What a client sends is read into reused buffers (read-buffers.ts), as dockerd's answers are.
 *
 * - Why: Node's TLS socket hands every record it decrypts to JS in a fresh buffer of its own. A 1 GiB upload (`docker
 *   cp` into a container, a build context, `docker load`) makes 65,000 of them, and the full garbage collections their
 *   size triggers cost the Defender more CPU than everything else it does with the bytes (measured in one run: 2.5–4.8 s
 *   of CPU per GiB, against 2.1–2.8 s with reused buffers; HAProxy 1.9–2.0 s).
 * - How: net.Socket's documented `onread` option does exactly this, but Node applies it only to sockets it creates
 *   from the option, never to the TLSSocket a server makes for each connection. `lendClientReads` sets on that socket
 *   the same three fields the option sets (Node's own `kBuffer`, `kBufferCb` and `kBufferGen`, found by their names)
 *   and hands the TLS handle its first buffer, as the option does. When this Node has not got them it changes nothing,
 *   and the socket reads as before. A unit test checks that it is in effect on the Node in use.
 * - The contract for whoever gets the bytes: a 'data' chunk is valid only during the 'data' call. Code that keeps
 *   one (a body waiting for its reader, a write to dockerd not yet done) calls `retain` on it, or copies it.
 * - Chunks are lent only while `lend()` says so (the connection speaks HTTP: its few keepers are known). Otherwise,
 *   and whenever the socket would not emit at once (paused, earlier data still buffered, no 'data' listener), the
 *   bytes are copied and pushed as Node would push them, so that order and backpressure stay Node's.
 */
import type { TLSSocket } from 'node:tls';
import type { ReadBuffers } from './read-buffers.js';

/**
 * The size of the client side's read buffers: Node's TLS socket hands over at most one TLS record (16 KiB) at a
 * time, so a larger buffer would only be idle memory on every connection.
 */
export const CLIENT_READ_SIZE = 16 * 1024;

interface OnReadFields {
  readonly kBuffer: symbol;
  readonly kBufferCb: symbol;
  readonly kBufferGen: symbol;
}

/** Node's fields for `onread` on a socket, by name; null when this Node has not got them. */
function onReadFields(socket: TLSSocket): OnReadFields | null {
  const own = Object.getOwnPropertySymbols(socket);
  const find = (name: string): symbol | undefined => own.find((s) => s.description === name);
  const kBuffer = find('kBuffer');
  const kBufferCb = find('kBufferCb');
  const kBufferGen = find('kBufferGen');
  if (!kBuffer || !kBufferCb || !kBufferGen) return null;
  return { kBuffer, kBufferCb, kBufferGen };
}

interface StreamHandle {
  useUserBuffer?(buf: Uint8Array): void;
}

/**
 * Reads `socket` (a server's TLS socket, before it has delivered any data to us) into `buffers`. Returns false and
 * leaves the socket alone when this Node does not allow it.
 */
export function lendClientReads(socket: TLSSocket, buffers: ReadBuffers, lend: () => boolean): boolean {
  const fields = onReadFields(socket);
  const handle = (socket as unknown as { _handle: StreamHandle | null })._handle;
  if (fields === null || typeof handle?.useUserBuffer !== 'function') return false;
  const slots = socket as unknown as Record<symbol, unknown>;
  if (slots[fields.kBuffer] !== null || slots[fields.kBufferCb] !== null || slots[fields.kBufferGen] !== null) return false;
  const { buffer, callback } = buffers.reader((chunk) => {
    if (lend() && socket.readableFlowing === true && socket.readableLength === 0 && socket.listenerCount('data') > 0) {
      socket.emit('data', chunk);
      return true;
    }
    return socket.push(Buffer.from(chunk)); // false: Node stops reading until the socket is read from again
  });
  const next = buffer as () => Buffer;
  slots[fields.kBufferGen] = next;
  slots[fields.kBufferCb] = callback;
  slots[fields.kBuffer] = next();
  handle.useUserBuffer(slots[fields.kBuffer] as Buffer);
  return true;
}
