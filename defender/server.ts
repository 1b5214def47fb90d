/**
 * The Defender's listener: mTLS in front of dockerd.
 *
 * - TLS 1.2+ with a client certificate that chains to the configured CA and is within its validity period;
 *   anything else fails the handshake, before any HTTP is read. (A revoked certificate is refused per request, in
 *   authorize-request.ts: the revocation list can change while a connection is open.)
 * - HTTP is the Defender's own over each TLS connection (client-connection.ts): every request on a keep-alive
 *   connection goes through `forwardRequest` on its own, upgrades through `forwardHijack`, one at a time and in
 *   order per connection. A request the parser refuses gets Docker's JSON 400 and is audited.
 * - One Defender can listen on several addresses at once (TCP or a UNIX socket), each its own TLS server with the
 *   same TLS material and handlers: a listener switched by the Console starts the new one before the old one stops.
 * - `setTls()` swaps the certificate and key of every listener (`setSecureContext`) and of those started later:
 *   new handshakes get the new ones, connections already open keep theirs (renewal without a restart).
 * - Closing a listener stops accepting, closes idle keep-alive connections, lets running requests and streams
 *   finish for the grace period, then cuts what is left. `close()` does that for every listener.
 */
import type { AddressInfo, Socket } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { recordMalformed, rememberIdentity, type DefenderContext } from './authorize-request.js';
import { serveConnection, type ClientConnection } from './client-connection.js';
import { CLIENT_READ_SIZE } from './client-reads.js';
import { ReadBuffers } from './read-buffers.js';
import type { DockerUpstream } from './docker-upstream.js';
import { forwardHijack } from './forward-hijack.js';
import { forwardRequest } from './forward-request.js';
import type { IncomingRequest } from './incoming-request.js';
import type { ClientAnswer } from './client-answer.js';

const MAX_HEADER_SIZE = 64 * 1024;

export interface TlsMaterial {
  readonly ca: string | Buffer;
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
}

/** Where a listener binds: TCP, or a UNIX socket path (the caller prepares the path and its mode). */
export type ListenTarget = { readonly port: number; readonly host?: string } | { readonly path: string };

export interface DefenderListener {
  readonly server: Server;
  /** HOST:PORT actually bound (IPv6 in brackets), or the socket path. */
  readonly address: string;
  /** Stops accepting; running requests and streams may finish for `graceMs` (Infinity: as long as they run). */
  close(graceMs: number): Promise<void>;
}

export interface DefenderServer {
  listen(target: ListenTarget): Promise<DefenderListener>;
  /** New TLS material for every listener, open and future (new handshakes only). */
  setTls(tls: TlsMaterial): void;
  /** Closes every listener, including those still draining, and the upstream pool. */
  close(graceMs: number): Promise<void>;
}

function formatAddress(server: Server, target: ListenTarget): string {
  if ('path' in target) return target.path;
  const a = server.address() as AddressInfo;
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

export function buildDefender(ctx: DefenderContext, upstream: DockerUpstream, initialTls: TlsMaterial): DefenderServer {
  const listeners = new Set<DefenderListener>();
  let tls = initialTls;
  return {
    async listen(target) {
      const server = createListenerServer(ctx, upstream, tls);
      await new Promise<void>((resolve, reject) => {
        server.server.once('error', reject);
        const onListening = (): void => {
          server.server.off('error', reject);
          resolve();
        };
        if ('path' in target) server.server.listen(target.path, onListening);
        else server.server.listen(target.port, target.host, onListening);
      });
      const listener: DefenderListener = {
        server: server.server,
        address: formatAddress(server.server, target),
        close: (graceMs) => server.close(graceMs).finally(() => listeners.delete(listener)),
      };
      listeners.add(listener);
      return listener;
    },
    setTls(next) {
      tls = next;
      for (const l of listeners) l.server.setSecureContext({ ca: next.ca, cert: next.cert, key: next.key, minVersion: 'TLSv1.2' });
    },
    async close(graceMs) {
      await Promise.all([...listeners].map((l) => l.close(graceMs)));
      upstream.close();
    },
  };
}

const SWEEP_MS = 5_000;

function createListenerServer(ctx: DefenderContext, upstream: DockerUpstream, tls: TlsMaterial): { server: Server; close(graceMs: number): Promise<void> } {
  const server = createServer({
    ca: tls.ca,
    cert: tls.cert,
    key: tls.key,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    allowHalfOpen: true,
    noDelay: true,
  });
  const sockets = new Set<Socket>();
  const connections = new Set<ClientConnection>();
  // Every TCP connection, from accept: one still in its TLS handshake (or stalled in it) must not hold a shutdown
  // past the grace period either.
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  let closing = false;
  const handlers = {
    request: (req: IncomingRequest, answer: ClientAnswer): void => {
      forwardRequest(ctx, upstream, req, answer).catch((err: Error) => {
        ctx.log.error('request failed', { error: err.message });
        answer.destroy();
      });
    },
    upgrade: (req: IncomingRequest, head: Buffer): void => {
      forwardHijack(ctx, upstream, req, req.socket, head).catch((err: Error) => {
        ctx.log.error('upgrade failed', { error: err.message });
        req.socket.destroy();
      });
    },
    malformed: (socket: TLSSocket, culprit: IncomingRequest | null, reason: string): void => recordMalformed(ctx, socket, culprit, reason),
  };
  const options = { maxHeaderSize: MAX_HEADER_SIZE, closing: () => closing, readBuffers: new ReadBuffers(CLIENT_READ_SIZE) };
  server.on('secureConnection', (socket: TLSSocket) => {
    // `noDelay` above set TCP_NODELAY on the TCP socket; this tells the TLS socket, whose own setNoDelay(false) would
    // otherwise do nothing (ClientAnswer clears it for a bulk answer, then sets it again).
    socket.setNoDelay(true);
    rememberIdentity(socket);
    const connection = serveConnection(socket, handlers, options);
    connections.add(connection);
    socket.on('close', () => connections.delete(connection));
  });
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const c of connections) c.sweep(now);
  }, SWEEP_MS).unref();
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket) => {
    // A client certificate that fails verification (expired, unknown CA…) is not reported as `err`: Node destroys
    // the socket and `err` is a generic ECONNRESET "socket hang up"; the real reason is the verify error code
    // (a string such as CERT_HAS_EXPIRED at runtime, despite the `Error` type) left on the socket.
    const verifyError = (socket as TLSSocket).authorizationError as unknown;
    const reason = typeof verifyError === 'string' ? verifyError : verifyError instanceof Error ? ((verifyError as NodeJS.ErrnoException).code ?? verifyError.message) : (err.code ?? err.message);
    ctx.log.info('TLS handshake refused', { client: socket.remoteAddress, error: reason });
  });

  let closed: Promise<void> | null = null;
  return {
    server,
    close(graceMs) {
      closing = true;
      clearInterval(sweep);
      closed ??= new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of connections) c.closeIfIdle();
      const timer = Number.isFinite(graceMs)
        ? setTimeout(() => {
            for (const s of sockets) s.destroy();
          }, graceMs)
        : null;
      return closed.finally(() => {
        if (timer) clearTimeout(timer);
      });
    },
  };
}
