/**
 * Secret injection as a pure transform of a container create request (`POST /containers/create` body).
 *
 * - The body is read as dockerd decodes it (go-json-fields.ts): every field read or changed — Image, Labels, Env,
 *   Volumes, HostConfig and its Binds, Mounts, Tmpfs — is found case-insensitively; two spellings of one → 400.
 *   Host settings given at the top level instead of in HostConfig (hostSettingsOf) are read there, and moved into
 *   a HostConfig when the secrets mount is added to it.
 * - A create that sets `io.drawbridge.*` labels itself → 400 (secret-labels.ts), whether or not a rule matches.
 * - Every matching rule applies, in order; for a name given twice (same mode) the earlier rule wins.
 * - Fail closed: a rule needing a value this Defender does not have → the create is refused (503) naming the rule
 *   and the secret, never a value; a container never starts without the secrets its rules give it.
 * - Env secrets replace a same-name variable of the request (`NAME=…` and a bare `NAME` alike).
 * - File secrets: one read-only bind mount of the container's secret directory (`hostDir`) at /run/secrets. A
 *   request that already mounts something at /run or /run/secrets (or below it) → 400: it would hide or be hidden
 *   by the secrets, and which one wins depends on dockerd's mount order.
 * - The result carries the new body and a plan of names only; the file contents are returned apart so that the
 *   plan can go to logs and audit as it is.
 */
import { fieldKey, fieldValue, hostSettingsOf, hostSettingsUnderHostConfig, isJsonObject, type JsonObject } from './go-json-fields.js';
import { markerLabels, refuseForgedLabels, type SecretMarkers } from './secret-labels.js';
import { LEAK_PATHS, secretRefKey, type ContainerTarget, type LeakPath, type SecretRule } from './secret-rules.js';
import { secretErrors } from './secret-errors.js';

export const SECRETS_MOUNT = '/run/secrets';
export const FILE_MODES = { root: 0o400, all: 0o444 } as const;

/** One secret value as the Console sends it (shared/wire/defender-console.ts `secretValue`). */
export interface SecretValueEntry {
  readonly store: string;
  readonly path: string;
  readonly key?: string | undefined;
  readonly value: string;
}

export interface FileSecret {
  readonly name: string;
  readonly mode: number;
  readonly value: string;
}

/** What was injected: names only (safe to log and audit). */
export interface InjectionPlan extends SecretMarkers {
  readonly fileModes: Readonly<Record<string, number>>;
}

export interface Injection {
  /** The body to forward (JSON text). */
  readonly body: string;
  readonly plan: InjectionPlan;
  /** The files to write into the container's secret directory. */
  readonly files: readonly FileSecret[];
}

/** The create body's fields that rules are matched against (throws 400 on an ambiguous or forged body). */
export function createTarget(body: unknown, query: { name: string; host: string }): ContainerTarget {
  const obj = isJsonObject(body) ? body : {};
  const image = fieldValue(obj, 'Image', '');
  const labels = fieldValue(obj, 'Labels', '');
  refuseForgedLabels(labels);
  const stringLabels: Record<string, string> = {};
  if (isJsonObject(labels)) for (const [k, v] of Object.entries(labels)) if (typeof v === 'string') stringLabels[k] = v;
  return { image: typeof image === 'string' ? image : '', labels: stringLabels, name: query.name, host: query.host };
}

export type ValueLookup = ReadonlyMap<string, string>;

/** Values by secretRefKey, for lookups. */
export function valueMap(values: readonly SecretValueEntry[]): Map<string, string> {
  return new Map(values.map((v) => [secretRefKey(v), v.value]));
}

interface Resolved {
  readonly env: Map<string, string>;
  readonly files: Map<string, FileSecret>;
}

/** The env and file secrets `rules` give (earlier rule wins per name); throws 503 for a value that is missing. */
export function resolveSecrets(rules: readonly SecretRule[], values: ValueLookup): Resolved {
  const env = new Map<string, string>();
  const files = new Map<string, FileSecret>();
  for (const rule of rules) {
    for (const ref of rule.secrets) {
      const target = rule.mode === 'env' ? env : files;
      if (target.has(ref.name)) continue;
      const value = values.get(secretRefKey(ref));
      if (value === undefined) {
        throw secretErrors.secret_unavailable(
          `[Drawbridge] secret rule '${rule.name}' needs secret '${ref.name}' (store '${ref.store}'), which this Defender does not have yet; the container was not created. Ask an administrator to check the secret store and refresh the secrets`,
        );
      }
      if (rule.mode === 'env') env.set(ref.name, value);
      else files.set(ref.name, { name: ref.name, mode: FILE_MODES[rule.fileAccess ?? 'root'], value });
    }
  }
  return { env, files };
}

/** A container path as dockerd cleans it: `//`, `.`, `..` and a trailing slash resolved. */
export function cleanContainerPath(p: string): string {
  const out: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return `/${out.join('/')}`;
}

function collidesWithSecrets(target: string): boolean {
  const p = cleanContainerPath(target);
  return p === '/run' || p === SECRETS_MOUNT || p.startsWith(`${SECRETS_MOUNT}/`);
}

/** The container-side target of a `-v` bind spec (`dst`, `src:dst`, `dst:mode`, `src:dst:mode`). */
export function bindTarget(spec: string): string {
  const parts = spec.split(':');
  if (parts.length === 1) return parts[0]!;
  return parts[1]!.startsWith('/') ? parts[1]! : parts[0]!;
}

