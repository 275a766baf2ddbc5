-- Sign-in sessions: only a SHA-256 of the session id is kept.
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    id_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
) STRICT;

CREATE INDEX sessions_user_id ON sessions (user_id);

-- What the station API (seed 003) adds to a registry secret.
CREATE TABLE station_registries (
    secret_id INTEGER PRIMARY KEY REFERENCES registry_secrets (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    version TEXT NOT NULL,
    enable_trust_cert INTEGER NOT NULL CHECK (enable_trust_cert IN (0, 1))
) STRICT;

-- What a station download keeps beside its import: the image's page and icon, as the client sent them.
CREATE TABLE station_downloads (
    import_id INTEGER PRIMARY KEY REFERENCES imports (id) ON DELETE CASCADE,
    location TEXT NOT NULL,
    icon TEXT NOT NULL
) STRICT;
