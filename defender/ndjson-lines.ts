/**
 * Newline-delimited JSON from a byte stream (the Console's policy stream).
 *
 * - Lines are cut on the byte 0x0A before decoding, so a UTF-8 character split across chunks stays whole.
 * - A trailing `\r` is dropped; empty lines are skipped (keep-alive padding).
 * - A line longer than the limit is an error (a broken or hostile peer must not make us buffer without end).
 * - `parsePolicyLine` validates a line against the wire contract; anything else is an error with a short reason.
 */
import { policyStreamLine, type PolicyStreamLine } from '../shared/wire/defender-console.js';

export class NdjsonError extends Error {
  override readonly name = 'NdjsonError';
}

export class NdjsonLines {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxLineBytes = 8 * 1024 * 1024) {}

  /** The complete lines `chunk` finishes (text, without the newline). */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      const part = chunk.subarray(start, nl);
      const whole = this.pending.length ? Buffer.concat([...this.pending, part], this.pendingBytes + part.length) : part;
      this.pending = [];
      this.pendingBytes = 0;
      if (whole.length > this.maxLineBytes) throw new NdjsonError(`a line is longer than ${this.maxLineBytes} bytes`);
      const text = whole.toString('utf8').replace(/\r$/, '');
      if (text.trim() !== '') lines.push(text);
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.pendingBytes += rest.length;
      if (this.pendingBytes > this.maxLineBytes) throw new NdjsonError(`a line is longer than ${this.maxLineBytes} bytes`);
      this.pending.push(Buffer.from(rest)); // a copy: the caller may reuse its chunk
    }
    return lines;
  }

  /** Bytes received after the last newline (an unfinished line when the stream ends). */
  get buffered(): number {
    return this.pendingBytes;
  }
}

/** One line of `GET /api/v1/defenders/policy`, validated. Throws NdjsonError saying what is wrong. */
export function parsePolicyLine(text: string): PolicyStreamLine {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new NdjsonError('a line is not JSON');
  }
  const parsed = policyStreamLine.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new NdjsonError(`a line does not match the policy stream contract: ${issue.path.join('.') || '(line)'}: ${issue.message}`);
  }
  return parsed.data;
}
