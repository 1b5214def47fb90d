/**
 * HTTP/1.1 heads the Defender writes itself, to dockerd (requests) and to clients (answers).
 *
 * - A start line, header name or value holding CR, LF or NUL is never written (throws): nothing the Defender
 *   writes can be split into two messages on the other side, whatever a header it relays contains.
 * - Names and values go out as given (raw order and case), one line each.
 */
import { STATUS_CODES } from 'node:http';

/** Neither CR, LF nor NUL: what could end a header line or the head early. */
const UNSAFE = /[\r\n\0]/;

/** `name: value\r\n` for each pair of a raw header list (name, value, name, value…). */
export function headerLines(rawHeaders: readonly string[]): string {
  let out = '';
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    if (UNSAFE.test(name) || UNSAFE.test(value) || name.includes(':') || name === '') throw new Error('unsafe header');
    out += `${name}: ${value}\r\n`;
  }
  return out;
}

export function requestHead(method: string, target: string, rawHeaders: readonly string[]): string {
  if (UNSAFE.test(method) || UNSAFE.test(target) || method.includes(' ') || target.includes(' ')) throw new Error('unsafe request line');
  return `${method} ${target} HTTP/1.1\r\n${headerLines(rawHeaders)}\r\n`;
}

/** The head of an answer; `extra` is framing and connection lines the Defender adds (already safe). */
export function answerHead(status: number, message: string, rawHeaders: readonly string[], extra = ''): string {
  if (!Number.isInteger(status) || status < 100 || status > 999 || UNSAFE.test(message)) throw new Error('unsafe status line');
  return `HTTP/1.1 ${status} ${message}\r\n${headerLines(rawHeaders)}${extra}\r\n`;
}

/** The reason phrase Node uses for a status (Docker's clients ignore it). */
export function reasonPhrase(status: number): string {
  return STATUS_CODES[status] ?? 'Unknown';
}
