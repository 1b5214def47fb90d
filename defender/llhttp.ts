/**
 * Node's own llhttp parser binding (`HTTPParser` of node:_http_common, the one http.Server and http.ClientRequest
 * use), for the Defender's two raw HTTP/1.1 sides: requests from clients (client-connection.ts) and dockerd's
 * answers (upstream-exchange.ts).
 *
 * - Strict as by default (no lenient flags): the Defender never guesses where a message ends.
 * - This is an undocumented Node internal, stable since Node 12; the Defender refuses to start if its shape is not
 *   the one used here (tested on Node 20).
 * - Callbacks receive what Node's binding gives: header lists as name, value, name, value…, the method as an index
 *   into `methods`, body pieces as fresh Buffers.
 */
import { createRequire } from 'node:module';

export interface NodeHttpParser {
  initialize(type: number, resource: object, maxHeaderSize?: number, lenient?: number): void;
  execute(data: Buffer): number | (Error & { code?: string; bytesParsed?: number });
  finish(): undefined | (Error & { code?: string });
  close(): void;
  [callback: number]: unknown;
}

interface NodeHttpParserClass {
  new (): NodeHttpParser;
  readonly REQUEST: number;
  readonly RESPONSE: number;
  readonly kOnMessageBegin: number;
  readonly kOnHeaders: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
}

const internal = createRequire(import.meta.url)('_http_common') as { HTTPParser?: NodeHttpParserClass; methods?: readonly string[] };
if (typeof internal.HTTPParser !== 'function' || typeof internal.HTTPParser.kOnHeadersComplete !== 'number' || typeof internal.HTTPParser.REQUEST !== 'number' || !Array.isArray(internal.methods)) {
  throw new Error(`this Node.js (${process.version}) does not expose the HTTP parser the Defender uses`);
}

export const HttpParser: NodeHttpParserClass = internal.HTTPParser;
/** Method names by the index llhttp reports. */
export const methods: readonly string[] = internal.methods;
