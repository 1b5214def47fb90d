/**
 * The Defender's listener: mTLS in front of dockerd.
 *
 * - TLS 1.2+ with a client certificate that chains to the configured CA, is within its validity period and is
 *   not revoked; anything else fails the handshake, before any HTTP is read.
 * - Every request on a keep-alive connection goes through `forwardRequest` on its own; upgrades through
 *   `forwardHijack`. A request Node's parser refuses gets Docker's JSON 400 and is audited (client-error.ts).
 * - `close()` stops accepting, closes idle keep-alive connections, lets running requests and streams finish for
 *   the grace period, then cuts what is left.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { rememberIdentity, type DefenderContext } from './authorize-request.js';
import { answerClientError, trackRequest } from './client-error.js';
import type { DockerUpstream } from './docker-upstream.js';
import { forwardHijack } from './forward-hijack.js';
import { forwardRequest } from './forward-request.js';

export interface TlsMaterial {
  readonly ca: string | Buffer;
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
}

export interface DefenderServer {
  readonly server: Server;
  listen(port: number, host?: string): Promise<AddressInfo>;
  close(graceMs: number): Promise<void>;
}

export function buildDefender(ctx: DefenderContext, upstream: DockerUpstream, tls: TlsMaterial): DefenderServer {
  const server = createServer(
    {
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      allowHalfOpen: true,
      maxHeaderSize: 64 * 1024,
      keepAliveTimeout: 65_000,
      headersTimeout: 60_000,
      requestTimeout: 0, // long uploads (docker load, build contexts) must not be cut
    } as Parameters<typeof createServer>[0],
  );
  const sockets = new Set<Socket>();
  let closing = false;
  server.on('secureConnection', (socket: TLSSocket) => {
    rememberIdentity(socket);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('request', (req, res) => {
    trackRequest(req, res);
    if (closing) res.shouldKeepAlive = false;
    forwardRequest(ctx, upstream, req, res).catch((err: Error) => {
      ctx.log.error('request failed', { error: err.message });
      res.destroy();
    });
  });
  server.on('upgrade', (req, socket, head) => {
    forwardHijack(ctx, upstream, req, socket, head).catch((err: Error) => {
      ctx.log.error('upgrade failed', { error: err.message });
      socket.destroy();
    });
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => answerClientError(ctx, err, socket));
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket) => {
    // A client certificate that fails verification (expired, unknown CA…) is not reported as `err`: Node destroys
    // the socket and `err` is a generic ECONNRESET "socket hang up"; the real reason is the verify error code
    // (a string such as CERT_HAS_EXPIRED at runtime, despite the `Error` type) left on the socket.
    const verifyError = (socket as TLSSocket).authorizationError as unknown;
    const reason = typeof verifyError === 'string' ? verifyError : verifyError instanceof Error ? ((verifyError as NodeJS.ErrnoException).code ?? verifyError.message) : (err.code ?? err.message);
    ctx.log.info('TLS handshake refused', { client: socket.remoteAddress, error: reason });
  });

  return {
    server,
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    async close(graceMs) {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => {
        for (const s of sockets) s.destroy();
      }, graceMs);
      await closed;
      clearTimeout(timer);
      upstream.close();
    },
  };
}
