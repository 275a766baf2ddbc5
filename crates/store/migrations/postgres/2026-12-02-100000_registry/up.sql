-- The built-in registry's metadata (PostgreSQL): blobs, which repositories hold them, manifests with their exact
-- bytes and what they reference, tags and upload sessions. Blob contents live on disk, under
-- <data-dir>/registry. Keep in step with ../../sqlite/2026-12-02-100000_registry/up.sql and src/schema.rs.

-- A blob whose digest was verified and whose file is in place.
CREATE TABLE registry_blobs (
    digest TEXT PRIMARY KEY NOT NULL,
    size BIGINT NOT NULL CHECK (size >= 0),
    created_at BIGINT NOT NULL
);

-- A repository holds a blob once it was pushed or mounted there.
CREATE TABLE registry_repository_blobs (
    repository TEXT NOT NULL,
    digest TEXT NOT NULL REFERENCES registry_blobs (digest),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (repository, digest)
);

CREATE INDEX registry_repository_blobs_digest ON registry_repository_blobs (digest);

CREATE TABLE registry_manifests (
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    artifact_type TEXT,
    size BIGINT NOT NULL,
    content BYTEA NOT NULL,
    -- The manifest this one refers to (the referrers API), and its annotations as JSON.
    subject TEXT,
    annotations TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (repository, digest)
);

CREATE INDEX registry_manifests_subject ON registry_manifests (repository, subject) WHERE subject IS NOT NULL;

-- What a manifest references: its config and layers (`blob`) or, for an index, its manifests (`manifest`).
CREATE TABLE registry_manifest_references (
    repository TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    position INTEGER NOT NULL,
    digest TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
    size BIGINT NOT NULL,
    PRIMARY KEY (repository, manifest_digest, position),
    FOREIGN KEY (repository, manifest_digest) REFERENCES registry_manifests (repository, digest) ON DELETE CASCADE
);

CREATE INDEX registry_manifest_references_digest ON registry_manifest_references (digest);

CREATE TABLE registry_tags (
    repository TEXT NOT NULL,
    tag TEXT NOT NULL,
    digest TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (repository, tag),
    FOREIGN KEY (repository, digest) REFERENCES registry_manifests (repository, digest) ON DELETE CASCADE
);

-- An upload in progress: its file is <data-dir>/registry/uploads/<id>, of which the first `size` bytes were
-- received whole.
CREATE TABLE registry_uploads (
    id TEXT PRIMARY KEY NOT NULL,
    repository TEXT NOT NULL,
    size BIGINT NOT NULL CHECK (size >= 0),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
