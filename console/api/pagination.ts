/** Keyset pagination for lists: `?limit=1..500&cursor=<opaque>` → `{ items, nextCursor }`. */
import { z } from 'zod';

export const pageQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: z.string().max(512).optional(),
});

export function decodeCursor(cursor: string | undefined): string | null {
  return cursor === undefined ? null : Buffer.from(cursor, 'base64url').toString('utf8');
}

export function page<T>(items: readonly T[], limit: number, keyOf: (item: T) => string): { items: readonly T[]; nextCursor: string | null } {
  const last = items.length === limit ? items[items.length - 1] : undefined;
  return { items, nextCursor: last === undefined ? null : Buffer.from(keyOf(last)).toString('base64url') };
}
