/**
 * What the Defender does about secrets to a request the access rules allowed, before it goes to dockerd:
 *
 * - container_create: Drawbridge's marker labels in the request → 400; a container shared with (`--volumes-from`,
 *   `--pid container:`) that carries secrets → 403 unless its rules allow 'copy'; matching secret rules → the body
 *   is rewritten with the secrets (inject-secrets.ts) and, for file secrets, the container's directory is written
 *   first. A value or an in-memory directory that is missing → 503: no container without its secrets.
 * - container_start / container_restart of a marked container with file secrets: its files are written again
 *   with the values in force (they were removed when it stopped).
 * - container_inspect: the answer is redacted (inspect-response.ts).
 * - container_commit / export / archive GET, HEAD / copy: the container's labels are looked up in dockerd first,
 *   then decided (leak-paths.ts). A lookup that fails → 503 (fail closed); a container dockerd does not know is
 *   left to dockerd (it answers 404).
 * - Audit lines of requests that injected or were decided here carry the secret rule and secret names, never a
 *   value. Exec is not touched: access rules govern it (`docker exec … printenv` shows env secrets).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Classification } from '../../shared/docker/classify-request.js';
import { DrawbridgeError } from '../../shared/errors/drawbridge-error.js';
import { createTarget, injectSecrets } from '../../shared/secrets/inject-secrets.js';
import { decideLeak, decideSharing, leakPathOf, sharedContainers } from '../../shared/secrets/leak-paths.js';
import { readMarkers } from '../../shared/secrets/secret-labels.js';
import { matchSecretRules } from '../../shared/secrets/secret-rules.js';
import { secretErrors } from '../../shared/secrets/secret-errors.js';
import type { AuditEventWire } from '../../shared/wire/defender-console.js';
import type { DockerUpstream } from '../docker-upstream.js';
import type { Logger } from '../log.js';
import type { ContainerSecretDirs } from './container-secret-dirs.js';
import { lookupContainer, type ContainerFacts } from './docker-lookup.js';
import { respondRedacted } from './inspect-response.js';
import type { SecretsInForce } from './secrets-in-force.js';

export type AuditSecrets = NonNullable<AuditEventWire['secrets']>;

/** What the guard changes about one request. */
export interface SecretsStep {
  /** The body to forward instead of the one received. */
  readonly body?: Buffer;
  readonly audit?: AuditSecrets;
  /** Takes over dockerd's answer (true) or leaves it to be streamed (false). */
  readonly respond?: (upRes: IncomingMessage, res: ServerResponse, headers: readonly string[]) => boolean;
  /** dockerd answered with `status` (null: no answer). Called once. */
  readonly settled?: (status: number | null) => void;
}

export interface SecretsGuard {
  /** Throws a DrawbridgeError to refuse the request. */
  prepare(classification: Classification, url: string, body: Buffer | null): Promise<SecretsStep | null>;
}

export interface SecretsGuardOptions {
  readonly hostName: string;
  readonly upstream: DockerUpstream;
  readonly secrets: SecretsInForce;
  readonly dirs: ContainerSecretDirs;
  readonly log: Logger;
}

function queryParam(url: string, name: string): string {
  const q = url.indexOf('?');
  return q < 0 ? '' : (new URLSearchParams(url.slice(q + 1)).get(name) ?? '');
}

