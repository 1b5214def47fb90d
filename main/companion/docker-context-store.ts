/**
 * Docker contexts for Drawbridge hosts, in exactly the docker CLI's context store format (docker/cli v28.2
 * `cli/context/store`; checked against the real CLI 28.2).
 *
 * - `contexts/meta/<sha256hex(name)>/meta.json`: `{"Name","Metadata":{"Description",…},"Endpoints":{"docker":
 *   {"Host","SkipTLSVerify"}}}`; `contexts/tls/<sha256hex(name)>/docker/{ca,cert,key}.pem`, dirs 0700, files 0600.
 * - Names follow the CLI's rule (`^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$`, not "default").
 * - Ours are marked by a `Drawbridge` key in Metadata: the CLI keeps unknown Metadata keys through
 *   `context update`, `inspect` and `export` (its DockerContext.AdditionalFields).
 * - Contexts we did not create are never written or removed: a name clash is an error.
 * - The current context changes only in `use()`, or when removing the current context (as `docker context rm -f`
 *   does: currentContext is cleared, else every docker command would fail on a missing context).
 * - Private keys must be unencrypted: the CLI refuses encrypted ones.
 * - Each file is replaced atomically; a TLS update writes ca, then cert, then key. Removal prunes store dirs it
 *   leaves empty (`contexts/tls`, `contexts/meta`, `contexts`; the CLI recreates them when it needs them).
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureDir, fsyncDir, writeFileAtomic } from './atomic-file.js';
import { DEFAULT_CONTEXT_NAME, getCurrentContext, readDockerConfig, setCurrentContext } from './docker-config.js';

export const DOCKER_ENDPOINT = 'docker';
export const DRAWBRIDGE_METADATA_KEY = 'Drawbridge';
export const TLS_FILE_NAMES = ['ca.pem', 'cert.pem', 'key.pem'] as const;
const CONTEXT_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$/;

/** What marks a context as ours, stored as Metadata.Drawbridge. */
export interface DrawbridgeMarker {
  /** The Console the certificate came from. */
  readonly console: string;
  /** The Defender host name (as the Console knows it). */
  readonly host: string;
}

export interface TlsMaterial {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

export interface ContextSpec {
  readonly name: string;
  /** `tcp://host:port`. */
  readonly dockerHost: string;
  readonly description?: string;
  readonly tls: TlsMaterial;
  readonly drawbridge: DrawbridgeMarker;
}

export interface StoredContext {
  readonly name: string;
  readonly description: string;
  readonly dockerHost: string | undefined;
  readonly skipTlsVerify: boolean;
  /** Undefined for a context Drawbridge did not create. */
  readonly drawbridge: DrawbridgeMarker | undefined;
  /** `contexts/meta/<id>` and `contexts/tls/<id>` (what `docker context inspect` calls Storage). */
  readonly metadataPath: string;
  readonly tlsPath: string;
  /** `contexts/tls/<id>/docker`: holds ca.pem, cert.pem, key.pem (usable as DOCKER_CERT_PATH). */
  readonly tlsEndpointPath: string;
}

export interface ContextOverride {
  readonly variable: 'DOCKER_HOST' | 'DOCKER_CONTEXT';
  readonly value: string;
  /** The shell command that removes the override. */
  readonly fix: string;
  readonly message: string;
}

export interface UseResult {
  readonly previous: string;
  /** The context plain `docker` commands will really use in this environment. */
  readonly effective: string;
  readonly warnings: readonly ContextOverride[];
}

export class ContextStoreError extends Error {
  override name = 'ContextStoreError';
  constructor(
    readonly code: 'CONTEXT_NAME_INVALID' | 'CONTEXT_NOT_OURS' | 'CONTEXT_NOT_FOUND' | 'TLS_KEY_ENCRYPTED',
    message: string,
  ) {
    super(message);
  }
}

/** The store's directory name for a context: the hex SHA-256 of its name (go-digest `FromString().Encoded()`). */
export const contextId = (name: string): string => createHash('sha256').update(name, 'utf8').digest('hex');

/** The context name for a Defender host: `drawbridge-<host>`, with characters the CLI refuses turned into '-'. */
export const contextNameForHost = (host: string): string => `drawbridge-${host.replace(/[^a-zA-Z0-9_.+-]/g, '-')}`;

export function validateContextName(name: string): void {
  if (name === DEFAULT_CONTEXT_NAME) throw new ContextStoreError('CONTEXT_NAME_INVALID', '"default" is a reserved context name');
  if (!CONTEXT_NAME.test(name)) {
    throw new ContextStoreError('CONTEXT_NAME_INVALID', `context name ${JSON.stringify(name)} is invalid, names are validated against regexp "${CONTEXT_NAME.source}"`);
  }
}

/**
 * Which context the docker CLI uses (docker/cli `resolveContextName`): `--context` > `--host`/`DOCKER_HOST`
 * (the "default" context, built from them) > `DOCKER_CONTEXT` > config.json currentContext > "default".
 */
export function resolveDockerContext(opts: { contextFlag?: string; hostFlag?: boolean; env: NodeJS.ProcessEnv; currentContext: string }): string {
  if (opts.contextFlag) return opts.contextFlag;
  if (opts.hostFlag || opts.env.DOCKER_HOST) return DEFAULT_CONTEXT_NAME;
  if (opts.env.DOCKER_CONTEXT) return opts.env.DOCKER_CONTEXT;
  return opts.currentContext || DEFAULT_CONTEXT_NAME;
}

/** What in `env` would keep plain `docker` commands off the context `name`, with the fix for each. */
export function contextOverrides(name: string, env: NodeJS.ProcessEnv): ContextOverride[] {
  const found: ContextOverride[] = [];
  // DOCKER_HOST is what "default" is made of, so it overrides only other contexts.
  if (env.DOCKER_HOST && name !== DEFAULT_CONTEXT_NAME) {
    found.push({
      variable: 'DOCKER_HOST',
      value: env.DOCKER_HOST,
      fix: 'unset DOCKER_HOST',
      message: `DOCKER_HOST=${env.DOCKER_HOST} overrides the current context: docker commands in this shell go there, not to "${name}". Run: unset DOCKER_HOST (or use docker --context ${name} …)`,
    });
  }
  if (env.DOCKER_CONTEXT && env.DOCKER_CONTEXT !== name) {
    found.push({
      variable: 'DOCKER_CONTEXT',
      value: env.DOCKER_CONTEXT,
      fix: 'unset DOCKER_CONTEXT',
      message: `DOCKER_CONTEXT=${env.DOCKER_CONTEXT} overrides the current context: docker commands in this shell use "${env.DOCKER_CONTEXT}", not "${name}". Run: unset DOCKER_CONTEXT`,
    });
  }
  return found;
}

function assertUnencryptedKey(key: string): void {
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/.test(key)) {
    throw new ContextStoreError('TLS_KEY_ENCRYPTED', 'the private key is encrypted; the docker CLI only accepts unencrypted keys');
  }
}

