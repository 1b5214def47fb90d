/**
 * Schema migrations, applied in order inside one transaction each; `PRAGMA user_version` records the last one.
 * Never edit a migration that has shipped: add the next one.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: users, sessions, CA, certificates, install tokens, rules, Defenders, join tokens, audit
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE users (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    password_hash TEXT,
    role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'auditor', 'user')),
    groups_json TEXT NOT NULL DEFAULT '[]',
    source TEXT NOT NULL DEFAULT 'local',
    created_at TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
  );
  CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
  );
  CREATE TABLE ca (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    cert_pem TEXT NOT NULL,
    key_sealed TEXT NOT NULL,
    created_at TEXT NOT NULL
  );
  CREATE TABLE certificates (
    serial TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'defender', 'console')),
    subject_name TEXT NOT NULL,
    groups_json TEXT NOT NULL DEFAULT '[]',
    not_before TEXT NOT NULL,
    not_after TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    session_hash TEXT
  );
  CREATE INDEX certificates_subject ON certificates(kind, subject_name);
  CREATE TABLE install_tokens (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    expires_at TEXT NOT NULL,
    used_at TEXT
  );
  CREATE TABLE rules (
    id INTEGER PRIMARY KEY,
    position INTEGER NOT NULL,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    effect TEXT NOT NULL,
    users_json TEXT NOT NULL,
    groups_json TEXT NOT NULL,
    hosts_json TEXT NOT NULL,
    actions_json TEXT NOT NULL
  );
  CREATE TABLE join_tokens (
    token_hash TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    single_use INTEGER NOT NULL,
    uses INTEGER NOT NULL DEFAULT 0
  );
  CREATE TABLE defenders (
    host_name TEXT PRIMARY KEY COLLATE NOCASE,
    address TEXT,
    version TEXT,
    listener_json TEXT NOT NULL,
    cert_serial TEXT,
    policy_version INTEGER NOT NULL DEFAULT 0,
    enrolled_at TEXT NOT NULL,
    last_seen TEXT
  );
  CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    defender TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time TEXT NOT NULL,
    user_name TEXT,
    groups_json TEXT NOT NULL,
    host TEXT NOT NULL,
    action TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    decision TEXT NOT NULL,
    rule TEXT,
    status INTEGER,
    client TEXT,
    reason TEXT,
    UNIQUE (defender, seq)
  );
  CREATE INDEX audit_time ON audit(time);
  CREATE INDEX audit_user ON audit(user_name, time);
  `,
  // 2: an install token is bound to the login session that asked for it (its end bounds the certificate's)
  `
  ALTER TABLE install_tokens ADD COLUMN session_hash TEXT;
  `,
  // 3: Defenders: a server certificate kind of its own (only kind 'defender', the client certificate, may
  // authenticate to the Console), the listener an admin pinned, what the Defender reports, its audit backlog
  `
  CREATE TABLE certificates_3 (
    serial TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('user', 'defender', 'defender-server', 'console')),
    subject_name TEXT NOT NULL,
    groups_json TEXT NOT NULL DEFAULT '[]',
    not_before TEXT NOT NULL,
    not_after TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    session_hash TEXT
  );
  INSERT INTO certificates_3 (serial, kind, subject_name, groups_json, not_before, not_after, created_at, revoked_at, session_hash)
    SELECT serial, kind, subject_name, groups_json, not_before, not_after, created_at, revoked_at, session_hash FROM certificates;
  DROP TABLE certificates;
  ALTER TABLE certificates_3 RENAME TO certificates;
  CREATE INDEX certificates_subject ON certificates(kind, subject_name);
  ALTER TABLE defenders ADD COLUMN server_cert_serial TEXT;
  ALTER TABLE defenders ADD COLUMN listener_pinned INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE defenders ADD COLUMN reported_listener_json TEXT;
  ALTER TABLE defenders ADD COLUMN audit_backlog INTEGER NOT NULL DEFAULT 0;
  `,
  // 4: OAuth for native apps (console/oauth): oidc-provider's models (grants, tokens, codes, sessions,
  // interactions), one row each, keyed by SHA-256 of model and id so refresh and access token values are never
  // stored; the id is sealed only where a lookup must give it back (device codes by user code, sessions by uid)
  `
  CREATE TABLE oauth_models (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    payload_json TEXT NOT NULL,
    id_sealed TEXT,
    grant_id TEXT,
    account_id TEXT,
    user_code_hash TEXT,
    uid TEXT,
    expires_at INTEGER
  );
  CREATE INDEX oauth_models_grant ON oauth_models(grant_id) WHERE grant_id IS NOT NULL;
  CREATE INDEX oauth_models_account ON oauth_models(account_id COLLATE NOCASE) WHERE account_id IS NOT NULL;
  CREATE INDEX oauth_models_user_code ON oauth_models(user_code_hash) WHERE user_code_hash IS NOT NULL;
  CREATE INDEX oauth_models_uid ON oauth_models(model, uid) WHERE uid IS NOT NULL;
  CREATE INDEX oauth_models_expires ON oauth_models(expires_at) WHERE expires_at IS NOT NULL;
  `,
  // 5: secrets (console/secrets): stores (the whole configuration sealed: it holds credentials), the built-in
  // store's values, secret rules in order, and the last good value of every secret a rule names (sealed) with
  // the outcome of the latest fetch
  `
  CREATE TABLE secret_stores (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    kind TEXT NOT NULL,
    config_sealed TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE TABLE builtin_secrets (
    store TEXT NOT NULL COLLATE NOCASE REFERENCES secret_stores(name) ON DELETE CASCADE,
    path TEXT NOT NULL,
    value_sealed TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (store, path)
  );
  CREATE TABLE secret_rules (
    id INTEGER PRIMARY KEY,
    position INTEGER NOT NULL,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    rule_json TEXT NOT NULL
  );
  CREATE TABLE secret_values (
    ref_key TEXT PRIMARY KEY,
    store TEXT NOT NULL COLLATE NOCASE,
    path TEXT NOT NULL,
    key TEXT,
    value_sealed TEXT,
    fetched_at TEXT,
    checked_at TEXT,
    error_code TEXT,
    error TEXT
  );
  `,
  // 6: audit events carry the secret rules and secret names a request involved (never a value)
  `
  ALTER TABLE audit ADD COLUMN secrets_json TEXT;
  `,
  // 7: Defender certificate renewal: the server certificate's SANs on record (renewal reissues exactly these), and
  // the client certificate a renewal replaced, revoked once the Defender authenticates with the new one
  `
  ALTER TABLE defenders ADD COLUMN server_names_json TEXT;
  ALTER TABLE defenders ADD COLUMN previous_cert_serial TEXT;
  `,
  // 8: a join token may be made for one host name (the only way to enrol a name that is already enrolled)
  `
  ALTER TABLE join_tokens ADD COLUMN host_name TEXT;
  `,
  // 9: the Console's own audit trail (console/audit/console-audit.ts): who changed what through it
  `
  CREATE TABLE console_audit (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    actor TEXT,
    role TEXT,
    address TEXT,
    method TEXT NOT NULL,
    route TEXT NOT NULL,
    target_json TEXT NOT NULL,
    status INTEGER NOT NULL
  );
  `,
  // 10: a Defender's audit seqs are its enrolment's (audit-store.ts): each enrolment records an id (its first
  // client certificate's serial; '' for Defenders enrolled before), and events are unique per (Defender, seq,
  // enrolment), so what a holder of an old key posted cannot block or pre-empt the seqs of a re-enrolled Defender
  `
  ALTER TABLE defenders ADD COLUMN audit_enrolment TEXT NOT NULL DEFAULT '';
  CREATE TABLE audit_by_enrolment (
    id INTEGER PRIMARY KEY,
    defender TEXT NOT NULL,
    enrolment TEXT NOT NULL DEFAULT '',
    seq INTEGER NOT NULL,
    time TEXT NOT NULL,
    user_name TEXT,
    groups_json TEXT NOT NULL,
    host TEXT NOT NULL,
    action TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    decision TEXT NOT NULL,
    rule TEXT,
    status INTEGER,
    client TEXT,
    reason TEXT,
    secrets_json TEXT,
    UNIQUE (defender, seq, enrolment)
  );
  INSERT INTO audit_by_enrolment (id, defender, enrolment, seq, time, user_name, groups_json, host, action, method, path, decision, rule, status, client, reason, secrets_json)
    SELECT id, defender, '', seq, time, user_name, groups_json, host, action, method, path, decision, rule, status, client, reason, secrets_json FROM audit;
  DROP TABLE audit;
  ALTER TABLE audit_by_enrolment RENAME TO audit;
  CREATE INDEX audit_time ON audit(time);
  CREATE INDEX audit_user ON audit(user_name, time);
  CREATE INDEX audit_enrolment_seq ON audit(defender, enrolment, seq);
  `,
];
