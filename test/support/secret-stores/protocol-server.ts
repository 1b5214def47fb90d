/**
 * What the secret store protocol fakes share: an HTTP or HTTPS listener around a request handler, a switch to
 * take the store "down" (listener closed, open connections destroyed: clients see ECONNREFUSED) and back up on
 * the same port, a count of requests per route, and the JSON/body helpers.
 *
 * The fakes exist because no real Vault, AWS, Azure, GCP or CyberArk server can run here; each one's file header
 * says which wire protocol it follows.
 */
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

export type Handler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => void | Promise<void>;

export interface ListenOptions {
  /** Serve HTTPS with this certificate (PEM). */
  tls?: { cert: string; key: string; ca?: string; requestCert?: boolean };
}

export class ProtocolServer {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #port = 0;
  #down = false;
  /** Requests seen per route label (what the store's handler calls it, e.g. `GetSecretValue`). */
  readonly counts = new Map<string, number>();
  /** Paths no route answered: a client calling something the fake does not know shows up here. */
  readonly unknown: string[] = [];

  constructor(handler: Handler, private readonly options: ListenOptions = {}) {
    const listener = (req: IncomingMessage, res: ServerResponse): void => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        Promise.resolve(handler(req, Buffer.concat(chunks), res)).catch((error: unknown) => {
          if (!res.headersSent) sendJson(res, 500, { error: String(error) });
          else res.destroy();
        });
      });
    };
    this.#server = options.tls
      ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key, ...(options.tls.ca ? { ca: options.tls.ca } : {}), requestCert: options.tls.requestCert ?? false, rejectUnauthorized: false }, listener)
      : createHttpServer(listener);
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    this.#server.on('secureConnection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  count(route: string): void {
    this.counts.set(route, (this.counts.get(route) ?? 0) + 1);
  }

  /** Requests counted for `route` so far. */
  seen(route: string): number {
    return this.counts.get(route) ?? 0;
  }

  resetCounts(): void {
    this.counts.clear();
    this.unknown.length = 0;
  }

  async listen(port = 0): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, '127.0.0.1', () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    this.#port = (this.#server.address() as AddressInfo).port;
    return this;
  }

  get port(): number {
    return this.#port;
  }

  /** `http(s)://127.0.0.1:<port>` */
  get url(): string {
    return `${this.options.tls ? 'https' : 'http'}://127.0.0.1:${this.#port}`;
  }

  /** Down: stop listening and cut every connection. Up: listen again on the same port. */
  async setDown(down: boolean): Promise<void> {
    if (down === this.#down) return;
    this.#down = down;
    if (down) await this.#stop();
    else await this.listen(this.#port);
  }

  async close(): Promise<void> {
    if (!this.#down) await this.#stop();
    this.#down = true;
  }

  async #stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}, contentType = 'application/json; charset=utf-8'): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** The bearer token of the request, or undefined. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const match = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? '');
  return match?.[1];
}

/** Random opaque token text. */
export function opaqueToken(prefix: string): string {
  return `${prefix}${randomBytes(18).toString('base64url')}`;
}
