/**
 * Reading a Docker API JSON body the way dockerd decodes it (Go's encoding/json into structs):
 *
 * - Object keys match struct fields case-insensitively, with Unicode simple folding: `env`, `ENV` and `Env` are the
 *   same field, and so are `Labelſ` (U+017F) and `Labels`, `Ka` with the Kelvin sign (U+212A) and `ka`.
 * - The last occurrence of a field wins (docker/cli#7086). JSON.parse keeps the last of identical spellings, as Go
 *   does; different spellings of one field are kept apart by JSON.parse, so whoever reads one spelling and
 *   forwards the body may be checking a value dockerd never uses. A field we read or change that appears under two
 *   spellings is therefore refused (400), never guessed.
 */
import { secretErrors } from './secret-errors.js';

export type JsonObject = Record<string, unknown>;

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The key Go's decoder compares: simple case folding of the ASCII letters (ſ ≡ s, K ≡ k, then lower case). */
export function goFoldKey(key: string): string {
  return key.replace(/\u017f/g, 's').replace(/\u212a/g, 'k').toLowerCase();
}

/**
 * The key under which `obj` carries the struct field `name` as dockerd decodes it; null when absent. Throws
 * (400) when the field appears under two spellings. `where` names the object in the message (`HostConfig`).
 */
export function fieldKey(obj: JsonObject, name: string, where: string): string | null {
  const folded = goFoldKey(name);
  let found: string | null = null;
  for (const key of Object.keys(obj)) {
    if (goFoldKey(key) !== folded) continue;
    if (found !== null) {
      throw secretErrors.bad_create(`[Drawbridge] the request gives ${where}${name} twice (as '${found}' and '${key}'); dockerd would silently use the last one, so Drawbridge refuses it`);
    }
    found = key;
  }
  return found;
}

/** The value of field `name` (see fieldKey); undefined when absent. */
export function fieldValue(obj: JsonObject, name: string, where: string): unknown {
  const key = fieldKey(obj, name, where);
  return key === null ? undefined : obj[key];
}

/**
 * Refuses (400) a JSON text in which one object gives the same key twice. JSON.parse keeps the last value; Go's
 * decoder decodes each occurrence in turn into the same field, so for an object-valued field (HostConfig, a
 * Labels map) it MERGES them: `{"HostConfig":{"Binds":[…]},"HostConfig":{}}` is a bind for dockerd and no bind
 * for a check that read the parsed value. The docker CLI never sends duplicates. `text` is valid JSON.
 */
export function refuseDuplicateKeys(text: string): void {
  const objects: (Set<string> | null)[] = []; // null: an array
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const keys = objects[objects.length - 1];
      if (expectKey && keys) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (keys.has(key)) {
          throw secretErrors.bad_create(`[Drawbridge] the request body gives '${key}' twice in one object; dockerd would merge or silently pick one, so Drawbridge refuses it`);
        }
        keys.add(key);
        expectKey = false;
      }
      i = j;
    } else if (ch === '{') {
      objects.push(new Set());
      expectKey = true;
    } else if (ch === '[') objects.push(null);
    else if (ch === '}' || ch === ']') objects.pop();
    else if (ch === ',') expectKey = objects[objects.length - 1] instanceof Set;
  }
}

/** The fields of a container create body's own config (the Engine API's ContainerConfig); any other key is a host setting. */
const CONTAINER_CONFIG_FIELDS = new Set(
  ['Hostname', 'Domainname', 'User', 'AttachStdin', 'AttachStdout', 'AttachStderr', 'ExposedPorts', 'Tty', 'OpenStdin', 'StdinOnce', 'Env', 'Cmd',
    'Healthcheck', 'ArgsEscaped', 'Image', 'Volumes', 'WorkingDir', 'Entrypoint', 'NetworkDisabled', 'MacAddress', 'OnBuild', 'Labels', 'StopSignal',
    'StopTimeout', 'Shell', 'HostConfig', 'NetworkingConfig'].map(goFoldKey),
);

/**
 * Where a container create body carries its host settings (Binds, Mounts, PidMode, VolumesFrom…), as dockerd decodes
 * it. moby's ContainerConfigWrapper embeds the whole HostConfig at the top level as well (runconfig/config_unix.go,
 * until dockerd 27): when `HostConfig` is absent or null, dockerd takes the top-level fields as the host settings,
 * so `{"Image":…,"Binds":["/:/host"]}` mounts the host's root. `key` is the HostConfig key, or null when the top
 * level is read (dockerd 27 and later ignore it there: checking it too only refuses more). Null when HostConfig is
 * some other JSON value: dockerd refuses to decode that.
 */
export interface HostSettings {
  readonly key: string | null;
  readonly object: JsonObject;
  /** The prefix for messages: `HostConfig.` or '' (top level). */
  readonly where: string;
}

export function hostSettingsOf(createBody: JsonObject): HostSettings | null {
  const key = fieldKey(createBody, 'HostConfig', '');
  const value = key === null ? null : createBody[key];
  if (value === null || value === undefined) return { key: null, object: createBody, where: '' };
  return isJsonObject(value) ? { key, object: value, where: 'HostConfig.' } : null;
}

/** The create body with its host settings replaced by `settings` (which `hostSettingsOf` returned `hs` for). */
export function withHostSettings(createBody: JsonObject, hs: HostSettings, settings: JsonObject): JsonObject {
  return hs.key === null ? settings : { ...createBody, [hs.key]: settings };
}

/**
 * The body with its host settings (`hs`, from hostSettingsOf) under `HostConfig`, for a change that must add one (a
 * secrets mount). Given at the top level, every top-level key that is not a ContainerConfig field moves into a new
 * `HostConfig`, so dockerd reads the same settings plus the new one. Returns the body and its HostConfig key.
 */
export function hostSettingsUnderHostConfig(createBody: JsonObject, hs: HostSettings): { body: JsonObject; key: string } {
  if (hs.key !== null) return { body: createBody, key: hs.key };
  const body: JsonObject = {};
  const hostConfig: JsonObject = {};
  for (const [k, v] of Object.entries(createBody)) {
    if (CONTAINER_CONFIG_FIELDS.has(goFoldKey(k))) body[k] = v;
    else hostConfig[k] = v;
  }
  const key = fieldKey(createBody, 'HostConfig', '') ?? 'HostConfig';
  body[key] = hostConfig;
  return { body, key };
}
