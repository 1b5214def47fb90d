import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { StartedTwiceError, startLoopbackRedirect } from './loopback-redirect.js';

function get(url: string): Promise<{ status: number; body: string; csp: string | undefined; location: string | undefined }> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode ?? 0, body, csp: res.headers['content-security-policy'] as string | undefined, location: res.headers.location }));
    }).on('error', reject).end();
  });
}

describe('the loopback redirect receiver', () => {
  it('listens on 127.0.0.1, ignores other paths and other states, and holds the browser until respond()', async () => {
    const receiver = await startLoopbackRedirect('the-state');
    expect(receiver.redirectUri).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    expect(receiver.startUrl).toBe(receiver.redirectUri.replace('/callback', '/start'));
    receiver.begin('https://console.example/oauth/auth?state=the-state');
    const waiting = receiver.wait(new AbortController().signal);
    expect((await get(receiver.redirectUri.replace('/callback', '/favicon.ico'))).status).toBe(404);
    expect((await get(`${receiver.redirectUri}?code=c&state=the-state`)).status).toBe(400); // not before /start
    const start = await get(receiver.startUrl);
    expect([start.status, start.location]).toEqual([302, 'https://console.example/oauth/auth?state=the-state']);
    const wrong = await get(`${receiver.redirectUri}?code=c&state=other`);
    expect(wrong.status).toBe(400);
    expect(wrong.body).not.toContain('other'); // nothing from the query is echoed
    const browser = get(`${receiver.redirectUri}?code=c&state=the-state`);
    const arrived = await waiting;
    expect(arrived.url.searchParams.get('code')).toBe('c');
    arrived.respond({ ok: true, title: 'Signed in', text: 'Your <contexts> are ready.' });
    const page = await browser;
    expect(page.status).toBe(200);
    expect(page.body).toContain('Your &#60;contexts&#62; are ready.');
    expect(page.body).toContain('You can close this tab.');
    expect(page.csp).toContain("default-src 'none'");
    // A second redirect with the same state (a reload) is not a second login.
    expect((await get(`${receiver.redirectUri}?code=d&state=the-state`)).status).toBe(400);
    await receiver.close();
  });

  it('a second visit of /start ends the login: someone other than the browser has the address', async () => {
    const receiver = await startLoopbackRedirect('s');
    receiver.begin('https://console.example/oauth/auth?state=s');
    const waiting = receiver.wait(new AbortController().signal);
    waiting.catch(() => undefined);
    expect((await get(receiver.startUrl)).status).toBe(302);
    const second = await get(receiver.startUrl);
    expect(second.status).toBe(409);
    expect(second.location).toBeUndefined();
    await expect(waiting).rejects.toBeInstanceOf(StartedTwiceError);
    expect((await get(`${receiver.redirectUri}?code=c&state=s`)).status).toBe(400); // nothing arrives after that
    await receiver.close();
  });

  it('stops waiting when the signal aborts, with its reason', async () => {
    const receiver = await startLoopbackRedirect('s');
    const controller = new AbortController();
    const waiting = receiver.wait(controller.signal);
    controller.abort(new Error('Ctrl-C'));
    await expect(waiting).rejects.toThrow('Ctrl-C');
    await receiver.close();
  });
});
