/**
 * The harness of serveConnection's unit tests (client-connection*.test.ts), over real sockets: a `node:net` server on
 * 127.0.0.1 and a raw net client writing exact bytes. The server-side socket is handed over as a TLSSocket:
 * serveConnection only uses the plain socket API, TLS adds nothing to HTTP framing, and the Defender's TLS is covered
 * by client-reads.test.ts and the e2e tests. It reads into reused buffers, as the Defender does.
 *
 * Test code, kept out of the build (defender/tsconfig.json) and typechecked with the tests that import it.
 */
import { connect, createServer, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ClientAnswer } from './client-answer.js';
import { serveConnection, type ClientConnection, type ConnectionHandlers } from './client-connection.js';
import { CLIENT_READ_SIZE } from './client-reads.js';
import type { IncomingRequest } from './incoming-request.js';
import { ReadBuffers } from './read-buffers.js';

const cleanups: Array<() => void> = [];

/** Closes every connection `serve` made: each test file's afterEach. */
export function closeAll(): void {
  for (const f of cleanups.splice(0)) f();
}

export const b = (s: string): Buffer => Buffer.from(s, 'latin1');
export const later = (ms = 20): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface Peer {
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

export async function serve(handlers: Partial<ConnectionHandlers>): Promise<Peer> {
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
export function answerOk(body: string, log?: string[], delay?: number) {
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

export const ok = (body: string, extra = ''): string => `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`;
