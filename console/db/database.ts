/**
 * The Console's embedded SQLite database (better-sqlite3): WAL, foreign keys on, migrations applied at open.
 * The file lives in the data directory with mode 0600; sensitive columns are sealed with the master key by the
 * modules that own them, never stored in clear.
 */
import Database from 'better-sqlite3';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { consoleErrors } from '../errors.js';
import { MIGRATIONS } from './migrations.js';

export type Db = Database.Database;

export function openDatabase(dataDir: string): Db {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, 'console.db');
  const db = new Database(file);
  chmodSync(file, 0o600);
  db.pragma('journal_mode = WAL');
  db.pragma('foreign_keys = ON');
  // Deleted rows are overwritten, not left in free pages: a secret removed (or sealed again with a new master key)
  // does not linger in the file.
  db.pragma('secure_delete = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db);
  return db;
}

export function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw consoleErrors.config(`the database schema (version ${current}) is newer than this Console (${MIGRATIONS.length}); upgrade the Console`);
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

export function nowIso(): string {
  return new Date().toISOString();
}
