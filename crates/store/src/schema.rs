//! The tables, as both backends' migrations create them.
//!
//! Timestamps are microseconds since the Unix epoch (UTC) and ids are 64-bit on both backends, so one
//! description serves both; `models` converts rows to the domain's types.

diesel::table! {
    images (id) {
        id -> BigInt,
        image_name -> Text,
        registry -> Text,
        namespace -> Text,
        description -> Nullable<Text>,
        category -> Nullable<Text>,
        is_official -> Bool,
        approval_status -> Text,
        approved_by -> Nullable<Text>,
        approved_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    image_tags (id) {
        id -> BigInt,
        image_id -> BigInt,
        tag -> Text,
        digest -> Nullable<Text>,
        size_bytes -> Nullable<BigInt>,
        architecture -> Nullable<Text>,
        os -> Nullable<Text>,
        pushed_at -> Nullable<BigInt>,
        is_recommended -> Bool,
        is_deprecated -> Bool,
        security_scan_status -> Nullable<Text>,
        vulnerabilities_count -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    image_approval_requests (id) {
        id -> BigInt,
        image_name -> Text,
        registry -> Text,
        namespace -> Text,
        tag -> Nullable<Text>,
        requested_by -> Text,
        requested_at -> BigInt,
        status -> Text,
        reviewed_by -> Nullable<Text>,
        reviewed_at -> Nullable<BigInt>,
        notes -> Nullable<Text>,
        rejection_reason -> Nullable<Text>,
        image_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        event_type -> Text,
        actor -> Text,
        occurred_at -> BigInt,
        image_id -> Nullable<BigInt>,
        tag_id -> Nullable<BigInt>,
        request_id -> Nullable<BigInt>,
        details -> Text,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        password_hash -> Text,
        role -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        user_id -> BigInt,
        token_hash -> Text,
        name -> Text,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        last_used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    jobs (id) {
        id -> BigInt,
        job_type -> Text,
        payload -> Text,
        priority -> Integer,
        run_at -> BigInt,
        attempts -> Integer,
        max_attempts -> Integer,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    imports (id) {
        id -> BigInt,
        source -> Text,
        target -> Text,
        source_registry -> Text,
        source_repository -> Text,
        target_registry -> Text,
        target_repository -> Text,
        target_tag -> Nullable<Text>,
        platforms -> Text,
        state -> Text,
        attempts -> Integer,
        max_attempts -> Integer,
        timeout_secs -> BigInt,
        error -> Nullable<Text>,
        description -> Nullable<Text>,
        created_by -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        started_at -> Nullable<BigInt>,
        finished_at -> Nullable<BigInt>,
        digest -> Nullable<Text>,
        artifacts -> Text,
        layers -> Text,
        job_id -> Nullable<BigInt>,
        registry_secret_namespace -> Nullable<Text>,
        registry_secret_name -> Nullable<Text>,
    }
}

diesel::table! {
    exports (id) {
        id -> BigInt,
        registry_host -> Text,
        repository -> Text,
        tag -> Text,
        source -> Nullable<Text>,
        description -> Nullable<Text>,
        created_by -> Text,
        phase -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    registry_secrets (id) {
        id -> BigInt,
        namespace -> Text,
        name -> Text,
        display_name -> Nullable<Text>,
        description -> Nullable<Text>,
        domain -> Text,
        username -> Text,
        password_sealed -> Text,
        provider -> Text,
        insecure -> Bool,
        ca_bundle -> Nullable<Text>,
        verify_status -> Text,
        verify_message -> Nullable<Text>,
        verify_timestamp -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    repositories (id) {
        id -> BigInt,
        namespace -> Text,
        name -> Text,
        display_name -> Nullable<Text>,
        description -> Nullable<Text>,
        repository -> Text,
        tag -> Text,
        registry_ref_namespace -> Text,
        registry_ref_name -> Text,
        sync_interval_secs -> BigInt,
        sync_timeout_secs -> BigInt,
        retry_count -> Integer,
        sync_status -> Nullable<Text>,
        sync_message -> Nullable<Text>,
        last_synced -> Nullable<BigInt>,
        next_sync_at -> BigInt,
        manifest -> Nullable<Text>,
        job_id -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    sessions (id) {
        id -> BigInt,
        user_id -> BigInt,
        id_hash -> Text,
        created_at -> BigInt,
        last_seen_at -> BigInt,
    }
}

diesel::table! {
    station_registries (secret_id) {
        secret_id -> BigInt,
        url -> Text,
        version -> Text,
        enable_trust_cert -> Bool,
    }
}

diesel::table! {
    station_downloads (import_id) {
        import_id -> BigInt,
        location -> Text,
        icon -> Text,
    }
}

diesel::table! {
    node_inventories (name) {
        name -> Text,
        runtime_name -> Nullable<Text>,
        runtime_version -> Nullable<Text>,
        last_report_at -> Nullable<BigInt>,
        last_attempt_at -> BigInt,
        last_error -> Nullable<Text>,
        interval_secs -> BigInt,
        images -> Text,
    }
}

diesel::table! {
    catalog_generation (id) {
        id -> Integer,
        generation -> BigInt,
    }
}

diesel::table! {
    robots (id) {
        id -> BigInt,
        name -> Text,
        secret_hash -> Text,
        repositories -> Text,
        actions -> Text,
        created_by -> Text,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
    }
}

// Kept by triggers; see migrations/*/2026-12-02-200000_search_index.
diesel::table! {
    catalog_counts (approval_status, category) {
        approval_status -> Text,
        category -> Text,
        image_count -> BigInt,
    }
}

diesel::table! {
    import_counts (state) {
        state -> Text,
        import_count -> BigInt,
    }
}

diesel::joinable!(image_tags -> images (image_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(imports -> jobs (job_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(station_registries -> registry_secrets (secret_id));

diesel::allow_tables_to_appear_in_same_query!(
    images,
    image_tags,
    image_approval_requests,
    audit_events,
    users,
    api_tokens,
    jobs,
    imports,
    exports,
    registry_secrets,
    repositories,
    sessions,
    station_registries,
    station_downloads,
    node_inventories,
    catalog_generation,
    robots,
    catalog_counts,
    import_counts
);

// The built-in registry (crates/oci-registry); see migrations/*/2026-12-02-100000_registry.

diesel::table! {
    registry_blobs (digest) {
        digest -> Text,
        size -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    registry_repository_blobs (repository, digest) {
        repository -> Text,
        digest -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    registry_manifests (repository, digest) {
        repository -> Text,
        digest -> Text,
        media_type -> Text,
        artifact_type -> Nullable<Text>,
        size -> BigInt,
        content -> Binary,
        subject -> Nullable<Text>,
        annotations -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    registry_manifest_references (repository, manifest_digest, position) {
        repository -> Text,
        manifest_digest -> Text,
        position -> Integer,
        digest -> Text,
        kind -> Text,
        size -> BigInt,
    }
}

diesel::table! {
    registry_tags (repository, tag) {
        repository -> Text,
        tag -> Text,
        digest -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    registry_uploads (id) {
        id -> Text,
        repository -> Text,
        size -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

// Garbage collection selects blobs that no manifest reference names.
diesel::allow_tables_to_appear_in_same_query!(registry_blobs, registry_manifest_references);
