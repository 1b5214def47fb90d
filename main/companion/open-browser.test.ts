import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { browserCommand, openBrowser } from './open-browser.js';

describe('openBrowser', () => {
  it('runs DRAWBRIDGE_BROWSER with the URL as one argument, never as shell text', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'db-browser-'));
    try {
      const out = join(dir, 'url');
      const url = "https://c.example/oauth/auth?a=1&b='$(touch pwned)';x";
      expect(await openBrowser(url, { DRAWBRIDGE_BROWSER: `printf '%s' > '${out}'` })).toBe(true);
      const seen = await (async () => {
        for (let i = 0; i < 100; i++) {
          const text = await readFile(out, 'utf8').catch(() => '');
          if (text) return text;
          await new Promise((r) => setTimeout(r, 20));
        }
        return '';
      })();
      expect(seen).toBe(url);
      await expect(readFile(join(process.cwd(), 'pwned'))).rejects.toThrow();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('does not try xdg-open without a display', async () => {
    expect(await openBrowser('https://x.example', {}, 'linux')).toBe(false);
  });

  it('hands the URL over as one argument on every platform, never to cmd (which would read | ^ % & in it)', () => {
    const url = 'https://c.example/auth?a=1&b=2|calc^%PATH%';
    expect(browserCommand(url, {}, 'win32')).toEqual({ command: 'rundll32', args: ['url.dll,FileProtocolHandler', url] });
    expect(browserCommand(url, {}, 'darwin')).toEqual({ command: 'open', args: [url] });
    expect(browserCommand(url, { DISPLAY: ':0' }, 'linux')).toEqual({ command: 'xdg-open', args: [url] });
  });

  it.each(['file:///etc/passwd', 'javascript:alert(1)', 'ms-settings:', 'not a url'])('opens no %s (only http and https)', async (url) => {
    expect(browserCommand(url, { DISPLAY: ':0', DRAWBRIDGE_BROWSER: 'true' }, 'linux')).toBeNull();
    expect(browserCommand(url, {}, 'win32')).toBeNull();
  });
});
