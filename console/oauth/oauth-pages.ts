/**
 * The Console's sign-in pages for apps (server-rendered HTML, no script): the login form, the device code entry
 * and confirmation, the device success page, and errors.
 *
 * - Every dynamic value is HTML-escaped here, nowhere else.
 * - Accessible without a mouse or eyes: one <h1> and <main>, every field has a <label>, the first field that
 *   needs attention gets `autofocus`, an error is a `role="alert"` region the field points to with
 *   `aria-describedby` and `aria-invalid`.
 * - No inline script; the one inline style block is allowed by its hash in the Content-Security-Policy, which
 *   also forbids framing (clickjacking). No `form-action` directive: Chromium applies it to the redirect that
 *   follows a form post, and that redirect goes to the app's loopback address.
 */
import { createHash } from 'node:crypto';

export interface HtmlPage {
  readonly status: number;
  readonly html: string;
  readonly headers: Record<string, string>;
}

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f5f7;color:#1d2430;margin:0}
main{max-width:26rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.15)}
h1{font-size:1.5rem;margin:0 0 1rem}
p{line-height:1.45}
label{display:block;font-weight:600;margin:1rem 0 .25rem}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;font-size:1rem;padding:.6rem;border:1px solid #8a94a6;border-radius:4px}
input:focus-visible,button:focus-visible{outline:3px solid #1a56db;outline-offset:2px}
input[aria-invalid=true]{border-color:#b42318}
.error{color:#b42318;background:#fef3f2;border:1px solid #fda29b;border-radius:4px;padding:.6rem;margin:1rem 0}
.code{font-family:ui-monospace,monospace;font-size:1.6rem;letter-spacing:.15em;text-align:center;margin:1rem 0}
.actions{display:flex;gap:.75rem;margin-top:1.5rem}
button{font-size:1rem;padding:.6rem 1.2rem;border-radius:4px;border:1px solid #1a56db;background:#1a56db;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#1a56db}
.muted{color:#4b5565;font-size:.9rem}
`;
const STYLE_HASH = createHash('sha256').update(STYLE).digest('base64');

export const PAGE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Content-Type': 'text/html; charset=utf-8',
  'Cache-Control': 'no-store',
  'Content-Security-Policy': `default-src 'none'; style-src 'sha256-${STYLE_HASH}'; frame-ancestors 'none'; base-uri 'none'`,
  'X-Frame-Options': 'DENY',
  // Not no-referrer: Chromium then sends `Origin: null` with the form post, which the same-origin check refuses.
  'Referrer-Policy': 'same-origin',
  'X-Content-Type-Options': 'nosniff',
});

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** The app asking, as the pages name it: "Drawbridge CLI wants to get Docker certificates for you". */
export interface AppAsking {
  readonly name: string;
  readonly purpose: string;
}

function layout(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} – Drawbridge Console</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

function page(status: number, title: string, body: string): HtmlPage {
  return { status, html: layout(title, body), headers: { ...PAGE_HEADERS } };
}

function asking(app: AppAsking): string {
  return `<p id="asking"><strong>${escapeHtml(app.name)}</strong> ${escapeHtml(app.purpose)}.</p>`;
}

export interface LoginPageInput {
  readonly app: AppAsking;
  /** Where the form posts (the interaction's own URL: its uid is bound to this browser's interaction cookie). */
  readonly action: string;
  readonly cancelAction: string;
  readonly username?: string;
  readonly error?: string;
}

export function loginPage(input: LoginPageInput): HtmlPage {
  const error = input.error ? `<div id="login-error" class="error" role="alert">${escapeHtml(input.error)}</div>` : '';
  const invalid = input.error ? ' aria-invalid="true" aria-describedby="login-error"' : '';
  const focusPassword = Boolean(input.error && input.username);
  const body = `<h1>Sign in to Drawbridge</h1>
${asking(input.app)}
${error}
<form method="post" action="${escapeHtml(input.action)}" aria-labelledby="asking">
<label for="username">User name</label>
<input type="text" id="username" name="username" autocomplete="username" autocapitalize="none" spellcheck="false" required${input.username ? ` value="${escapeHtml(input.username)}"` : ''}${focusPassword ? '' : ' autofocus'}${invalid}>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required${focusPassword ? ' autofocus' : ''}${invalid}>
<div class="actions">
<button type="submit">Sign in</button>
<button type="submit" class="secondary" form="cancel">Cancel</button>
</div>
</form>
<form id="cancel" method="post" action="${escapeHtml(input.cancelAction)}"></form>
<p class="muted">Only sign in if you started this from ${escapeHtml(input.app.name)} yourself.</p>`;
  return page(input.error ? 401 : 200, 'Sign in', body);
}

export interface DeviceCodeInput {
  readonly action: string;
  readonly xsrf: string;
  readonly userCode?: string;
  readonly error?: string;
}

/** The page at the verification URL: type the code the app shows. */
export function deviceCodePage(input: DeviceCodeInput): HtmlPage {
  const error = input.error ? `<div id="code-error" class="error" role="alert">${escapeHtml(input.error)}</div>` : '';
  const invalid = input.error ? ' aria-invalid="true" aria-describedby="code-error code-help"' : ' aria-describedby="code-help"';
  const body = `<h1>Connect a device</h1>
${error}
<form method="post" action="${escapeHtml(input.action)}">
<input type="hidden" name="xsrf" value="${escapeHtml(input.xsrf)}">
<label for="user_code">Code shown by the app</label>
<input type="text" id="user_code" name="user_code" autocomplete="off" autocapitalize="characters" spellcheck="false" required autofocus${input.userCode ? ` value="${escapeHtml(input.userCode)}"` : ''}${invalid}>
<p id="code-help" class="muted">The app printed it next to this address, for example <span lang="zxx">WDJB-MJHT</span>.</p>
<div class="actions"><button type="submit">Continue</button></div>
</form>`;
  return page(200, 'Connect a device', body);
}

export interface DeviceConfirmInput {
  readonly app: AppAsking;
  readonly action: string;
  readonly xsrf: string;
  readonly userCode: string;
  /** Where the request for the code came from (IP address), to tell a phishing attempt. */
  readonly from?: string;
}

/** After a code was entered: check it is the code your app shows, then sign in. */
export function deviceConfirmPage(input: DeviceConfirmInput): HtmlPage {
  const hidden = `<input type="hidden" name="xsrf" value="${escapeHtml(input.xsrf)}"><input type="hidden" name="user_code" value="${escapeHtml(input.userCode)}">`;
  const body = `<h1>Connect a device</h1>
${asking(input.app)}
<p id="check">Check that the app shows this code${input.from ? ` (it asked from ${escapeHtml(input.from)})` : ''}:</p>
<p class="code" aria-describedby="check"><span lang="zxx">${escapeHtml(input.userCode)}</span></p>
<form method="post" action="${escapeHtml(input.action)}">
${hidden}
<div class="actions">
<button type="submit" name="confirm" value="yes" autofocus>Continue</button>
<button type="submit" class="secondary" name="abort" value="yes">Cancel</button>
</div>
</form>
<p class="muted">If you did not start this yourself, cancel.</p>`;
  return page(200, 'Connect a device', body);
}

export function deviceSuccessPage(app: AppAsking): HtmlPage {
  return page(200, 'Signed in', `<h1>You are signed in</h1>\n<p role="status">${escapeHtml(app.name)} is connected. You can close this page and go back to it.</p>`);
}

export function errorPage(status: number, title: string, message: string): HtmlPage {
  return page(status, title, `<h1>${escapeHtml(title)}</h1>\n<p role="alert">${escapeHtml(message)}</p>`);
}
