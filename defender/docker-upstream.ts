/**
 * The connection to dockerd: a pool of raw keep-alive connections for ordinary requests (upstream-exchange.ts) and
 * fresh sockets for hijacked ones. `unix:///path` (the usual) or `tcp://host:port` (a daemon listening on loopback
 * without TLS).
 */
import { request, type ClientRequest, type OutgoingHttpHeaders } from 'node:http';
import { connect, type OnReadOpts, type Socket } from 'node:net';
import { upstreamPool, type RequestBody, type UpstreamExchange, type UpstreamHandlers } from './upstream-exchange.js';

export type { RequestBody, UpstreamExchange, UpstreamHandlers } from './upstream-exchange.js';

export interface DockerUpstream {
  readonly url: string;
  /** An ordinary request over the keep-alive pool; throws (before sending anything) on an unsafe head. */
  exchange(method: string, path: string, rawHeaders: readonly string[], body: RequestBody, handlers: UpstreamHandlers): UpstreamExchange;
  /** A request on a fresh connection that is never pooled (for hijacks). */
  requestDedicated(method: string, path: string, headers: OutgoingHttpHeaders | readonly string[]): ClientRequest;
  /** Closes pooled idle connections. */
  close(): void;
}

export function dockerUpstream(url: string): DockerUpstream {
  const target: { socketPath: string } | { host: string; port: number } = url.startsWith('unix://')
    ? { socketPath: url.slice('unix://'.length) }
    : (() => {
        const u = new URL(url.replace(/^tcp:/, 'http:'));
        return { host: u.hostname, port: Number(u.port) };
      })();
  // `onread`: the pool's reused read buffers (read-buffers.ts); hijacks read the usual way.
  const connectRaw = (onread?: OnReadOpts): Socket =>
    'socketPath' in target ? connect({ path: target.socketPath, onread }) : connect({ port: target.port, host: target.host, onread }).setNoDelay(true);
  const pool = upstreamPool(connectRaw);
  return {
    url,
    exchange: (method, path, rawHeaders, body, handlers) => pool.exchange(method, path, rawHeaders, body, handlers),
    requestDedicated: (method, path, headers) =>
      request({ ...target, agent: false, createConnection: () => connectRaw(), method, path, headers: headers as OutgoingHttpHeaders, setHost: false }),
    close: () => pool.close(),
  };
}
