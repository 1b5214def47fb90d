/**
 * A request body's framing, read by the Defender itself once llhttp parsed the head (client-connection.ts): the body's
 * data goes on as slices of the reads it arrived in, never copied, and the Defender knows where the body ends.
 *
 * - Only the framings request-body.ts's checkFraming accepts (the one check of what frames a request): a single
 *   Content-Length of digits, or a single `Transfer-Encoding: chunked`. Whatever it refuses is left to llhttp, and
 *   refused again when the request is handled.
 * - Chunks are read strictly: 1 to 12 hex digits, no space before the optional extensions or CRLF, CRLF everywhere
 *   (no bare CR or LF), CRLF right after each chunk's data, then the trailer section and its empty line. Extensions
 *   (at most 16 KiB per chunk, as Node's parser) and trailers (at most `maxTrailerBytes`) are checked for framing
 *   and dropped: the Defender sends the data upstream in chunks of its own.
 * - A framing error is thrown as a BodyFramingError named as llhttp names it (HPE_INVALID_CHUNK_SIZE…).
 */
import { checkFraming, type Framing } from './request-body.js';

export class BodyFramingError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface BodyFramer {
  /**
   * Reads the body's part of `read` from its start: hands each run of data to `data` as a slice of `read`, and
   * returns how many bytes of `read` were the body's (all of them unless the body ended in it).
   */
  take(read: Buffer, data: (piece: Buffer) => void): number;
  /** The whole body was read. */
  readonly done: boolean;
}

const MAX_SIZE_DIGITS = 12;
const MAX_EXTENSIONS = 16 * 1024;
const CR = 0x0d;
const LF = 0x0a;

/** The framer of a request's body, when checkFraming accepts its headers and they announce a body; null otherwise. */
export function bodyFramer(rawHeaders: readonly string[], maxTrailerBytes: number): BodyFramer | null {
  let framing: Framing;
  try {
    framing = checkFraming(rawHeaders);
  } catch {
    return null; // refused when the request is handled (forward-request.ts)
  }
  if (framing.kind === 'length') return new LengthBody(framing.length);
  if (framing.kind === 'chunked') return new ChunkedBody(maxTrailerBytes);
  return null;
}

class LengthBody implements BodyFramer {
  constructor(private left: number) {}

  get done(): boolean {
    return this.left === 0;
  }

  take(read: Buffer, data: (piece: Buffer) => void): number {
    const n = Math.min(this.left, read.length);
    this.left -= n;
    if (n > 0) data(n === read.length ? read : read.subarray(0, n));
    return n;
  }
}

type ChunkState = 'size-first' | 'size' | 'extension' | 'size-lf' | 'data' | 'data-cr' | 'data-lf' | 'trailer-start' | 'trailer' | 'trailer-lf' | 'end-lf' | 'done';

class ChunkedBody implements BodyFramer {
  private state: ChunkState = 'size-first';
  private size = 0;
  private digits = 0;
  private extensionBytes = 0;
  private trailerBytes = 0;

  constructor(private readonly maxTrailerBytes: number) {}

  get done(): boolean {
    return this.state === 'done';
  }

  take(read: Buffer, data: (piece: Buffer) => void): number {
    let i = 0;
    while (i < read.length && this.state !== 'done') {
      if (this.state === 'data') {
        const n = Math.min(this.size, read.length - i);
        data(i === 0 && n === read.length ? read : read.subarray(i, i + n));
        this.size -= n;
        i += n;
        if (this.size === 0) this.state = 'data-cr';
        continue;
      }
      this.step(read[i]!);
      i++;
    }
    return i;
  }

  private step(c: number): void {
    switch (this.state) {
      case 'size-first':
      case 'size': {
        const digit = hexValue(c);
        if (digit >= 0) {
          if (++this.digits > MAX_SIZE_DIGITS) throw framingError('HPE_INVALID_CHUNK_SIZE', 'the chunk size is too large');
          this.size = this.size * 16 + digit;
          this.state = 'size';
        } else if (this.state === 'size' && c === 0x3b /* ; */) this.state = 'extension';
        else if (this.state === 'size' && c === CR) this.state = 'size-lf';
        else throw framingError('HPE_INVALID_CHUNK_SIZE', 'invalid character in the chunk size');
        return;
      }
      case 'extension':
        if (c === CR) this.state = 'size-lf';
        else if (c === LF || c === 0) throw framingError('HPE_STRICT', 'invalid character in a chunk extension');
        else if (++this.extensionBytes > MAX_EXTENSIONS) throw framingError('HPE_CHUNK_EXTENSIONS_OVERFLOW', 'chunk extensions overflow');
        return;
      case 'size-lf':
        if (c !== LF) throw framingError('HPE_STRICT', 'expected LF after the chunk size');
        this.state = this.size === 0 ? 'trailer-start' : 'data';
        this.digits = 0;
        this.extensionBytes = 0;
        return;
      case 'data-cr':
        if (c !== CR) throw framingError('HPE_STRICT', 'expected CRLF after the chunk data');
        this.state = 'data-lf';
        return;
      case 'data-lf':
        if (c !== LF) throw framingError('HPE_STRICT', 'expected CRLF after the chunk data');
        this.state = 'size-first';
        return;
      case 'trailer-start':
        if (c === CR) {
          this.state = 'end-lf';
          return;
        }
        this.state = 'trailer';
        this.trailer(c);
        return;
      case 'trailer':
        this.trailer(c);
        return;
      case 'trailer-lf':
      case 'end-lf':
        if (c !== LF) throw framingError('HPE_STRICT', 'expected LF after CR in the trailer section');
        this.state = this.state === 'end-lf' ? 'done' : 'trailer-start';
        return;
      default:
        throw new Error(`chunked body: unexpected state ${this.state}`);
    }
  }

  private trailer(c: number): void {
    if (++this.trailerBytes > this.maxTrailerBytes) throw framingError('HPE_HEADER_OVERFLOW', 'the trailer section is too large');
    if (c === CR) this.state = 'trailer-lf';
    else if (c === LF || c === 0) throw framingError('HPE_INVALID_HEADER_TOKEN', 'invalid character in the trailer section');
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

function framingError(code: string, message: string): BodyFramingError {
  return new BodyFramingError(code, message);
}
