/**
 * A minimal HTTP/1.1 response reader for the benchmark's load generator: just enough to find where each response
 * on a keep-alive connection ends (Content-Length or chunked), count its body bytes and hand back its status.
 *
 * - Body bytes are skipped, never copied or buffered; only a split head or chunk-size line is held over.
 * - Trailers after the last chunk are skipped. A response with neither Content-Length nor chunked framing runs
 *   until the connection closes (`end()`); 1xx, 204 and 304 have no body.
 * - It trusts its peer (dockerd or a proxy in front of it): this measures, it does not validate.
 */
const enum State {
  Head,
  Body,
  ChunkSize,
  ChunkData,
  ChunkEnd,
  Trailer,
  UntilClose,
}

const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');

export type OnResponse = (status: number, bodyBytes: number, headers: string) => void;

export class ResponseReader {
  private state = State.Head;
  private pending: Buffer | null = null;
  private remaining = 0;
  private status = 0;
  private headers = '';
  private bodyBytes = 0;

  constructor(private readonly onResponse: OnResponse) {}

  /** Feeds bytes read from the connection. */
  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.pending !== null) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    let i = 0;
    while (i < buf.length) {
      switch (this.state) {
        case State.Head: {
          const end = buf.indexOf(HEAD_END, i);
          if (end < 0) {
            this.pending = buf.subarray(i);
            return;
          }
          this.startResponse(buf.toString('latin1', i, end));
          i = end + 4;
          break;
        }
        case State.Body: {
          const take = Math.min(this.remaining, buf.length - i);
          i += take;
          this.bodyBytes += take;
          this.remaining -= take;
          if (this.remaining === 0) this.finish();
          break;
        }
        case State.ChunkSize:
        case State.Trailer: {
          const nl = buf.indexOf(CRLF, i);
          if (nl < 0) {
            this.pending = buf.subarray(i);
            return;
          }
          if (this.state === State.Trailer) {
            if (nl === i) {
              i = nl + 2;
              this.finish();
            } else i = nl + 2; // a trailer field: skip it
            break;
          }
          const size = parseInt(buf.toString('latin1', i, nl), 16); // parseInt stops at ';' (chunk extensions)
          if (!Number.isFinite(size)) throw new Error(`bad chunk size line '${buf.toString('latin1', i, nl)}'`);
          i = nl + 2;
          if (size === 0) this.state = State.Trailer;
          else {
            this.remaining = size;
            this.state = State.ChunkData;
          }
          break;
        }
        case State.ChunkData: {
          const take = Math.min(this.remaining, buf.length - i);
          i += take;
          this.bodyBytes += take;
          this.remaining -= take;
          if (this.remaining === 0) {
            this.remaining = 2;
            this.state = State.ChunkEnd;
          }
          break;
        }
        case State.ChunkEnd: {
          const take = Math.min(this.remaining, buf.length - i);
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = State.ChunkSize;
          break;
        }
        case State.UntilClose:
          this.bodyBytes += buf.length - i;
          i = buf.length;
          break;
      }
    }
  }

  /** The connection ended: completes a response framed by the close; true if one was in the middle otherwise. */
  end(): boolean {
    if (this.state === State.UntilClose) {
      this.finish();
      return false;
    }
    return this.state !== State.Head || this.pending !== null;
  }

  private startResponse(head: string): void {
    this.status = Number(head.slice(9, 12));
    this.headers = head;
    this.bodyBytes = 0;
    const lower = head.toLowerCase();
    const cl = /\r\ncontent-length:[ \t]*(\d+)/.exec(lower);
    const chunked = /\r\ntransfer-encoding:[^\r]*chunked/.test(lower);
    if (this.status < 200 || this.status === 204 || this.status === 304) {
      if (this.status >= 200) this.finish(); // 1xx: the real head follows
    } else if (chunked) this.state = State.ChunkSize;
    else if (cl) {
      this.remaining = Number(cl[1]);
      if (this.remaining === 0) this.finish();
      else this.state = State.Body;
    } else this.state = State.UntilClose;
  }

  private finish(): void {
    this.state = State.Head;
    this.onResponse(this.status, this.bodyBytes, this.headers);
  }
}
