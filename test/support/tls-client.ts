/**
 * A raw mTLS client for protocol tests of the Defender: the test writes exact bytes (pipelined requests, smuggling
 * attempts, broken framing) and reads exact HTTP/1.1 responses back, in order, from one connection.
 *
 * - Connects with a client certificate directory in the docker CLI's layout (`ca.pem`, `cert.pem`, `key.pem`).
 * - Half-open: `end()` closes only our write side (TLS close_notify + FIN); responses keep arriving until the
 *   Defender ends its side, which `waitForEnd()` observes.
 * - Responses are parsed by hand (status line, headers, Content-Length, chunked, or until close), never by Node's
 *   HTTP client, so a framing mistake by the Defender shows up instead of being smoothed over.
 * - After a `101` nothing is parsed any more: `readRaw`/`readUntilEnd` hand out the stream bytes.
 * - Every wait has a deadline and fails with what was received so far.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';

export interface ResponseHead {
  readonly httpVersion: string;
  readonly status: number;
  readonly statusText: string;
  /** Lower-cased names; repeated headers joined with ', '. */
  readonly headers: Readonly<Record<string, string>>;
  /** As received, in order. */
  readonly rawHeaders: readonly (readonly [string, string])[];
}

export interface RawResponse extends ResponseHead {
  readonly body: Buffer;
  text(): string;
  json<T = Record<string, unknown>>(): T;
}

export interface ConnectOptions {
  readonly host?: string;
  /** Deadline for every read on this connection (default 15 s). */
  readonly timeoutMs?: number;
}

const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');

export class RawTlsClient {
  private buffer: Buffer = Buffer.alloc(0);
  private peerEnded = false;
  private failure: Error | null = null;
  private wake: (() => void)[] = [];

