// The socket directory check on real directories: one every user may write to is refused unless it is sticky.
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { checkSocketDir } from './listener.js';

const root = mkdtempSync(join(tmpdir(), 'listener-dir-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('checkSocketDir', () => {
  test.each([
    [0o777, 'writable by every user and not sticky (mode 777)'],
    [0o757, 'writable by every user and not sticky (mode 757)'],
    [0o1777, null],
    [0o755, null],
    [0o770, null],
  ])('mode %o', (mode, refusal) => {
    const dir = join(root, mode.toString(8));
    mkdirSync(dir);
    chmodSync(dir, mode);
    if (refusal === null) expect(() => checkSocketDir(dir)).not.toThrow();
    else expect(() => checkSocketDir(dir)).toThrow(refusal);
  });
});
