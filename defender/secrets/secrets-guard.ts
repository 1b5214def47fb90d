/**
 * What the Defender does about secrets to a request the access rules allowed, before it goes to dockerd:
 *
 * - container_create: Drawbridge's marker labels in the request → 400; a container shared with (`--volumes-from`,
 *   `--pid`/`--ipc`/`--network container:`, `--link`) that carries secrets → 403 unless its rules allow 'copy';
 *   matching secret rules → the body is rewritten with the secrets (inject-secrets.ts) and, for file secrets, the
 *   container's directory is written first. A value or an in-memory directory that is missing → 503: no container without its secrets.
 * - container_start / container_restart of a marked container with file secrets: its files are written again
 *   with the values in force (they were removed when it stopped).
 * - container_inspect: the answer is redacted (inspect-response.ts).
 * - container_commit / export / archive GET, HEAD, PUT / copy: the container's labels are looked up in dockerd first,
 *   then decided (leak-paths.ts). A lookup that fails → 503 (fail closed); a container dockerd does not know →
 *   404 here (forwarding the name would let one created or renamed in the meantime through).
 * - Every request decided from a container lookup (leak paths, start, restart, the containers a create shares)
 *   is forwarded with the reference pinned to the full id that was checked (pin-container.ts): a rename or a
 *   replace between the check and dockerd cannot swap the container.
 * - container_create and volume_create: a key given twice in one object → 400 (Go merges repeated objects;
 *   go-json-fields.ts); `--pid host` → 403. container_top with ps options that print the environment, on a
 *   container carrying env secrets → 403 (leak-paths.ts).
 * - While the secrets base is under /dev/shm: a create with `--ipc host`, or `--ipc container:X` where X has the
 *   host's IPC namespace (X is a shared container: looked up, decided and pinned like the others) → 403: its
 *   /dev/shm would be the host's.
 * - container_start / container_restart of any container: what dockerd stored is checked again (checkStored): the
 *   host's PID or IPC namespace, or a mount of the secrets base or /proc other than its own secret directory or a
 *   shared one whose rules allow 'copy' → 403. It catches a container made past the Defender (or by a dockerd
 *   with `default-ipc-mode: host`), and any create body dockerd read otherwise than the checks did.
 * - container_create, volume_create, service_create and service_update: a host path that is the secrets base,
 *   inside it or above it, or /proc → 403 (host-mounts.ts), compared as written and with symlinks resolved here.
 * - image_build with `networkmode=container:X` (the classic builder's RUN containers join X's network namespace): X is
 *   decided and pinned like a create's shared container.
 * - service_create and service_update: Drawbridge's marker labels in `TaskTemplate.ContainerSpec.Labels` → 400, as
 *   at container_create (swarmkit puts them on every task container).
 * - Audit lines of requests that injected or were decided here carry the secret rule and secret names, never a
 *   value. Exec is not touched: access rules govern it (`docker exec … printenv` shows env secrets).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import { basename } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Classification } from '../../shared/docker/classify-request.js';
import { DrawbridgeError } from '../../shared/errors/drawbridge-error.js';
import { createTarget, injectSecrets } from '../../shared/secrets/inject-secrets.js';
import { refuseDuplicateKeys, type JsonObject } from '../../shared/secrets/go-json-fields.js';
import { hostMountSources, refuseSecretsBaseMounts, secretsPathReached, serviceMountSources, volumeHostPaths } from '../../shared/secrets/host-mounts.js';
import { baseInHostShm, decideLeak, decideSharing, decideTop, hostIpcDenial, hostPidDenial, ipcModeOf, leakPathOf, pidModeOf, pinSharedContainers, sharedContainers } from '../../shared/secrets/leak-paths.js';
import { pinContainerTarget } from '../../shared/secrets/pin-container.js';
import { INSTANCE_ID, readMarkers, refuseForgedServiceLabels, SECRET_LABELS } from '../../shared/secrets/secret-labels.js';
import { matchSecretRules } from '../../shared/secrets/secret-rules.js';
import { secretErrors } from '../../shared/secrets/secret-errors.js';
import type { AuditEventWire } from '../../shared/wire/defender-console.js';
import type { DockerUpstream } from '../docker-upstream.js';
import type { Logger } from '../log.js';
import type { ContainerSecretDirs } from './container-secret-dirs.js';
import { listMarkedContainers, lookupContainer, type ContainerFacts } from './docker-lookup.js';
import { redactedInspectAnswer } from './inspect-response.js';
import type { SecretsInForce } from './secrets-in-force.js';

export type AuditSecrets = NonNullable<AuditEventWire['secrets']>;

/** What the guard changes about one request. */
export interface SecretsStep {
  /** The body to forward instead of the one received. */
  readonly body?: Buffer;
  /** The request target to forward instead of the one received (a container reference pinned to its id). */
  readonly url?: string;
  readonly audit?: AuditSecrets;
  /** dockerd's answer, checked and rewritten before the client sees it (a container inspect to redact). */
  readonly answer?: AnswerTransform;
  /** dockerd answered with `status` (null: no answer). Called once. */
  readonly settled?: (status: number | null) => void;
}