  private constructor(
    readonly socket: TLSSocket,
    private readonly timeoutMs: number,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
      this.notify();
    });
    socket.on('end', () => {
      this.peerEnded = true;
      this.notify();
    });
    socket.on('close', () => {
      this.peerEnded = true;
      this.notify();
    });
    socket.on('error', (err) => {
      this.failure ??= err;
      this.notify();
    });
  }

  /** Opens an mTLS connection to the Defender on 127.0.0.1:`port` as the user whose cert dir is given. */
  static async connect(port: number, certDir: string, opts: ConnectOptions = {}): Promise<RawTlsClient> {
    const [ca, cert, key] = await Promise.all(['ca.pem', 'cert.pem', 'key.pem'].map((f) => readFile(join(certDir, f))));
    // allowHalfOpen is honoured by tls.connect (it is passed to the TLSSocket) but missing from its typings.
    const socket = connect({ host: opts.host ?? '127.0.0.1', port, ca, cert, key, allowHalfOpen: true } as ConnectionOptions);
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    return new RawTlsClient(socket, opts.timeoutMs ?? 15_000);
  }

  /** Writes raw bytes; resolves once they are handed to the TLS layer. */
  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
  }

  /** Half-close: no more bytes from us; the Defender may still answer. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** True once the Defender ended its side of the connection (or it broke). */
  get ended(): boolean {
    return this.peerEnded || this.failure !== null;
  }

  /** Bytes received and not consumed yet. */
  get pending(): Buffer {
    return this.buffer;
  }

  /** Waits until the Defender closes its side; resolves with the bytes that came before it (unparsed). */
  async readUntilEnd(): Promise<Buffer> {
    await this.waitFor('the connection to close', () => this.peerEnded || this.failure !== null, true);
    return this.take(this.buffer.length);
  }

  /** Waits until the unconsumed bytes satisfy `done` (e.g. contain a marker); returns and consumes them all. */
  async readRaw(done: (received: Buffer) => boolean, what = 'more stream bytes'): Promise<Buffer> {
    await this.waitFor(what, () => done(this.buffer));
    return this.take(this.buffer.length);
  }

  /** Reads a status line and headers. A `101` leaves everything after its head untouched (the raw stream). */
  async readHead(): Promise<ResponseHead> {
    await this.waitFor('a response head', () => this.buffer.includes(HEAD_END));
    const end = this.buffer.indexOf(HEAD_END);
    const lines = this.take(end + HEAD_END.length).subarray(0, end).toString('latin1').split('\r\n');
    const status = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0]!);
    if (!status) throw new Error(`not an HTTP status line: ${JSON.stringify(lines[0])}`);
    const rawHeaders: [string, string][] = [];
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new Error(`malformed response header line: ${JSON.stringify(line)}`);
      const name = line.slice(0, colon);
      const value = line.slice(colon + 1).trim();
      rawHeaders.push([name, value]);
      const lower = name.toLowerCase();
      headers[lower] = lower in headers ? `${headers[lower]}, ${value}` : value;
    }
    return { httpVersion: status[1]!, status: Number(status[2]), statusText: status[3] ?? '', headers, rawHeaders };
  }

  /**
   * The next piece of a chunked body: its data, or null after the last chunk (trailers consumed). For streams
   * (logs -f, events) where the body never ends on its own.
   */
  async readChunk(): Promise<Buffer | null> {
    await this.waitFor('a chunk size line', () => this.buffer.includes(CRLF));
    const lineEnd = this.buffer.indexOf(CRLF);
    const sizeLine = this.buffer.subarray(0, lineEnd).toString('latin1');
    const size = /^([0-9a-fA-F]+)(;.*)?$/.exec(sizeLine);
    if (!size) throw new Error(`bad chunk size line: ${JSON.stringify(sizeLine)}`);
    const length = parseInt(size[1]!, 16);
    if (length === 0) {
      // trailers, then an empty line
      this.take(lineEnd + CRLF.length);
      for (;;) {
        await this.waitFor('the end of the chunked trailers', () => this.buffer.includes(CRLF));
        const trailerEnd = this.buffer.indexOf(CRLF);
        this.take(trailerEnd + CRLF.length);
        if (trailerEnd === 0) return null;
      }
    }
    const total = lineEnd + CRLF.length + length + CRLF.length;
    await this.waitFor(`a ${length}-byte chunk`, () => this.buffer.length >= total);
    const chunk = this.take(total);
    if (!chunk.subarray(total - CRLF.length).equals(CRLF)) throw new Error('a chunk is not followed by CRLF');
    return Buffer.from(chunk.subarray(lineEnd + CRLF.length, total - CRLF.length));
  }

  /** Reads the body that belongs to `head` (as a response to `method`). */
  async readBody(head: ResponseHead, method = 'GET'): Promise<Buffer> {
    if (method === 'HEAD' || head.status < 200 || head.status === 204 || head.status === 304) return Buffer.alloc(0);
    const te = head.headers['transfer-encoding'];
    if (te !== undefined) {
      if (te.toLowerCase() !== 'chunked') throw new Error(`unexpected response Transfer-Encoding ${te}`);
      const parts: Buffer[] = [];
      for (let chunk = await this.readChunk(); chunk !== null; chunk = await this.readChunk()) parts.push(chunk);
      return Buffer.concat(parts);
    }
    const cl = head.headers['content-length'];
    if (cl !== undefined) {
      if (!/^\d+$/.test(cl)) throw new Error(`bad response Content-Length ${cl}`);
      const length = Number(cl);
      await this.waitFor(`a ${length}-byte body`, () => this.buffer.length >= length);
      return this.take(length);
    }
    return this.readUntilEnd(); // delimited by close
  }

  /** One whole response. */
  async readResponse(method = 'GET'): Promise<RawResponse> {
    const head = await this.readHead();
    const body = head.status === 101 ? Buffer.alloc(0) : await this.readBody(head, method);
    return {
      ...head,
      body,
      text: () => body.toString('utf8'),
      json: <T>() => JSON.parse(body.toString('utf8')) as T,
    };
  }

  /** Resolves once the Defender has closed its side; fails if it has not within the deadline. */
  async waitForEnd(): Promise<void> {
    await this.waitFor('the connection to close', () => this.peerEnded || this.failure !== null, true);
  }

  private take(n: number): Buffer {
    const out = this.buffer.subarray(0, n);
    this.buffer = this.buffer.subarray(n);
    return out;
  }

  private notify(): void {
    const waiting = this.wake;
    this.wake = [];
    for (const w of waiting) w();
  }

  /** Waits for `ready()`; an end of stream or error before it fails (unless `endIsOk`, for waits on the end). */
  private async waitFor(what: string, ready: () => boolean, endIsOk = false): Promise<void> {
    const deadline = Date.now() + this.timeoutMs;
    while (!ready()) {
      if (!endIsOk && (this.peerEnded || this.failure)) {
        throw new Error(`waiting for ${what}: the connection ${this.failure ? `failed (${this.failure.message})` : 'was closed'}; unconsumed: ${describe(this.buffer)}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`waiting for ${what}: nothing after ${this.timeoutMs} ms; unconsumed: ${describe(this.buffer)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

function describe(buffer: Buffer): string {
  const text = JSON.stringify(buffer.subarray(0, 400).toString('latin1'));
  return buffer.length > 400 ? `${text}… (${buffer.length} bytes)` : text;
}

/** An HTTP/1.1 request as raw text; `body` gets a Content-Length unless `headers` already frame it. */
export function rawRequest(method: string, target: string, headers: Record<string, string | number> = {}, body?: string | Buffer): Buffer {
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: docker'];
  const names = Object.keys(headers).map((h) => h.toLowerCase());
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  const payload = body === undefined ? Buffer.alloc(0) : Buffer.from(body);
  if (body !== undefined && !names.includes('content-length') && !names.includes('transfer-encoding')) lines.push(`Content-Length: ${payload.length}`);
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), payload]);
}

/** `payload` as a chunked body in pieces of `size` bytes, with the last chunk. */
export function chunked(payload: string | Buffer, size = 16): Buffer {
  const data = Buffer.from(payload);
  const parts: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) {
    const piece = data.subarray(at, at + size);
    parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, CRLF);
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

/** Splits Docker's multiplexed stream (8-byte frame headers: stream, 0, 0, 0, big-endian length). */
export function demuxDockerStream(data: Buffer): { stdout: string; stderr: string } {
  const out = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  let at = 0;
  while (at + 8 <= data.length) {
    const stream = data[at]!;
    const length = data.readUInt32BE(at + 4);
    const frame = data.subarray(at + 8, at + 8 + length);
    if (stream === 2) out.stderr.push(frame);
    else out.stdout.push(frame);
    at += 8 + length;
  }
  if (at !== data.length) throw new Error(`a Docker stream frame is cut short (${data.length - at} bytes left)`);
  return { stdout: Buffer.concat(out.stdout).toString('utf8'), stderr: Buffer.concat(out.stderr).toString('utf8') };
}
