/**
 * Errors of the secret transforms. The Defender answers each in Docker's `{"message": …}` shape, so the docker CLI
 * prints it; a message names rules, secret names and fields, never a value.
 */
import { errorTable } from '../errors/drawbridge-error.js';

export const secretErrors = errorTable({
  bad_create: { status: 400 },                            // a create body we cannot inject into unambiguously
  forged_marker: { status: 400 },                         // a create that sets Drawbridge's own labels
  secret_unavailable: { status: 503, expose: true },      // a rule needs a value this Defender does not have
  leak_denied: { status: 403 },                           // commit / export / copy of a secret-carrying container
  no_such_container: { status: 404 },                     // a container a decision needs does not exist (dockerd's text)
});
