/**
 * Child process for the keychain end-to-end test: runs inside a private D-Bus session (or without one) and drives
 * the COMPILED companion secret store (dist/main → companion/secret-store.js) the way the CLI will.
 *
 * - argv[2]: a JSON KeyringChildRequest. stdout: one JSON KeyringChildResponse line. Exit code 0 either way;
 *   anything else means the child itself broke.
 */
import { openSecretStore, type SecretKind } from '../../main/index.js';

export type KeyringOp =
  | { readonly op: 'set'; readonly console: string; readonly kind: SecretKind; readonly value: string }
  | { readonly op: 'get'; readonly console: string; readonly kind: SecretKind }
  | { readonly op: 'delete'; readonly console: string; readonly kind: SecretKind };

export interface KeyringChildRequest {
  readonly stateDir: string;
  readonly service: string;
  readonly allowFileFallback?: boolean;
  readonly ops: readonly KeyringOp[];
}

export type KeyringChildResponse =
  | { readonly ok: true; readonly backend: 'keychain' | 'file'; readonly results: readonly (string | boolean | null)[] }
  | { readonly ok: false; readonly error: { readonly name: string; readonly code?: string; readonly message: string; readonly fallbackFlag?: string } };

async function main(): Promise<KeyringChildResponse> {
  const request = JSON.parse(process.argv[2] ?? '{}') as KeyringChildRequest;
  try {
    const store = await openSecretStore({ stateDir: request.stateDir, service: request.service, allowFileFallback: request.allowFileFallback === true });
    const results: (string | boolean | null)[] = [];
    for (const op of request.ops) {
      if (op.op === 'set') results.push((await store.set(op.console, op.kind, op.value), true));
      else if (op.op === 'get') results.push(await store.get(op.console, op.kind));
      else results.push(await store.delete(op.console, op.kind));
    }
    return { ok: true, backend: store.backend, results };
  } catch (error) {
    const e = error as Error & { code?: string; fallbackFlag?: string };
    return { ok: false, error: { name: e.name, message: e.message, ...(e.code ? { code: e.code } : {}), ...(e.fallbackFlag ? { fallbackFlag: e.fallbackFlag } : {}) } };
  }
}

main().then(
  (response) => process.stdout.write(`${JSON.stringify(response)}\n`),
  (error: Error) => {
    process.stderr.write(`keyring-child: ${error.stack ?? error.message}\n`);
    process.exitCode = 1;
  },
);
