/**
 * The sign-in page oidc-provider sends the browser to (`/oauth/interaction/<uid>`), for the code flow and the
 * device flow alike; plain Node request handling, server-rendered HTML (oauth-pages.ts).
 *
 * - Local users (UserStore.verify) for now; LDAP/OIDC/SAML sign-in will finish the same interaction.
 * - CSRF: the interaction is the one named by this browser's signed, SameSite=Lax interaction cookie (scoped to
 *   this path), and the uid in the URL must be that interaction's; a POST with a foreign Origin is refused.
 * - Signing in is also the consent: the page says which app asks and for what, and a fresh grant is made for
 *   this one login with the scopes the app asked for (of the ones it may have), so revoking one app login never
 *   ends another. The password is asked every time (native apps always need a consent interaction anyway).
 * - Wrong credentials re-render the form with the error inline, the user name kept, focus on the password.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import Provider, { errors } from 'oidc-provider';
import { DrawbridgeError } from '../../shared/errors/drawbridge-error.js';
import { peerAddress } from '../api/route.js';
import { passwordLogin } from '../auth/login-throttle.js';
import type { User } from '../auth/user-store.js';
import type { ConsoleContext } from '../context.js';
import { errorPage, loginPage, type HtmlPage } from './oauth-pages.js';
import { appAsking, OAUTH_PREFIX, OAUTH_SCOPES } from './oauth-provider.js';

const MAX_FORM = 16 * 1024;
const PATH = new RegExp(`^${OAUTH_PREFIX}/interaction/([A-Za-z0-9_-]{1,128})(?:/(login|abort))?$`);

class FormError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function send(res: ServerResponse, page: HtmlPage, status = page.status): void {
  res.writeHead(status, { ...page.headers, 'Content-Length': Buffer.byteLength(page.html) });
  res.end(page.html);
}

function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  if (!/^application\/x-www-form-urlencoded\b/i.test(req.headers['content-type'] ?? '')) return Promise.reject(new FormError(415, 'The form was not sent as a form.'));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_FORM) reject(new FormError(413, 'The form is too large.'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

/** Same-origin check for form posts (browsers send Origin on POST; a missing one is left to the cookie check). */
function foreignOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  return origin !== undefined && origin !== `https://${req.headers.host ?? ''}`;
}

/** Serves `/oauth/interaction/…`; false when the path is not one of its own. */
export function loginInteraction(ctx: ConsoleContext, provider: Provider): (req: IncomingMessage, res: ServerResponse, path: string) => Promise<boolean> {
  async function handle(req: IncomingMessage, res: ServerResponse, uid: string, action: string | undefined): Promise<void> {
    const method = req.method ?? 'GET';
    if ((action === undefined && method !== 'GET' && method !== 'HEAD') || (action !== undefined && method !== 'POST')) {
      res.setHeader('Allow', action === undefined ? 'GET, HEAD' : 'POST');
      return send(res, errorPage(405, 'Not allowed', `${method} is not allowed here.`));
    }
    if (action !== undefined && foreignOrigin(req)) return send(res, errorPage(403, 'Sign-in refused', 'This form was sent from another site.'));
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) return send(res, errorPage(400, 'Sign-in expired', 'This sign-in page does not belong to the sign-in in progress in this browser. Start again from the app.'));
    const clientId = String(details.params.client_id ?? '');
    const app = appAsking(clientId);
    const base = `${OAUTH_PREFIX}/interaction/${encodeURIComponent(uid)}`;
    const form = { app, action: `${base}/login`, cancelAction: `${base}/abort` };

    if (action === undefined) return send(res, loginPage(form));
    if (action === 'abort') {
      ctx.log.info('oauth sign-in cancelled', { app: clientId });
      return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'the user cancelled the sign-in' }, { mergeWithLastSubmission: false });
    }
    const body = await readForm(req);
    const username = (body.get('username') ?? '').trim();
    const password = body.get('password') ?? '';
    if (!username || !password) return send(res, loginPage({ ...form, username, error: 'Enter your user name and password.' }));
    let user: User | null = null;
    const address = peerAddress(req.socket.remoteAddress);
    // The Console's audit (console-audit.ts): every password sign-in here, as the API's login route records its own.
    const audit = (status: number): void =>
      ctx.consoleAudit.append({ actor: user?.name ?? null, role: user?.role ?? null, address, method: 'POST', route: 'sign-in page', target: { user: username.slice(0, 64) }, status });
    try {
      if (username.length <= 64 && password.length <= 1024) user = await passwordLogin(ctx.logins, ctx.users, username, password, address);
    } catch (e) {
      if (!(e instanceof DrawbridgeError)) throw e; // 429: the name or address must wait, said on the page
      audit(e.status);
      return send(res, loginPage({ ...form, username, error: `${e.message[0]!.toUpperCase()}${e.message.slice(1)}.` }));
    }
    audit(user ? 200 : 401);
    if (!user) {
      ctx.log.info('oauth sign-in failed', { user: username.slice(0, 64), app: clientId });
      return send(res, loginPage({ ...form, username, error: 'Wrong user name or password.' }));
    }
    const grant = new provider.Grant({ accountId: user.name, clientId });
    const asked = String(details.params.scope ?? '').split(' ').filter((s) => OAUTH_SCOPES.includes(s));
    if (asked.length) grant.addOIDCScope(asked.join(' '));
    const grantId = await grant.save();
    ctx.log.info('oauth sign-in', { user: user.name, app: clientId, grant: grantId, scope: asked.join(' ') || '-' });
    await provider.interactionFinished(req, res, { login: { accountId: user.name, amr: ['pwd'], remember: false }, consent: { grantId } }, { mergeWithLastSubmission: false });
  }

  return async (req, res, path) => {
    const m = PATH.exec(path);
    if (!m) return false;
    try {
      await handle(req, res, m[1]!, m[2]);
    } catch (e) {
      if (res.headersSent) res.destroy();
      else if (e instanceof errors.SessionNotFound) send(res, errorPage(400, 'Sign-in expired', 'This sign-in has expired or was started in another browser. Start again from the app.'));
      else if (e instanceof FormError) send(res, errorPage(e.status, 'Sign-in failed', e.message));
      else {
        ctx.log.error('oauth sign-in page failed', { error: (e as Error).stack ?? String(e) });
        send(res, errorPage(500, 'Sign-in failed', 'Something went wrong on the Console. Start again from the app.'));
      }
    }
    return true;
  };
}
