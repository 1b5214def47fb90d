// The socket directory check on real directories: one another user could change is refused (othersMayReplace).
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { checkSocketDir } from './listener.js';

const root = mkdtempSync(join(tmpdir(), 'listener-dir-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const isRoot = process.getuid?.() === 0;

describe('checkSocketDir', () => {
  test.each([
    [0o777, 'others may write to it and it is not sticky (mode 777)'],
    [0o757, 'others may write to it and it is not sticky (mode 757)'],
    [0o770, 'others may write to it and it is not sticky (mode 770)'],
    [0o1777, null],
    [0o755, null],
    [0o750, null],
  ])('mode %o', (mode, refusal) => {
    const dir = join(root, mode.toString(8));
    mkdirSync(dir);
    chmodSync(dir, mode);
    if (refusal === null) expect(() => checkSocketDir(dir)).not.toThrow();
    else expect(() => checkSocketDir(dir)).toThrow(refusal);
  });

  test.skipIf(!isRoot)("another user's directory, even 0755", () => {
    const dir = join(root, 'theirs');
    mkdirSync(dir, { mode: 0o755 });
    chownSync(dir, 65534, 65534);
    expect(() => checkSocketDir(dir)).toThrow('it belongs to uid 65534');
  });
});