/**
 * An answer that must be checked before it is passed on: held whole (up to `maxBytes`, else `refusal`), then
 * `finish` gives what to send, or the error to send instead (fail closed: an answer that cannot be checked is not
 * passed on).
 */
export interface AnswerTransform {
  readonly maxBytes: number;
  /** At the answer's head: whether this answer is held (false: it streams through as dockerd sends it). */
  takes(status: number, headers: readonly string[]): boolean;
  finish(body: Buffer, headers: readonly string[]): { readonly headers: string[]; readonly body: Buffer } | { readonly error: DrawbridgeError };
  refusal(why: string): DrawbridgeError;
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

  /** What dockerd says for a decision; fail closed: a question it does not answer → 503. */
  const askDockerd = async <T>(question: () => Promise<T>): Promise<T> => {
    try {
      return await question();
    } catch (e) {
      log.error('cannot ask dockerd about a container for the secret checks', { error: (e as NodeJS.ErrnoException).code ?? (e as Error).message });
      throw secretErrors.secret_unavailable('[Drawbridge] cannot check this container for secrets (dockerd did not answer the lookup); try again');
    }
  };
  const lookup = (ref: string): Promise<ContainerFacts | null> => askDockerd(() => lookupContainer(upstream, ref));
  /** The containers whose secret directory is `instance`. */
  const listMarked = (instance: string): Promise<ContainerFacts[]> => askDockerd(() => listMarkedContainers(upstream, instance));

  /** 403 when a container with IPC mode `mode` would see the host's /dev/shm while the base is there (`via`: the container whose IPC it shares). */
  const refuseHostIpc = (mode: string, via?: string): void => {
    const denial = hostIpcDenial(mode, mode === 'host' ? baseInHostShm(secretsBases()) : null, via);
    if (denial !== null) throw secretErrors.leak_denied(denial);
  };

  /** 403 for a container in the host's PID namespace, or in its IPC namespace while the base is under /dev/shm. */
  const refuseHostNamespaces = (pidMode: string, ipcMode: string): void => {
    const hostPid = hostPidDenial(pidMode);
    if (hostPid !== null) throw secretErrors.leak_denied(hostPid);
    refuseHostIpc(ipcMode);
  };

  /**
   * Decides sharing container `ref` (see sharedContainers; `other` is what dockerd says of it) for a container whose
   * IPC mode is `ipcMode`: 403 unless `ref`'s secret rules allow it, or when `ref` has the host's IPC namespace and
   * is shared with `--ipc container:`.
   */
  const checkShared = (ref: string, other: ContainerFacts, ipcMode: string): void => {
    const d = decideSharing(ref, other.labels);
    if (!d.allowed) throw secretErrors.leak_denied(d.message);
    if (ipcMode === `container:${ref}`) refuseHostIpc(other.ipcMode, ref);
  };

