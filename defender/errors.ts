/** The Defender's error codes. Every one is answered to the docker CLI as Docker's `{"message": …}` JSON. */
import { errorTable } from '../shared/errors/drawbridge-error.js';

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
