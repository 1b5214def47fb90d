/**
 * The connection to dockerd: a keep-alive agent for ordinary requests and raw sockets for hijacked ones.
 * `unix:///path` (the usual) or `tcp://host:port` (a daemon listening on loopback without TLS).
 */
import { Agent, request, type ClientRequest, type OutgoingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';

export interface DockerUpstream {
  readonly url: string;
  /** An ordinary request over the keep-alive pool. */
  request(method: string, path: string, headers: OutgoingHttpHeaders | readonly string[]): ClientRequest;
  /** A request on a fresh connection that is never pooled (for hijacks). */
  requestDedicated(method: string, path: string, headers: OutgoingHttpHeaders | readonly string[]): ClientRequest;
  /** Closes pooled idle sockets. */
  close(): void;
}

export function dockerUpstream(url: string): DockerUpstream {
  const target: { socketPath: string } | { host: string; port: number } = url.startsWith('unix://')
    ? { socketPath: url.slice('unix://'.length) }
    : (() => {
        const u = new URL(url.replace(/^tcp:/, 'http:'));
        return { host: u.hostname, port: Number(u.port) };
      })();
  const agent = new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 64, scheduling: 'lifo' });
  const connectRaw = (): Socket => ('socketPath' in target ? connect(target.socketPath) : connect(target.port, target.host));
  return {
    url,
    request: (method, path, headers) => request({ ...target, agent, method, path, headers: headers as OutgoingHttpHeaders, setHost: false }),
    requestDedicated: (method, path, headers) =>
      request({ ...target, agent: false, createConnection: connectRaw, method, path, headers: headers as OutgoingHttpHeaders, setHost: false }),
    close: () => agent.destroy(),
  };
}