  /** A container that must exist for the decision; dockerd's own 404 text when it does not. */
  const lookupExisting = async (ref: string): Promise<ContainerFacts> => {
    const found = await lookup(ref);
    if (found === null) throw secretErrors.no_such_container(`No such container: ${ref}`);
    return found;
  };

  /** The secrets base as configured and, when it exists, with symlinks resolved. */
  const secretsBases = (): string[] => {
    const base = opts.dirs.files.base;
    return existsSync(base) ? [base, realpathSync(base)] : [base];
  };

  /** Refuses host paths that reach the secrets base, as written and with symlinks resolved here. */
  const refuseBaseMounts = (paths: readonly string[]): void => {
    if (paths.length === 0) return;
    const bases = secretsBases();
    refuseSecretsBaseMounts(paths, bases);
    const resolved: string[] = [];
    for (const p of paths) {
      try {
        resolved.push(realpathSync(p));
      } catch {
        /* not on this host (yet): dockerd refuses a bind of a missing path, or creates it as a plain directory */
      }
    }
    refuseSecretsBaseMounts(resolved, bases);
  };

  async function create(url: string, body: Buffer | null): Promise<SecretsStep | null> {
    if (body === null || body.length === 0) return null;
    const text = body.toString('utf8');
    refuseDuplicateKeys(text);
    let json: unknown = JSON.parse(text); // checkJsonBody ran
    const target = createTarget(json, { name: queryParam(url, 'name'), host: opts.hostName });
    refuseBaseMounts(hostMountSources(json));
    // The host's /dev/shm, from --ipc host or from the container shared with --ipc container:X (X's own mode).
    const ipc = ipcModeOf(json);
    refuseHostNamespaces(pidModeOf(json), ipc);
    const shared = sharedContainers(json);
    if (shared.length) {
      const ids = new Map<string, string>();
      for (const ref of shared) {
        const container = await lookupExisting(ref);
        checkShared(ref, container, ipc);
        ids.set(ref, container.id);
      }
      json = pinSharedContainers(json as JsonObject, ids);
    }
    const rules = matchSecretRules(secrets.compiled, target);
    if (rules.length === 0) return shared.length ? { body: Buffer.from(JSON.stringify(json), 'utf8') } : null;
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

  /**
   * At start, a second line behind the create checks: what dockerd stored for the container (it may have been made
   * past the Defender, or from a body dockerd read otherwise than the checks did). The host's PID or IPC namespace
   * (see create) → 403; so is sharing a secret-carrying container (`--pid/--ipc/--network container:`, links,
   * volumes-from) whose rules do not allow 'copy', and a mount of the secrets base or /proc, save the container's own
   * secret directory (`own`) and that of a container it shares with `--volumes-from` whose rules allow 'copy'.
   */
  async function checkStored(container: ContainerFacts, own: string | null): Promise<void> {
    refuseHostNamespaces(container.pidMode, container.ipcMode);
    for (const ref of container.sharedRefs) {
      const other = await lookup(ref);
      if (other !== null) checkShared(ref, other, container.ipcMode); // one gone has nothing left to share
    }
    const bases = secretsBases();
    for (const source of container.mountSources) {
      const reached = secretsPathReached(source, bases);
      if (reached === null) continue;
      const instance = basename(source);
      if (INSTANCE_ID.test(instance) && source === opts.dirs.files.hostDir(instance)) {
        if (instance === own) continue;
        const owners = await listMarked(instance);
        if (owners.length > 0 && owners.every((o) => decideSharing(o.id, o.labels).allowed)) continue;
      }
      throw secretErrors.leak_denied(`[Drawbridge] this container mounts the host path ${source}, which holds or contains the containers' secrets (${reached}); it cannot be started through the Defender: re-create it without that mount`);
    }
  }

  async function start(c: Classification, url: string): Promise<SecretsStep | null> {
    const container = await lookupExisting(c.params.name ?? '');
    const pinned = pinContainerTarget(c, url, container.id);
    const markers = readMarkers(container.labels);
    await checkStored(container, markers?.instance || null);
    if (!markers) return { url: pinned };
    const audit: AuditSecrets = { rules: [...markers.rules], names: [...markers.env, ...markers.files] };
    if (!markers.files.length || !markers.instance) return { url: pinned, audit };
    if (!container.mountSources.includes(opts.dirs.files.hostDir(markers.instance))) {
      // Markers the Defender did not put there (an image's labels): writing files for them would overwrite
      // another container's secret directory.
      throw secretErrors.forged_marker(`[Drawbridge] this container carries Drawbridge's secret labels but was not given secrets by the Defender (its image has '${SECRET_LABELS.instance}'?); re-create it from an image without io.drawbridge.* labels`);
    }
    const release = opts.dirs.hold(markers.instance);
    try {
      opts.dirs.provide(markers);
    } catch (e) {
      release();
      throw e;
    }
    return { url: pinned, audit, settled: release };
  }

  async function leak(c: Classification, url: string): Promise<SecretsStep | null> {
    const ref = c.action === 'container_commit' ? queryParam(url, 'container') : (c.params.name ?? '');
    if (ref === '') return null; // dockerd refuses it
    const container = await lookupExisting(ref);
    const d = decideLeak(c.action, container.labels);
    if (!d.allowed) throw secretErrors.leak_denied(d.message);
    if (d.rules.length) log.info('a leak path was allowed by the secret rules', { action: c.action, rules: d.rules.join(',') });
    const pinned = pinContainerTarget(c, url, container.id);
    return d.rules.length ? { url: pinned, audit: { rules: [...d.rules], names: [] } } : { url: pinned };
  }

  async function top(c: Classification, url: string): Promise<SecretsStep | null> {
    const container = await lookupExisting(c.params.name ?? '');
    const d = decideTop(queryParam(url, 'ps_args'), container.labels);
    if (!d.allowed) throw secretErrors.leak_denied(d.message);
    return { url: pinContainerTarget(c, url, container.id), ...(d.rules.length ? { audit: { rules: [...d.rules], names: [] } } : {}) };
  }

  /**
   * The classic builder runs each RUN step in a container dockerd creates by itself, with the build's `networkmode`
   * as its NetworkMode: `docker build --network container:X` shares X's network namespace as `docker run --network
   * container:X` does, so X is decided like a create's shared container and the query pinned to its id. (BuildKit
   * refuses every mode but host, none and default.)
   */
  async function build(c: Classification, url: string): Promise<SecretsStep | null> {
    const mode = queryParam(url, 'networkmode'); // the first, as Go's r.FormValue
    if (!mode.startsWith('container:') || mode === 'container:') return null;
    const ref = mode.slice('container:'.length);
    const container = await lookupExisting(ref);
    checkShared(ref, container, '');
    return { url: pinContainerTarget(c, url, container.id) };
  }

  function serviceSpec(body: Buffer | null): null {
    if (body === null || body.length === 0) return null;
    const text = body.toString('utf8');
    refuseDuplicateKeys(text);
    const spec: unknown = JSON.parse(text);
    refuseForgedServiceLabels(spec); // swarmkit puts them on the task containers, which it creates past the Defender
    refuseBaseMounts(serviceMountSources(spec));
    return null;
  }

  function volumeCreate(body: Buffer | null): null {
    if (body === null || body.length === 0) return null;
    const text = body.toString('utf8');
    refuseDuplicateKeys(text);
    refuseBaseMounts(volumeHostPaths(JSON.parse(text)));
    return null;
  }

  async function prepare(c: Classification, url: string, body: Buffer | null): Promise<SecretsStep | null> {
    switch (c.action) {
      case 'container_create':
        return create(url, body);
      case 'container_start':
      case 'container_restart':
        return start(c, url);
      case 'container_inspect':
        return { answer: redactedInspectAnswer };
      case 'volume_create':
        return volumeCreate(body);
      case 'container_top':
        return top(c, url);
      case 'image_build':
        return build(c, url);
      case 'service_create':
      case 'service_update':
        return serviceSpec(body);
      default:
        if (leakPathOf(c.action) === null) return null;
        return leak(c, url);
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
