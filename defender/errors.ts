/** The Defender's error codes. Every one is answered to the docker CLI as Docker's `{"message": …}` JSON. */
import { errorTable, type DrawbridgeError } from '../shared/errors/drawbridge-error.js';
import { answerHead, reasonPhrase } from './http-head.js';

export const defenderErrors = errorTable({
  bad_request: { status: 400 },            // framing or a path dockerd would not route as-is
  bad_identity: { status: 403 },           // a certificate that chains but carries no usable identity
  denied: { status: 403 },                 // an access rule said no (or there is no policy yet)
  revoked: { status: 403 },                // the client certificate is on the Console's revocation list
  body_too_large: { status: 413 },
  bad_upgrade: { status: 400 },            // Upgrade asked on a route dockerd never hijacks
  docker_unreachable: { status: 502, expose: true },
  shutting_down: { status: 503, expose: true },
  config: { status: 500, expose: true },   // startup/config problems, printed to the operator
});

/** Docker's JSON error body; the message itself only for an error that may be shown. */
export function dockerErrorBody(error: DrawbridgeError): Buffer {
  return Buffer.from(JSON.stringify({ message: error.expose ? error.message : 'internal error in the Drawbridge Defender' }));
}

/** A whole error answer that closes the connection, for a socket written to directly (a refused hijack or head). */
export function closingErrorAnswer(error: DrawbridgeError): Buffer {
  const body = dockerErrorBody(error);
  const head = answerHead(error.status, reasonPhrase(error.status), ['Content-Type', 'application/json', 'Content-Length', String(body.length), 'Connection', 'close']);
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}