export function secretsGuard(opts: SecretsGuardOptions): SecretsGuard {
  const { upstream, secrets, log } = opts;

  const lookup = async (ref: string): Promise<ContainerFacts | null> => {
    try {
      return await lookupContainer(upstream, ref);
    } catch (e) {
      log.error('cannot look up a container for the secret checks', { error: (e as NodeJS.ErrnoException).code ?? (e as Error).message });
      throw secretErrors.secret_unavailable('[Drawbridge] cannot check this container for secrets (dockerd did not answer the lookup); try again');
    }
  };

  async function create(url: string, body: Buffer | null): Promise<SecretsStep | null> {
    if (body === null || body.length === 0) return null;
    const json: unknown = JSON.parse(body.toString('utf8')); // checkJsonBody ran
    const target = createTarget(json, { name: queryParam(url, 'name'), host: opts.hostName });
    for (const ref of sharedContainers(json)) {
      const shared = await lookup(ref);
      const d = decideSharing(ref, shared?.labels);
      if (!d.allowed) throw secretErrors.leak_denied(d.message);
    }
    const rules = matchSecretRules(secrets.compiled, target);
    if (rules.length === 0) return null;
    const id = randomBytes(16).toString('hex');
    const injection = injectSecrets(json, target, rules, secrets.values, { id, hostDir: opts.dirs.files.hostDir(id) });
    const { plan } = injection;
    const audit: AuditSecrets = { rules: [...plan.rules], names: [...plan.env, ...plan.files] };
    if (injection.files.length === 0) return { body: Buffer.from(injection.body, 'utf8'), audit };
    const dirs = opts.dirs;
    const release = dirs.hold(id);
    try {
      dirs.provideNew(plan, injection.files);
    } catch (e) {
      release();
      dirs.remove(id, 'create refused');
      log.error('cannot write secret files', { instance: id, error: (e as NodeJS.ErrnoException).code ?? (e as Error).message });
      throw secretErrors.secret_unavailable('[Drawbridge] cannot write the secret files for this container (see the Defender log); the container was not created');
    }
    return {
      body: Buffer.from(injection.body, 'utf8'),
      audit,
      settled: (status) => {
        release();
        if (status !== 201) dirs.remove(id, 'create failed');
      },
    };
  }

  async function start(ref: string): Promise<SecretsStep | null> {
    const container = await lookup(ref);
    const markers = readMarkers(container?.labels);
    if (!markers) return null;
    const audit: AuditSecrets = { rules: [...markers.rules], names: [...markers.env, ...markers.files] };
    if (!markers.files.length || !markers.instance) return { audit };
    const release = opts.dirs.hold(markers.instance);
    try {
      opts.dirs.provide(markers);
    } catch (e) {
      release();
      throw e;
    }
    return { audit, settled: release };
  }

  async function leak(action: string, ref: string): Promise<SecretsStep | null> {
    if (ref === '') return null; // dockerd refuses it
    const container = await lookup(ref);
    const d = decideLeak(action, container?.labels);
    if (!d.allowed) throw secretErrors.leak_denied(d.message);
    if (d.rules.length) log.info('a leak path was allowed by the secret rules', { action, rules: d.rules.join(',') });
    return d.rules.length ? { audit: { rules: [...d.rules], names: [] } } : null;
  }

  async function prepare(c: Classification, url: string, body: Buffer | null): Promise<SecretsStep | null> {
    switch (c.action) {
      case 'container_create':
        return create(url, body);
      case 'container_start':
      case 'container_restart':
        return start(c.params.name ?? '');
      case 'container_inspect':
        return { respond: respondRedacted };
      default:
        if (leakPathOf(c.action) === null) return null;
        return leak(c.action, c.action === 'container_commit' ? queryParam(url, 'container') : (c.params.name ?? ''));
    }
  }

  return {
    async prepare(c, url, body) {
      let step: SecretsStep | null;
      try {
        step = await prepare(c, url, body);
      } catch (e) {
        if (e instanceof DrawbridgeError) throw e;
        log.error('secret handling failed', { action: c.action, error: (e as NodeJS.ErrnoException).code ?? (e as Error).message });
        throw secretErrors.secret_unavailable('[Drawbridge] the secrets of this request could not be handled (see the Defender log); nothing was sent to dockerd');
      }
      const settled = step?.settled;
      if (!step || !settled) return step;
      let once = false;
      return {
        ...step,
        settled: (status) => {
          if (once) return;
          once = true;
          settled(status);
        },
      };
    },
  };
}
