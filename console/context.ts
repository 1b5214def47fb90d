/** The Console's services, built once at start and handed to every route. */
import type { ConsoleAuditStore } from './audit/console-audit.js';
import type { LoginThrottle } from './auth/login-throttle.js';
import type { ConsoleCa } from './ca/console-ca.js';
import type { ConsoleConfig } from './config.js';
import type { MasterKey } from './crypto/master-key.js';
import type { Db } from './db/database.js';
import type { SessionStore } from './auth/session-store.js';
import type { UserStore } from './auth/user-store.js';
import type { PolicyClock } from './policy/policy-clock.js';
import type { SecretsService } from './secrets/secrets-service.js';

export interface ConsoleLog {
  info(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export interface ConsoleContext {
  readonly config: ConsoleConfig;
  readonly db: Db;
  readonly masterKey: MasterKey;
  readonly ca: ConsoleCa;
  readonly users: UserStore;
  readonly sessions: SessionStore;
  /** Failed password logins slow down the next ones (per name, per address). */
  readonly logins: LoginThrottle;
  /** Who changed what through the Console (console/audit/console-audit.ts). */
  readonly consoleAudit: ConsoleAuditStore;
  readonly policy: PolicyClock;
  readonly secrets: SecretsService;
  readonly log: ConsoleLog;
  /** The SHA-256 pin of the Console's TLS public key, as curl's --pinnedpubkey takes it (`sha256//…`). */
  readonly tlsPin: string;
}