/** Every container path the request mounts something at (Binds, Mounts, Tmpfs, Volumes). */
export function requestedMountTargets(body: JsonObject): string[] {
  const targets: string[] = [];
  const volumes = fieldValue(body, 'Volumes', '');
  if (isJsonObject(volumes)) targets.push(...Object.keys(volumes));
  const hs = hostSettingsOf(body);
  if (hs === null) return targets;
  const binds = fieldValue(hs.object, 'Binds', hs.where);
  if (Array.isArray(binds)) for (const b of binds) if (typeof b === 'string') targets.push(bindTarget(b));
  const tmpfs = fieldValue(hs.object, 'Tmpfs', hs.where);
  if (isJsonObject(tmpfs)) targets.push(...Object.keys(tmpfs));
  const mounts = fieldValue(hs.object, 'Mounts', hs.where);
  if (Array.isArray(mounts)) {
    for (const m of mounts) {
      if (!isJsonObject(m)) continue;
      const t = fieldValue(m, 'Target', `${hs.where}Mounts[].`);
      if (typeof t === 'string') targets.push(t);
    }
  }
  return targets;
}

function envName(entry: string): string {
  const eq = entry.indexOf('=');
  return eq < 0 ? entry : entry.slice(0, eq);
}

/**
 * Injects the secrets of `rules` (already matched against `target`) into the create body. `rules` empty → the body
 * is returned unchanged (after the ambiguity and forgery checks of createTarget, which the caller ran).
 */
export function injectSecrets(createBody: unknown, target: ContainerTarget, rules: readonly SecretRule[], values: ValueLookup, instance: { readonly id: string; readonly hostDir: string }): Injection {
  void target; // matched by the caller; kept in the signature so the plan can never be computed for another container
  let body: JsonObject = isJsonObject(createBody) ? { ...createBody } : {};
  const { env, files } = resolveSecrets(rules, values);

  // Read (and check) every field we touch before changing anything.
  const envKey = fieldKey(body, 'Env', '') ?? 'Env';
  const labelsKey = fieldKey(body, 'Labels', '') ?? 'Labels';
  const hs = hostSettingsOf(body);
  if (hs === null) throw secretErrors.bad_create('[Drawbridge] the request\'s HostConfig is not a JSON object');
  const mountTargets = requestedMountTargets(body);

  if (env.size) {
    const given = Array.isArray(body[envKey]) ? (body[envKey] as unknown[]) : [];
    const kept = given.filter((e) => typeof e !== 'string' || !env.has(envName(e)));
    body[envKey] = [...kept, ...[...env].map(([name, value]) => `${name}=${value}`)];
  }
  if (files.size) {
    const clash = mountTargets.find(collidesWithSecrets);
    if (clash !== undefined) {
      const names = rules.filter((r) => r.mode === 'file').map((r) => `'${r.name}'`).join(', ');
      throw secretErrors.bad_create(`[Drawbridge] this container gets file secrets at ${SECRETS_MOUNT} (secret rule ${names}), but the request also mounts something at ${clash}; mount it elsewhere`);
    }
    const under = hostSettingsUnderHostConfig(body, hs);
    body = under.body;
    const hostConfig: JsonObject = { ...(body[under.key] as JsonObject) };
    const mountsKey = fieldKey(hostConfig, 'Mounts', 'HostConfig.') ?? 'Mounts';
    const mounts = Array.isArray(hostConfig[mountsKey]) ? (hostConfig[mountsKey] as unknown[]) : [];
    hostConfig[mountsKey] = [...mounts, { Type: 'bind', Source: instance.hostDir, Target: SECRETS_MOUNT, ReadOnly: true }];
    body[under.key] = hostConfig;
  }
  const allow = LEAK_PATHS.filter((p) => rules.every((r) => r.allow.includes(p)));
  const plan: InjectionPlan = {
    rules: rules.map((r) => r.name),
    env: [...env.keys()],
    files: [...files.keys()],
    instance: files.size ? instance.id : '',
    allow,
    fileModes: Object.fromEntries([...files.values()].map((f) => [f.name, f.mode])),
  };
  if (rules.length) {
    const labels = isJsonObject(body[labelsKey]) ? (body[labelsKey] as JsonObject) : {};
    body[labelsKey] = { ...labels, ...markerLabels(plan) };
  }
  return { body: JSON.stringify(body), plan, files: [...files.values()] };
}

/**
 * The files a marked container gets now (at start, and when values change): the file secrets of the rules named
 * in its markers, looked up in the rules and values in force. Throws 503 when a rule or value is gone.
 */
export function currentFileSecrets(markers: SecretMarkers, rules: readonly SecretRule[], values: ValueLookup): FileSecret[] {
  const byName = new Map(rules.map((r) => [r.name.toLowerCase(), r]));
  const applied: SecretRule[] = [];
  for (const name of markers.rules) {
    const rule = byName.get(name.toLowerCase());
    if (rule) applied.push(rule);
    else if (markers.files.length) {
      throw secretErrors.secret_unavailable(`[Drawbridge] this container was created with secret rule '${name}', which no longer exists here; its secret files cannot be provided (re-create the container)`);
    }
  }
  const { files } = resolveSecrets(applied.filter((r) => r.mode === 'file'), values);
  const missing = markers.files.filter((f) => !files.has(f));
  if (missing.length) {
    throw secretErrors.secret_unavailable(`[Drawbridge] the secret rules of this container no longer give file secret(s) ${missing.map((m) => `'${m}'`).join(', ')}; re-create the container`);
  }
  return markers.files.map((f) => files.get(f)!);
}
