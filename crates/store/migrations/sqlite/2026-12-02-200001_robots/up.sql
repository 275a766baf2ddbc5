-- Robot accounts of the built-in registry: only a SHA-256 of the secret is kept. `repositories` is a JSON
-- array of patterns (`team/app`, `team/*`, `*`), `actions` a JSON array of `pull`, `push`, `delete`.
CREATE TABLE robots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL UNIQUE,
    repositories TEXT NOT NULL,
    actions TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
) STRICT;
