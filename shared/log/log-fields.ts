/**
 * The `key=value` fields of an operator log line (Defender and Console alike). A value with a space, a quote, an
 * `=`, or a control or format character (a terminal escape, a line break, a right-to-left override) is written as a
 * JSON string with those characters escaped: a value (a user name typed at sign-in, a request path) can neither
 * start a new line nor repaint or hide the ones before it.
 */
const NEEDS_QUOTES = /[\s"=\\\p{Cc}\p{Cf}]/u;
const FORMAT_CHARS = /[\p{Cf}\u2028\u2029]/gu;

export function logValue(value: unknown): string {
  const text = String(value);
  if (typeof value !== 'string' || !NEEDS_QUOTES.test(text)) return text;
  return JSON.stringify(text).replace(FORMAT_CHARS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** ` k=v k2=v2` for the defined fields ('' when none). */
export function logFields(fields: Readonly<Record<string, unknown>> = {}): string {
  const parts = Object.entries(fields).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${logValue(v)}`);
  return parts.length ? ` ${parts.join(' ')}` : '';
}
