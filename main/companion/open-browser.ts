/**
 * Opens the system browser on a URL, for the loopback login.
 *
 * - `DRAWBRIDGE_BROWSER` (a shell command; the URL is appended as one argument) wins: users pick a browser, tests
 *   drive a real headless Chromium through it.
 * - Otherwise the platform's opener: `open` (macOS), `cmd /c start "" URL` (Windows), `xdg-open` elsewhere, and
 *   on Linux only when there is a display to open it on.
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

/** Resolves to whether a browser (or the override) was started. */
export function openBrowser(url: string, env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): Promise<boolean> {
  const override = env.DRAWBRIDGE_BROWSER;
  if (override) return launch('/bin/sh', ['-c', `${override} "$1"`, 'drawbridge-browser', url]);
  if (platform === 'darwin') return launch('open', [url]);
  if (platform === 'win32') return launch('cmd', ['/c', 'start', '""', url.replace(/&/g, '^&')]);
  if (!env.DISPLAY && !env.WAYLAND_DISPLAY) return Promise.resolve(false);
  return launch('xdg-open', [url]);
}
