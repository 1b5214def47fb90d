/**
 * Picking one value out of a secret, the same way for every store.
 *
 * - A structured secret (Vault KV data, CyberArk's account properties, a JSON object stored as a string in AWS,
 *   Azure or GCP) needs `key`; without it the error lists the keys that exist.
 * - A plain value is returned as is; asking it for a key is an error saying it has none.
 * - Field values that are not strings (numbers, booleans, nested objects) come back as their JSON text.
 * - Error messages list key names, never values.
 */
import type { StoreKind } from './store-config.js';
import { StoreError } from './store-error.js';

/** The object inside a JSON-object string, or undefined for anything else (plain text, arrays, scalars). */
export function parseJsonObject(text: string): Record<string, unknown> | undefined {
  if (!/^\s*\{/.test(text)) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function keyList(fields: Record<string, unknown>): string {
  const keys = Object.keys(fields);
  return keys.length === 0 ? 'it has no keys' : `keys: ${keys.join(', ')}`;
}

/** The value of `key` in a structured secret. */
export function selectField(kind: StoreKind | 'builtin', path: string, fields: Record<string, unknown>, key: string | undefined): string {
  if (key === undefined) throw new StoreError('no_such_key', kind, `secret '${path}' holds several values (${keyList(fields)}): name the one to use with key`);
  if (!Object.hasOwn(fields, key)) throw new StoreError('no_such_key', kind, `the key '${key}' is not in secret '${path}' (${keyList(fields)})`);
  const value = fields[key];
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** The value of a secret stored as a string: itself, or with `key` one field of the JSON object it holds. */
export function selectFromText(kind: StoreKind | 'builtin', path: string, text: string, key: string | undefined): string {
  const fields = parseJsonObject(text);
  if (fields === undefined) {
    if (key !== undefined) throw new StoreError('no_such_key', kind, `secret '${path}' is a plain value, not a JSON object, so it has no key '${key}': leave key empty`);
    return text;
  }
  return selectField(kind, path, fields, key);
}
