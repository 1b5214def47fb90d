/**
 * The system commands a test file needs, checked up front: a clear "install X" message beats a spawn ENOENT
 * (`npm test`'s bootstrap installs them). test/tools/system.mjs is plain JS shared with bootstrap.mjs.
 */
interface SystemModule {
  ensureSystem(options: { install: boolean; need: string[] }): Promise<void>;
}

export async function requireSystem(need: string[]): Promise<void> {
  const { ensureSystem } = (await import(/* @vite-ignore */ new URL('../tools/system.mjs', import.meta.url).href)) as SystemModule;
  await ensureSystem({ install: false, need });
}
