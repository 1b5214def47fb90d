/**
 * The rules file the Defender enforces.
 *
 * - At start a missing or broken file is fatal: the Defender never serves without rules.
 * - Afterwards the file is polled; a good new version replaces the policy atomically (requests already decided
 *   keep their decision), a broken one keeps the last good rules and logs why, naming rule, field and line.
 */
import { readFileSync, statSync, unwatchFile, watchFile } from 'node:fs';
import { parseRulesFile } from '../shared/policy/access-rules.js';
import { compilePolicy, type Policy } from '../shared/policy/evaluate-policy.js';

export function loadPolicyFile(path: string): Policy {
  return compilePolicy(parseRulesFile(readFileSync(path, 'utf8')));
}

export interface RulesWatcher {
  stop(): void;
}

/** Polls `path` (works across editors' rename-and-replace and on network filesystems). */
export function watchPolicyFile(
  path: string,
  onPolicy: (policy: Policy) => void,
  onError: (err: Error) => void,
  intervalMs = 250,
): RulesWatcher {
  let last = fingerprint(path);
  const listener = (): void => {
    const now = fingerprint(path);
    if (now === last) return;
    last = now;
    try {
      onPolicy(loadPolicyFile(path));
    } catch (err) {
      onError(err as Error);
    }
  };
  watchFile(path, { interval: intervalMs, persistent: false }, listener);
  return { stop: () => unwatchFile(path, listener) };
}

function fingerprint(path: string): string {
  try {
    const s = statSync(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
  } catch {
    return 'missing';
  }
}
