"""The SQLite schema, one migration script per version (``PRAGMA user_version``).

A released script never changes: a new version appends a script. `SQLiteStore.open` runs the
ones a database has not had, each in its own transaction.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MIGRATIONS"]

# One script per schema version; version N is reached by running scripts[:N] in order.
MIGRATIONS: Final = (
    """
    CREATE TABLE users (
        user_id       TEXT PRIMARY KEY,
        scope         TEXT NOT NULL,
        username      TEXT NOT NULL,
        username_key  TEXT NOT NULL,
        email         TEXT,
        email_key     TEXT,
        password_hash TEXT NOT NULL,
        active        INTEGER NOT NULL,
        confirmation  TEXT,
        user_group    TEXT,
        extra         TEXT,
        created       INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX users_username ON users (scope, username_key);
    CREATE UNIQUE INDEX users_email ON users (scope, email_key);
    CREATE TABLE login_events (
        id         INTEGER PRIMARY KEY,
        user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
        at         REAL NOT NULL,
        remote     TEXT,
        user_agent TEXT
    );
    CREATE INDEX login_events_user ON login_events (user_id, at);
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
        created    REAL NOT NULL,
        last_seen  REAL NOT NULL,
        expires    REAL NOT NULL
    );
    CREATE INDEX sessions_user ON sessions (user_id);
    """,
    # 2: email keys are NFKC-normalised too (corelogin_email_key is store.base.email_key).
    """
    UPDATE users SET email_key = corelogin_email_key(email) WHERE email IS NOT NULL;
    """,
    # 3: one-time codes of mailed links (confirmation, password reset).
    """
    CREATE TABLE codes (
        code_hash TEXT PRIMARY KEY,
        user_id   TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
        purpose   TEXT NOT NULL,
        created   REAL NOT NULL,
        expires   REAL NOT NULL,
        used      REAL,
        counted   INTEGER NOT NULL,
        mail      TEXT
    );
    CREATE INDEX codes_user ON codes (user_id, purpose);
    """,
    # 4: links of users to OAuth providers; an identity is linked once per scope and provider.
    """
    CREATE TABLE provider_links (
        user_id             TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
        scope               TEXT NOT NULL,
        provider            TEXT NOT NULL,
        client_id           TEXT NOT NULL,
        access_token        TEXT,
        access_token_expiry INTEGER,
        created             REAL NOT NULL,
        PRIMARY KEY (user_id, provider)
    );
    CREATE UNIQUE INDEX provider_identity ON provider_links (scope, provider, client_id);
    """,
    # 5: failed logins by username or email (known or not), and the lockout of each identifier:
    # the failures after counted_after (a failed_logins id, never reused) count; locked until
    # locked_until.
    """
    CREATE TABLE failed_logins (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        scope      TEXT NOT NULL,
        identifier TEXT NOT NULL,
        at         REAL NOT NULL,
        remote     TEXT,
        user_agent TEXT,
        reason     TEXT NOT NULL
    );
    CREATE INDEX failed_logins_identifier ON failed_logins (scope, identifier, at);
    CREATE INDEX failed_logins_at ON failed_logins (scope, at);
    CREATE TABLE lockouts (
        scope         TEXT NOT NULL,
        identifier    TEXT NOT NULL,
        counted_after INTEGER NOT NULL,
        locked_until  REAL,
        PRIMARY KEY (scope, identifier)
    );
    """,
    # 6: the admin page (issue 12). Operators (the server's, not a scope's) and their sessions,
    # which end with them; the audit log, which outlives them (no foreign key: it keeps the
    # name). users.last_login, kept by open_session, filled here from the login events; with
    # users_created, the indexes the pages of users walk (keyset pagination, newest first).
    """
    CREATE TABLE operators (
        name          TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created       REAL NOT NULL
    );
    CREATE TABLE admin_sessions (
        token_hash TEXT PRIMARY KEY,
        operator   TEXT NOT NULL REFERENCES operators (name) ON DELETE CASCADE,
        created    REAL NOT NULL,
        expires    REAL NOT NULL,
        last_seen  REAL NOT NULL
    );
    CREATE INDEX admin_sessions_operator ON admin_sessions (operator);
    CREATE TABLE audit_log (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        at       REAL NOT NULL,
        operator TEXT NOT NULL,
        action   TEXT NOT NULL,
        scope    TEXT,
        target   TEXT,
        detail   TEXT
    );
    CREATE INDEX audit_log_scope ON audit_log (scope, id);
    CREATE INDEX audit_log_target ON audit_log (target, id);
    ALTER TABLE users ADD COLUMN last_login REAL;
    UPDATE users SET last_login = (
        SELECT max(e.at) FROM login_events e WHERE e.user_id = users.user_id
    ) WHERE user_id IN (SELECT user_id FROM login_events);
    CREATE INDEX users_created ON users (scope, created, user_id);
    CREATE INDEX users_last_login ON users (scope, last_login, user_id);
    """,
)
