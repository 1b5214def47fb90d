/**
 * The layering table of STYLE.md, enforced over every import in the repository (tsconfig projects catch part of
 * it; this catches the rest, e.g. main/ reaching into defender/ internals).
 *
 * - Each file gets the rule of the longest folder prefix it lives in (`main/preload` before `main`).
 * - A file may always import files of its own folder (its rule's scope).
 * - Other folders: `any` file, only their public `entry` (`<folder>/index.ts`), or (missing) never.
 * - Packages by name against an allow-list (`*` = any); `electron` and Node built-ins (`node:*` or bare
 *   `fs`, `path`…) have their own switches. Anything escaping the repository or absolute is refused.
 * - Colocated unit tests (`*.test.ts`) may also use `vitest` and Node built-ins.
 * - Specifiers come from TypeScript's own pre-processor (imports, `export … from`, `import()`, `require()`,
 *   `import x = require()`), so comments and strings do not count.
 */
import { readdir, readFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, test } from 'vitest';

type Access = 'any' | 'entry';

interface Layer {
  /** Package names this folder may import; '*' = any. */
  readonly packages: '*' | readonly string[];
  readonly node: boolean;
  readonly electron: boolean;
  /** Other top-level folders it may import from; a folder not listed is never allowed. */
  readonly folders: Readonly<Record<string, Access>>;
}

// prettier-ignore
const LAYERS: Readonly<Record<string, Layer>> = {
  //              packages                                                    node:*  electron  other folders
  'shared':       { packages: ['zod', 'yaml', '@peculiar/x509', '@peculiar/asn1-schema', '@peculiar/asn1-x509', '@peculiar/asn1-csr', '@peculiar/asn1-ecc', 'reflect-metadata'], node: false, electron: false, folders: {} },
  'defender':     { packages: '*', node: true,  electron: false, folders: { shared: 'any' } },
  'console':      { packages: '*', node: true,  electron: false, folders: { shared: 'any' } },
  'main':         { packages: '*', node: true,  electron: true,  folders: { shared: 'any', defender: 'entry', console: 'entry' } },
  'main/preload': { packages: [],  node: false, electron: true,  folders: { shared: 'any' } },
  'renderer':     { packages: [],  node: false, electron: false, folders: { shared: 'any' } },
  'test':         { packages: '*', node: true,  electron: true,  folders: { shared: 'any', defender: 'entry', console: 'entry', main: 'entry', renderer: 'entry' } },
};
// reflect-metadata: the Reflect polyfill @peculiar/x509 (tsyringe) needs before it loads.
// @peculiar/asn1-*: the pure ASN.1 schemas under @peculiar/x509; the certificate profiles encode with them directly.

/** What colocated unit tests get on top of their folder's rule. */
const UNIT_TESTS = { packages: ['vitest'], node: true } as const;

const TOP_FOLDERS = [...new Set(Object.keys(LAYERS).map((scope) => scope.split('/')[0]!))];
const EXTENSIONS = /\.(ts|tsx|mts|cts|mjs)$/;
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Violation {
  readonly file: string;
  readonly line: number;
  readonly specifier: string;
  readonly reason: string;
}

function scopeOf(file: string): string | undefined {
  return Object.keys(LAYERS)
    .filter((scope) => file.startsWith(`${scope}/`))
    .sort((a, b) => b.length - a.length)[0];
}

function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

const isNodeBuiltin = (specifier: string) => specifier.startsWith('node:') || builtinModules.includes(packageName(specifier));

/** Why `specifier`, imported from `file`, breaks the table; undefined when it does not. */
function judge(file: string, specifier: string): string | undefined {
  const scope = scopeOf(file);
  if (!scope) return `${file} is outside the layered folders`;
  const layer = LAYERS[scope]!;
  const unitTest = /\.test\.tsx?$/.test(file);

  if (specifier.startsWith('.')) {
    const target = posix.normalize(posix.join(posix.dirname(file), specifier));
    if (target === '..' || target.startsWith('../')) return 'escapes the repository';
    if (target.startsWith(`${scope}/`)) return undefined;
    const folder = target.split('/')[0]!;
    const access = layer.folders[folder];
    if (!access || !TOP_FOLDERS.includes(folder)) return `${scope}/ never imports ${folder}/`;
    if (access === 'entry' && target.replace(/\.[mc]?[jt]sx?$/, '') !== `${folder}/index`) {
      return `${scope}/ imports ${folder}/ only through ${folder}/index.ts`;
    }
    return undefined;
  }
  if (specifier.startsWith('/') || (/^[a-z][\w+.-]*:/i.test(specifier) && !specifier.startsWith('node:'))) {
    return 'absolute or URL import';
  }
  if (isNodeBuiltin(specifier)) {
    return layer.node || unitTest ? undefined : `${scope}/ never imports Node built-ins (${specifier})`;
  }
  const name = packageName(specifier);
  if (name === 'electron') return layer.electron ? undefined : `${scope}/ never imports electron`;
  const allowed = layer.packages === '*' || layer.packages.includes(name) || (unitTest && UNIT_TESTS.packages.includes(name as 'vitest'));
  return allowed ? undefined : `${scope}/ may not import the package ${name}`;
}

