/**
 * The marker labels the Defender puts on a container it injected secrets into. They are how every later request
 * (inspect, start, commit, export, archive) and the Defender's own housekeeping know what the container carries.
 *
 * - Names only, never a value: `rules` (the secret rules applied, in order), `env` and `files` (the secret names),
 *   `instance` (random id of the container's secret directory on the host), `allow` (leak paths every applied
 *   rule allows).
 * - Only the Defender sets them: a create request that sets any `io.drawbridge.*` label itself is refused, or a
 *   user could forge or strip markers (and with them the redaction and the leak-path checks). So is a swarm service
 *   create or update whose `TaskTemplate.ContainerSpec.Labels` set one: swarmkit puts those labels on every task
 *   container it creates, past the Defender. (The service's own `Labels` and a mount's volume labels stay on the
 *   service and the volume; the Defender reads neither.)
 * - Lists are comma-separated: rule names, env names and file names cannot contain a comma (secret-rules.ts).
 */
import { fieldValue, isJsonObject } from './go-json-fields.js';
import { LEAK_PATHS, type LeakPath } from './secret-rules.js';
import { secretErrors } from './secret-errors.js';

export const DRAWBRIDGE_LABEL_PREFIX = 'io.drawbridge.';

export const SECRET_LABELS = {
  rules: 'io.drawbridge.secrets.rules',
  env: 'io.drawbridge.secrets.env',
  files: 'io.drawbridge.secrets.files',
  instance: 'io.drawbridge.secrets.instance',
  allow: 'io.drawbridge.secrets.allow',
} as const;

/** What a marked container carries (names only). */
export interface SecretMarkers {
  readonly rules: readonly string[];
  readonly env: readonly string[];
  readonly files: readonly string[];
  /** Id of the container's secret directory; '' when it has no file secrets. */
  readonly instance: string;
  readonly allow: readonly LeakPath[];
}

/** An instance id is a directory name on the host: only these characters, whatever a label says. */
export const INSTANCE_ID = /^[a-f0-9]{16,64}$/;

const list = (value: string | undefined): string[] => (value ? value.split(',').map((s) => s.trim()).filter(Boolean) : []);

export function markerLabels(markers: SecretMarkers): Record<string, string> {
  return {
    [SECRET_LABELS.rules]: markers.rules.join(','),
    [SECRET_LABELS.env]: markers.env.join(','),
    [SECRET_LABELS.files]: markers.files.join(','),
    [SECRET_LABELS.instance]: markers.instance,
    [SECRET_LABELS.allow]: markers.allow.join(','),
  };
}

/** The markers of a container from its labels; null when it carries no injected secrets. */
export function readMarkers(labels: unknown): SecretMarkers | null {
  if (typeof labels !== 'object' || labels === null) return null;
  const l = labels as Record<string, unknown>;
  const get = (k: string): string | undefined => (typeof l[k] === 'string' ? (l[k] as string) : undefined);
  const rules = list(get(SECRET_LABELS.rules));
  if (rules.length === 0) return null;
  const instance = get(SECRET_LABELS.instance) ?? '';
  return {
    rules,
    env: list(get(SECRET_LABELS.env)),
    files: list(get(SECRET_LABELS.files)),
    instance: INSTANCE_ID.test(instance) ? instance : '',
    allow: list(get(SECRET_LABELS.allow)).filter((a): a is LeakPath => (LEAK_PATHS as readonly string[]).includes(a)),
  };
}

/** Refuses (400) labels of a create request that use Drawbridge's own prefix (any case). */
export function refuseForgedLabels(labels: unknown): void {
  if (typeof labels !== 'object' || labels === null) return;
  const forged = Object.keys(labels).filter((k) => k.toLowerCase().startsWith(DRAWBRIDGE_LABEL_PREFIX));
  if (forged.length) {
    throw secretErrors.forged_marker(`[Drawbridge] labels starting with '${DRAWBRIDGE_LABEL_PREFIX}' are reserved for the Drawbridge Defender; remove ${forged.map((k) => `'${k}'`).join(', ')}`);
  }
}

/**
 * Refuses (400) a swarm service spec (`POST /services/create`, `/services/{id}/update`) whose task containers would
 * carry Drawbridge's labels: `TaskTemplate.ContainerSpec.Labels`, read as dockerd decodes the spec (any letter case;
 * a field given twice under two spellings → 400).
 */
export function refuseForgedServiceLabels(serviceSpec: unknown): void {
  if (!isJsonObject(serviceSpec)) return;
  const task = fieldValue(serviceSpec, 'TaskTemplate', '');
  const spec = isJsonObject(task) ? fieldValue(task, 'ContainerSpec', 'TaskTemplate.') : undefined;
  if (isJsonObject(spec)) refuseForgedLabels(fieldValue(spec, 'Labels', 'TaskTemplate.ContainerSpec.'));
}
