/**
 * Opens the system browser on a URL, for the loopback login.
 *
 * - `DRAWBRIDGE_BROWSER` (a shell command; the URL is appended as one argument) wins: users pick a browser, tests
 *   drive a real headless Chromium through it.
 * - Otherwise the platform's opener: `open` (macOS), `rundll32 url.dll,FileProtocolHandler URL` (Windows),
 *   `xdg-open` elsewhere, and on Linux only when there is a display to open it on. Only http(s) URLs are opened.
 * - Never fatal: the caller always prints the URL too, so a missing or failing opener just means "open it yourself".
 */
import { spawn } from 'node:child_process';

export type BrowserOpener = (url: string) => Promise<boolean>;

function launch(command: string, args: readonly string[]): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      const child = spawn(command, [...args], { stdio: 'ignore', detached: true });
      child.once('error', () => resolve(false));
      child.once('spawn', () => {
        child.unref();
        resolve(true);
      });
    } catch {
      resolve(false);
    }
  });
}

/**
 * The command that opens `url` (null: no opener here, or not an http(s) URL). The URL comes from the Console's
 * discovery document, so it is never shell text: one argument, and on Windows through rundll32's URL handler
 * (`cmd /c start` would read `|`, `^` or `%` in it as cmd syntax). Another scheme (`file:`, a custom protocol
 * handler) is not opened.
 */
export function browserCommand(url: string, env: NodeJS.ProcessEnv, platform: NodeJS.Platform): { command: string; args: string[] } | null {
  if (!URL.canParse(url) || !['http:', 'https:'].includes(new URL(url).protocol)) return null;
  const override = env.DRAWBRIDGE_BROWSER;
  if (override) return { command: '/bin/sh', args: ['-c', `${override} "$1"`, 'drawbridge-browser', url] };
  if (platform === 'darwin') return { command: 'open', args: [url] };
  if (platform === 'win32') return { command: 'rundll32', args: ['url.dll,FileProtocolHandler', url] };
  if (!env.DISPLAY && !env.WAYLAND_DISPLAY) return null;
  return { command: 'xdg-open', args: [url] };
}

/** Resolves to whether a browser (or the override) was started. */
export function openBrowser(url: string, env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): Promise<boolean> {
  const opener = browserCommand(url, env, platform);
  return opener === null ? Promise.resolve(false) : launch(opener.command, opener.args);
}
