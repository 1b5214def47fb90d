/**
 * Redaction of a container inspect answer (`GET [/vX.Y]/containers/{id}/json`, action container_inspect).
 *
 * - The env secrets a container carries are the names in its marker label; their values in `Config.Env` are
 *   replaced by REDACTED whatever the value is now (the variable may have been given again by the user: it
 *   was overridden by the secret, so its value is the secret).
 * - The answer's shape is dockerd's own encoding (canonical field names); nothing else is changed.
 * - A container without markers is returned as it is (the same object).
 */
import { isJsonObject } from './go-json-fields.js';
import { readMarkers } from './secret-labels.js';

export const REDACTED = '**redacted**';

export function redactInspect(inspectJson: unknown): unknown {
  if (!isJsonObject(inspectJson) || !isJsonObject(inspectJson.Config)) return inspectJson;
  const config = inspectJson.Config;
  const markers = readMarkers(config.Labels);
  if (markers === null || markers.env.length === 0 || !Array.isArray(config.Env)) return inspectJson;
  const secret = new Set(markers.env);
  const env = config.Env.map((e: unknown) => {
    if (typeof e !== 'string') return e;
    const eq = e.indexOf('=');
    const name = eq < 0 ? e : e.slice(0, eq);
    return secret.has(name) ? `${name}=${REDACTED}` : e;
  });
  return { ...inspectJson, Config: { ...config, Env: env } };
}