/** Every violation in one file's source text (file is repository-relative, with forward slashes). */
function checkSource(file: string, text: string): Violation[] {
  const lineStarts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) lineStarts.push(i + 1);
  const lineOf = (pos: number) => lineStarts.findLastIndex((start) => start <= pos) + 1;
  const { importedFiles } = ts.preProcessFile(text, true, true);
  const violations: Violation[] = [];
  for (const { fileName: specifier, pos } of importedFiles) {
    const reason = judge(file, specifier);
    if (reason) violations.push({ file, line: lineOf(pos), specifier, reason });
  }
  return violations.sort((a, b) => a.line - b.line);
}

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(posix.join(ROOT, dir), { withFileTypes: true }).catch(() => []);
  const files: string[] = [];
  for (const entry of entries) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && entry.name !== 'dist' && !entry.name.startsWith('.')) files.push(...(await sourceFiles(path)));
    } else if (EXTENSIONS.test(entry.name)) {
      files.push(path);
    }
  }
  return files;
}

const format = (v: Violation) => `${v.file}:${v.line}: '${v.specifier}': ${v.reason}`;

test('every import in the repository follows the layering table', async () => {
  const files = (await Promise.all(TOP_FOLDERS.map(sourceFiles))).flat();
  expect(files).toContain('test/support/layering.test.ts');
  const violations: Violation[] = [];
  for (const file of files) violations.push(...checkSource(file, await readFile(posix.join(ROOT, file), 'utf8')));
  expect(violations.map(format)).toEqual([]);
});

describe('the checker', () => {
  test('catches violations in fake files and reports their lines', () => {
    const source = [
      "import { z } from 'zod';",
      "import { readFile } from 'node:fs/promises';",
      '// import { server } from "../defender/server.js";',
      "const s = \"import x from '../main/x.js'\";",
      "export { route } from '../defender/routes.js';",
      "const lazy = await import('express');",
      "import { rule } from './policy/rule.js';",
    ].join('\n');
    expect(checkSource('shared/policy.ts', source).map(format)).toEqual([
      "shared/policy.ts:2: 'node:fs/promises': shared/ never imports Node built-ins (node:fs/promises)",
      "shared/policy.ts:5: '../defender/routes.js': shared/ never imports defender/",
      "shared/policy.ts:6: 'express': shared/ may not import the package express",
    ]);
  });

  test.each([
    // file, import, expected reason (undefined = allowed)
    ['shared/a/b.ts', '../c.js', undefined],
    ['shared/a.ts', 'fs', 'shared/ never imports Node built-ins (fs)'],
    ['shared/a.test.ts', 'node:assert', undefined],
    ['shared/a.test.ts', 'vitest', undefined],
    ['shared/a.ts', 'vitest', 'shared/ may not import the package vitest'],
    ['shared/a.ts', '@peculiar/x509', undefined],
    ['shared/a.ts', '../../etc/passwd', 'escapes the repository'],
    ['defender/a.ts', '../console/index.js', 'defender/ never imports console/'],
    ['console/a.ts', '../main/index.js', 'console/ never imports main/'],
    ['defender/a.ts', '../renderer/app.js', 'defender/ never imports renderer/'],
    ['defender/a.ts', 'electron', 'defender/ never imports electron'],
    ['defender/a.ts', '../shared/policy/evaluate.js', undefined],
    ['main/a.ts', '../defender/index.js', undefined],
    ['main/a.ts', '../defender/server/listen.js', 'main/ imports defender/ only through defender/index.ts'],
    ['main/a.ts', '../renderer/index.js', 'main/ never imports renderer/'],
    ['main/a.ts', 'electron', undefined],
    ['main/preload/index.ts', '../ipc/handlers.js', 'main/preload/ never imports main/'],
    ['main/preload/index.ts', 'node:path', 'main/preload/ never imports Node built-ins (node:path)'],
    ['main/preload/index.ts', '../../shared/ipc/contract.js', undefined],
    ['renderer/app.ts', '../shared/ipc/contract.js', undefined],
    ['renderer/app.ts', 'electron', 'renderer/ never imports electron'],
    ['renderer/app.ts', '../main/ipc.js', 'renderer/ never imports main/'],
    ['test/e2e/x.test.ts', '../../defender/index.js', undefined],
    ['test/e2e/x.test.ts', '../../defender/proxy.js', 'test/ imports defender/ only through defender/index.ts'],
    ['test/e2e/x.test.ts', '../support/dockerd.js', undefined],
    ['test/support/pki.ts', '../../shared/identity/certificate-identity.js', undefined],
    ['test/tools/start.ts', '../../main/cli/drawbridge.js', 'test/ imports main/ only through main/index.ts'],
    ['console/a.ts', 'file:///etc/x.js', 'absolute or URL import'],
  ] as const)('%s importing %s', (file, specifier, reason) => {
    expect(judge(file, specifier)).toBe(reason);
  });
});
