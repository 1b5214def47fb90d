import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { deviceCodePage, deviceConfirmPage, errorPage, escapeHtml, loginPage, PAGE_HEADERS } from './oauth-pages.js';

const app = { name: 'Drawbridge CLI', purpose: 'wants to get Docker certificates for you' };
const form = { app, action: '/oauth/interaction/abc/login', cancelAction: '/oauth/interaction/abc/abort' };

describe('escapeHtml', () => {
  it.each([
    ['<script>alert(1)</script>', '&lt;script&gt;alert(1)&lt;/script&gt;'],
    [`" onfocus="x`, '&quot; onfocus=&quot;x'],
    ["it's & more", 'it&#39;s &amp; more'],
  ])('%s', (input, out) => expect(escapeHtml(input)).toBe(out));
});

describe('loginPage', () => {
  it('labels every field, says which app asks, focuses the user name', () => {
    const { html, status } = loginPage(form);
    expect(status).toBe(200);
    expect(html).toContain('<p id="asking"><strong>Drawbridge CLI</strong> wants to get Docker certificates for you.</p>');
    expect(html).toContain('<label for="username">User name</label>');
    expect(html).toContain('<label for="password">Password</label>');
    expect(html).toMatch(/id="username"[^>]*autofocus/);
    expect(html).not.toContain('role="alert"');
    expect(html).not.toContain('<script');
  });

  it('shows an error inline, keeps the (escaped) user name, moves focus to the password', () => {
    const { html, status } = loginPage({ ...form, username: '"><img src=x>', error: 'Wrong user name or password.' });
    expect(status).toBe(401);
    expect(html).toContain('<div id="login-error" class="error" role="alert">Wrong user name or password.</div>');
    expect(html).toContain('value="&quot;&gt;&lt;img src=x&gt;"');
    expect(html).toMatch(/id="password"[^>]*autofocus aria-invalid="true" aria-describedby="login-error"/);
    expect(html).not.toMatch(/id="username"[^>]*autofocus/);
  });

  it('allows its one style block by hash, and forbids framing', () => {
    const { html, headers } = loginPage(form);
    const style = /<style>([\s\S]*?)<\/style>/.exec(html)![1]!;
    expect(headers['Content-Security-Policy']).toContain(`style-src 'sha256-${createHash('sha256').update(style).digest('base64')}'`);
    expect(headers['Content-Security-Policy']).toContain("frame-ancestors 'none'");
    expect(headers['Content-Security-Policy']).not.toContain('form-action'); // it would block the redirect to the app
    expect(PAGE_HEADERS['X-Frame-Options']).toBe('DENY');
  });
});

describe('device pages', () => {
  it('labels the code field and carries the form token', () => {
    const { html } = deviceCodePage({ action: '/oauth/device', xsrf: 'x"y', error: 'There is no such code.' });
    expect(html).toContain('<label for="user_code">Code shown by the app</label>');
    expect(html).toContain('name="xsrf" value="x&quot;y"');
    expect(html).toContain('role="alert">There is no such code.</div>');
  });

  it('shows the code to compare, with Continue and Cancel', () => {
    const { html } = deviceConfirmPage({ app, action: '/oauth/device', xsrf: 's', userCode: 'BCDF-GHJK', from: '10.0.0.5' });
    expect(html).toContain('<span lang="zxx">BCDF-GHJK</span>');
    expect(html).toContain('it asked from 10.0.0.5');
    expect(html).toContain('name="confirm" value="yes"');
    expect(html).toContain('name="abort" value="yes"');
  });

  it('escapes error pages', () => {
    expect(errorPage(400, 'Oops', '<b>x</b>').html).toContain('<p role="alert">&lt;b&gt;x&lt;/b&gt;</p>');
  });
});
