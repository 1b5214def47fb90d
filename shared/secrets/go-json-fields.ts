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