function markerOf(metadata: unknown): DrawbridgeMarker | undefined {
  if (!metadata || typeof metadata !== 'object') return undefined;
  const marker = (metadata as Record<string, unknown>)[DRAWBRIDGE_METADATA_KEY];
  if (!marker || typeof marker !== 'object') return undefined;
  const { console: c, host } = marker as Record<string, unknown>;
  return typeof c === 'string' && typeof host === 'string' ? { console: c, host } : undefined;
}

export class DockerContextStore {
  readonly contextsDir: string;

  constructor(readonly configDir: string) {
    this.contextsDir = join(configDir, 'contexts');
  }

  private paths(name: string): { meta: string; tls: string; endpoint: string } {
    const id = contextId(name);
    const tls = join(this.contextsDir, 'tls', id);
    return { meta: join(this.contextsDir, 'meta', id), tls, endpoint: join(tls, DOCKER_ENDPOINT) };
  }

  /** The context `name` as stored, or undefined when there is none. */
  async read(name: string): Promise<StoredContext | undefined> {
    const p = this.paths(name);
    let raw: string;
    try {
      raw = await readFile(join(p.meta, 'meta.json'), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const meta = JSON.parse(raw) as { Name?: string; Metadata?: Record<string, unknown>; Endpoints?: Record<string, { Host?: string; SkipTLSVerify?: boolean }> };
    const endpoint = meta.Endpoints?.[DOCKER_ENDPOINT];
    return {
      name: meta.Name ?? name,
      description: typeof meta.Metadata?.Description === 'string' ? meta.Metadata.Description : '',
      dockerHost: endpoint?.Host,
      skipTlsVerify: endpoint?.SkipTLSVerify === true,
      drawbridge: markerOf(meta.Metadata),
      metadataPath: p.meta,
      tlsPath: p.tls,
      tlsEndpointPath: p.endpoint,
    };
  }

  /** Creates or updates a Drawbridge context; refuses to touch a context of the same name that is not ours. */
  async write(spec: ContextSpec): Promise<StoredContext> {
    validateContextName(spec.name);
    assertUnencryptedKey(spec.tls.key);
    const existing = await this.read(spec.name);
    if (existing && !existing.drawbridge) {
      throw new ContextStoreError('CONTEXT_NOT_OURS', `a docker context named "${spec.name}" already exists and was not created by Drawbridge; it was left untouched`);
    }
    const p = this.paths(spec.name);
    // Parents as the CLI makes them (meta 0755, tls 0700), so its own later writes find what they expect.
    await ensureDir(join(this.contextsDir, 'meta'), 0o755);
    await ensureDir(p.meta, 0o700);
    await ensureDir(join(this.contextsDir, 'tls'), 0o700);
    await ensureDir(p.endpoint, 0o700, true);
    const files = { 'ca.pem': spec.tls.ca, 'cert.pem': spec.tls.cert, 'key.pem': spec.tls.key };
    for (const file of TLS_FILE_NAMES) await writeFileAtomic(join(p.endpoint, file), files[file], { mode: 0o600 });
    const meta = {
      Name: spec.name,
      Metadata: {
        Description: spec.description ?? `Drawbridge: ${spec.drawbridge.host} via ${spec.drawbridge.console}`,
        [DRAWBRIDGE_METADATA_KEY]: { console: spec.drawbridge.console, host: spec.drawbridge.host },
      },
      Endpoints: { [DOCKER_ENDPOINT]: { Host: spec.dockerHost, SkipTLSVerify: false } },
    };
    await writeFileAtomic(join(p.meta, 'meta.json'), JSON.stringify(meta), { mode: 0o600 });
    return (await this.read(spec.name))!;
  }

  /** Every context Drawbridge created in this store (others are skipped, never touched), sorted by name. */
  async list(): Promise<StoredContext[]> {
    let ids: string[];
    try {
      ids = await readdir(join(this.contextsDir, 'meta'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const found: StoredContext[] = [];
    for (const id of ids) {
      let name: unknown;
      try {
        name = (JSON.parse(await readFile(join(this.contextsDir, 'meta', id, 'meta.json'), 'utf8')) as { Name?: unknown }).Name;
      } catch {
        continue; // not a context dir, or one the CLI could not read either: not ours to judge
      }
      if (typeof name !== 'string' || contextId(name) !== id) continue;
      const context = await this.read(name);
      if (context?.drawbridge) found.push(context);
    }
    return found.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The Drawbridge context for a host name (marker), or with that context name; undefined when none. */
  async findHost(hostOrName: string): Promise<StoredContext | undefined> {
    const ours = await this.list();
    return ours.find((c) => c.drawbridge!.host === hostOrName) ?? ours.find((c) => c.name === hostOrName);
  }

  /**
   * Removes a Drawbridge context (metadata and TLS files). When it is the current context, currentContext is
   * cleared as `docker context rm -f` does. Refuses contexts that are not ours.
   */
  async remove(name: string): Promise<{ removed: boolean; clearedCurrentContext: boolean }> {
    validateContextName(name);
    const existing = await this.read(name);
    if (!existing) return { removed: false, clearedCurrentContext: false };
    if (!existing.drawbridge) {
      throw new ContextStoreError('CONTEXT_NOT_OURS', `the docker context "${name}" was not created by Drawbridge; it was left untouched`);
    }
    const clearedCurrentContext = (await getCurrentContext(this.configDir)) === name && (await setCurrentContext(this.configDir, DEFAULT_CONTEXT_NAME));
    const p = this.paths(name);
    await rm(p.meta, { recursive: true, force: true });
    await fsyncDir(join(this.contextsDir, 'meta'));
    await rm(p.tls, { recursive: true, force: true });
    await fsyncDir(join(this.contextsDir, 'tls')).catch(() => undefined);
    // Store dirs left empty go too (the CLI recreates them on demand), so a store we created disappears whole.
    for (const d of [join(this.contextsDir, 'tls'), join(this.contextsDir, 'meta'), this.contextsDir]) {
      await rmdir(d).catch(() => undefined); // ENOTEMPTY/ENOENT: keep
    }
    return { removed: true, clearedCurrentContext };
  }

  /**
   * Makes `name` the docker CLI's current context (like `docker context use`), and says what in `env` would
   * still send plain `docker` commands elsewhere.
   */
  async use(name: string, env: NodeJS.ProcessEnv = process.env): Promise<UseResult> {
    if (name !== DEFAULT_CONTEXT_NAME) {
      validateContextName(name);
      if (!(await this.read(name))) throw new ContextStoreError('CONTEXT_NOT_FOUND', `context "${name}" does not exist`);
    }
    const config = await readDockerConfig(this.configDir);
    const previous = typeof config.currentContext === 'string' && config.currentContext ? config.currentContext : DEFAULT_CONTEXT_NAME;
    await setCurrentContext(this.configDir, name);
    return {
      previous,
      effective: resolveDockerContext({ env, currentContext: name }),
      warnings: contextOverrides(name, env),
    };
  }
}
