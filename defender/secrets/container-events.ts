/**
 * dockerd's event stream, for the containers that carry secret directories: `die`, `stop` and `destroy` only (filtered by
 * dockerd), over the Defender's own upstream connection.
 *
 * - Reconnects for as long as the Defender runs (backoff 0.5 s → 30 s); each (re)connection calls `onConnected`
 *   once the stream is open, so events missed in between are made up by a sweep.
 * - An event carries the container's labels (Actor.Attributes), so no lookup is needed to find its directory.
 */
import type { IncomingMessage } from 'node:http';
import { SECRET_LABELS } from '../../shared/secrets/secret-labels.js';
import { Backoff } from '../backoff.js';
import type { DockerUpstream } from '../docker-upstream.js';
import type { Logger } from '../log.js';
import { NdjsonLines } from '../ndjson-lines.js';

export interface ContainerEvent {
  readonly action: 'die' | 'stop' | 'destroy';
  readonly id: string;
  readonly attributes: Readonly<Record<string, string>>;
}

export interface EventWatch {
  stop(): void;
}

const FILTERS = encodeURIComponent(JSON.stringify({ type: ['container'], event: ['die', 'stop', 'destroy'], label: [SECRET_LABELS.instance] }));

export function watchContainerEvents(upstream: DockerUpstream, log: Logger, handlers: { onConnected(): void; onEvent(event: ContainerEvent): void }): EventWatch {
  const backoff = new Backoff();
  let stopped = false;
  let current: ReturnType<DockerUpstream['requestDedicated']> | null = null;
  let timer: NodeJS.Timeout | null = null;
  let lostLogged = false;

  const retry = (reason: string): void => {
    current = null;
    if (stopped) return;
    if (!lostLogged) log.warn('file secrets: lost the Docker event stream; reconnecting', { error: reason });
    lostLogged = true;
    timer = setTimeout(connect, backoff.next());
  };

  function connect(): void {
    timer = null;
    if (stopped) return;
    const req = upstream.requestDedicated('GET', `/events?filters=${FILTERS}`, ['Host', 'docker']);
    current = req;
    let failed = false;
    const fail = (reason: string): void => {
      if (failed) return;
      failed = true;
      req.destroy();
      retry(reason);
    };
    req.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? err.message));
    req.on('response', (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        res.resume();
        fail(`dockerd answered ${res.statusCode}`);
        return;
      }
      backoff.reset();
      if (lostLogged) log.info('file secrets: Docker event stream back');
      lostLogged = false;
      handlers.onConnected();
      const lines = new NdjsonLines(1024 * 1024);
      res.on('data', (chunk: Buffer) => {
        let texts: string[];
        try {
          texts = lines.push(chunk);
        } catch (e) {
          fail((e as Error).message);
          return;
        }
        for (const text of texts) {
          try {
            const e = JSON.parse(text) as { Action?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } };
            if ((e.Action === 'die' || e.Action === 'stop' || e.Action === 'destroy') && e.Actor?.ID) handlers.onEvent({ action: e.Action, id: e.Actor.ID, attributes: e.Actor.Attributes ?? {} });
          } catch {
            /* not an event we know */
          }
        }
      });
      res.on('end', () => fail('the stream ended'));
      res.on('error', (err) => fail(err.message));
    });
    req.end();
  }

  connect();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      current?.destroy();
    },
  };
}
