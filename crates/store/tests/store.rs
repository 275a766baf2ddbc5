//! `DbStore` against real databases: every test in `on_both_backends!` runs once on SQLite (a file in a
//! temporary directory) and once on PostgreSQL (a fresh schema in the database that
//! `IMAGEGATE_TEST_DATABASE_URL` points at; `cargo xtask pg` starts one).

use std::collections::HashSet;
use std::sync::Arc;

use image_core::{
    Digest, Error, Reference,
    auth::{NewUser, Role, TokenId, UserId, UserUpdate},
    catalog::{
        ApprovalRequestFilter, ApprovalRequestId, ApprovalStatus, Decision, ImageFilter, ImageId, ImageUpdate,
        NewApprovalRequest, NewImage, NewTag, Page, TagId, TagUpdate,
    },
    event::{EventFilter, kind},
    import::{
        Artifact, AttemptOutcome, BlobCopy, EnqueueOutcome, ExportId, ExportPhase, ExportRecord, ImportFilter,
        ImportId, ImportJob, ImportOrder, ImportState, LayerProgress, LayerState, NewImport,
    },
    kube::{
        NewRegistrySecret, NewRepository, Provider, RepositoryId, Secret, SyncStatus, SyncedManifest, VerifyStatus,
    },
    store::{CatalogStore, ClaimedJob, HealthCheck, ImportStore, JobId, JobQueue, KubeStore, ScanQueue, UserStore},
};
use serde_json::json;
use store::{DbStore, SYNC_JOB_TYPE, SecretKey, StoreOptions, import_kind, kube_kind};
use time::{Duration, OffsetDateTime};

const ADMIN: &str = "alice";

/// A store on a fresh database, and how to reach that database again.
struct TestDb {
    store: DbStore,
    url: String,
    /// The store's secret key, which encrypts registry passwords.
    key: SecretKey,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        // A directory that does not exist yet: `connect` creates it.
        let url = format!("sqlite://{}", dir.path().join("data").join("imagegate.db").display());
        let key = SecretKey::generate();
        let store = DbStore::connect_with(&url, StoreOptions { secret_key: Some(key.clone()) }).await.unwrap();
        assert_eq!(store.backend_name(), "sqlite");
        TestDb { store, url, key, _dir: Some(dir) }
    }

    async fn postgres() -> TestDb {
        let url = test_support::postgres_url().await;
        let key = SecretKey::generate();
        let store = DbStore::connect_with(&url, StoreOptions { secret_key: Some(key.clone()) }).await.unwrap();
        assert_eq!(store.backend_name(), "postgres");
        TestDb { store, url, key, _dir: None }
    }

    /// Another store on the same database, with these options.
    async fn reconnect(&self, options: StoreOptions) -> DbStore {
        DbStore::connect_with(&self.url, options).await.unwrap()
    }
}

/// Each test, once per backend: `sqlite::name` and `postgres::name`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::TestDb::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::TestDb::postgres().await).await;
                }
            )*
        }
    };
}

on_both_backends!(
    seed_data_is_present,
    robots_are_stored_with_the_hash_of_their_secret,
    a_sync_retry_records_its_status_and_requeues_its_job_together,
    a_target_held_by_another_source_is_refused,
    a_sync_that_moves_a_catalog_tag_records_it,
    images_are_created_read_updated_and_deleted_with_events,
    a_duplicate_image_conflicts_and_writes_nothing,
    images_are_filtered_searched_and_paged,
    search_finds_substrings_through_the_index_as_like_does,
    categories_are_counted,
    tags_are_added_updated_and_deleted,
    one_tag_per_image_is_recommended,
    concurrent_recommendations_leave_exactly_one,
    a_tag_of_another_image_is_not_found,
    approval_requests_are_created_and_listed_by_status,
    approving_a_request_creates_the_image_and_its_tag,
    approving_a_request_approves_an_existing_image,
    a_request_is_decided_once,
    rejecting_a_request_stores_the_reason,
    events_are_filtered_and_paged_newest_first,
    users_and_tokens,
    expired_tokens_are_ignored,
    users_are_listed_changed_and_deleted,
    the_last_admin_stays,
    tokens_are_listed_and_revoked,
    migrations_are_idempotent,
    imports_are_queued_once,
    an_import_keeps_the_registry_secret_it_names,
    concurrent_enqueues_queue_one_import,
    a_claimed_job_is_not_claimed_again,
    concurrent_workers_claim_each_job_once,
    an_expired_lease_passes_to_another_worker,
    a_retried_job_waits_for_its_time,
    running_out_of_attempts_fails_the_import,
    a_successful_import_adds_its_image_and_tag_to_the_catalog,
    concurrent_successes_add_one_catalog_image,
    progress_round_trips,
    canceling_removes_the_job,
    active_imports_are_found_by_target,
    an_active_import_is_not_deleted,
    a_catalog_image_with_an_active_import_is_not_deleted,
    imports_are_filtered_ordered_and_paged,
    exports_are_recorded_and_listed,
    job_types_are_counted,
    registry_secrets_are_created_read_listed_and_deleted,
    a_duplicate_registry_secret_conflicts_and_writes_nothing,
    repositories_are_created_read_listed_and_deleted,
    a_duplicate_repository_conflicts_and_writes_nothing,
    a_repository_needs_its_registry_secret,
    a_registry_secret_in_use_is_not_deleted,
    verifications_are_recorded,
    passwords_are_sealed_at_rest,
    a_key_file_is_private_and_reused,
    syncs_are_queued_when_due,
    concurrent_schedulers_queue_each_repository_once,
    a_triggered_sync_is_queued_once,
    sync_outcomes_are_recorded,
    a_sync_job_finds_its_repository_and_secret,
    queued_jobs_are_announced_on_postgres,
    retention_removes_only_what_is_old,
    one_retention_job_is_queued_at_a_time,
    a_push_beside_imagegate_is_recorded_and_its_delete_forgotten,
    pending_scans_are_queued_once,
    the_data_version_moves_with_every_write,
    a_change_made_outside_the_store_is_read_at_once,
    a_kept_token_stops_working_when_it_expires_or_is_revoked,
    every_table_announces_its_changes_on_postgres,
);

fn new_image(name: &str, category: Option<&str>, description: Option<&str>) -> NewImage {
    NewImage::new(
        name,
        None,
        None,
        description.map(str::to_owned),
        category.map(str::to_owned),
        true,
        ApprovalStatus::Pending,
    )
    .unwrap()
}

fn new_tag(tag: &str, is_recommended: bool) -> NewTag {
    NewTag::new(tag).unwrap().with_recommended(is_recommended)
}

fn all() -> ImageFilter {
    ImageFilter { page: Page::new(Some(1000), None).unwrap(), ..ImageFilter::default() }
}

async fn event_count(store: &DbStore) -> i64 {
    store.list_events(&EventFilter::default()).await.unwrap().total
}

async fn recommended(store: &DbStore, image_id: ImageId) -> Vec<String> {
    let tags = store.list_tags(image_id).await.unwrap();
    tags.into_iter().filter(|t| t.is_recommended).map(|t| t.tag).collect()
}

/// When the token was last used, read behind the store's back.
async fn token_last_used_at(db: &TestDb, token_hash: &str) -> Option<OffsetDateTime> {
    use diesel::{
        dsl::sql,
        sql_types::{BigInt, Nullable},
    };
    use diesel_async::{
        AsyncConnection, AsyncPgConnection, RunQueryDsl, sync_connection_wrapper::SyncConnectionWrapper,
    };

    let query = diesel::select(
        sql::<Nullable<BigInt>>("(SELECT last_used_at FROM api_tokens WHERE token_hash = ")
            .bind::<diesel::sql_types::Text, _>(token_hash.to_owned())
            .sql(")"),
    );
    let micros: Option<i64> = match db.url.strip_prefix("sqlite://") {
        Some(path) => {
            let mut conn = SyncConnectionWrapper::<diesel::SqliteConnection>::establish(path).await.unwrap();
            query.get_result(&mut conn).await.unwrap()
        }
        None => query.get_result(&mut AsyncPgConnection::establish(&db.url).await.unwrap()).await.unwrap(),
    };
    micros.map(|us| OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).unwrap())
}

#[track_caller]
fn assert_not_found(result: Result<impl std::fmt::Debug, Error>, kind: &str, id: impl std::fmt::Display) {
    match result {
        Err(Error::NotFound { kind: k, id: i }) if k == kind && i == id.to_string() => {}
        other => panic!("expected {kind} {id} not found, got {other:?}"),
    }
}

#[track_caller]
fn assert_conflict(result: Result<impl std::fmt::Debug, Error>, message: &str) {
    match result {
        // Name clashes, dependents and states that forbid the change: each its own code, all refusals.
        Err(e @ (Error::Conflict(_) | Error::AlreadyExists(_) | Error::InUse(_))) if e.to_string() == message => {}
        other => panic!("expected conflict `{message}`, got {other:?}"),
    }
}

async fn seed_data_is_present(db: TestDb) {
    let store = &db.store;
    store.ping().await.unwrap();

    let listing = store.list_images(&all()).await.unwrap();
    assert_eq!(listing.total, 9);
    let names: Vec<String> = listing.items.iter().map(|s| s.image.repository()).collect();
    assert_eq!(
        names,
        [
            "library/redis",
            "library/postgres",
            "library/mysql",
            "library/mongo",
            "library/influxdb",
            "library/nginx",
            "library/node",
            "library/python",
            "grafana/grafana"
        ]
    );
    for summary in &listing.items {
        let image = &summary.image;
        assert_eq!(image.registry, "docker.io");
        assert_eq!(image.approval_status, ApprovalStatus::Approved);
        assert_eq!(image.approved_by.as_deref(), Some("system"));
        assert!(image.approved_at.is_some() && image.description.is_some());
        assert_eq!(image.is_official, image.namespace == "library", "{}", image.repository());
        let expected_tags = if image.image_name == "redis" { 4 } else { 0 };
        assert_eq!(summary.tag_count, expected_tags, "{}", image.repository());
    }

    let redis = store.find_image("docker.io", "library", "redis").await.unwrap().unwrap();
    assert_eq!((redis.id, redis.category.as_deref()), (ImageId::new(1), Some("database")));
    let tags = store.list_tags(redis.id).await.unwrap();
    let names: Vec<&str> = tags.iter().map(|t| t.tag.as_str()).collect();
    assert_eq!(names, ["7-alpine", "7.2-alpine", "7.4-alpine", "latest"]);
    assert_eq!(recommended(store, redis.id).await, ["7-alpine"]);
    assert!(tags.iter().all(|t| t.architecture.as_deref() == Some("amd64") && t.os.as_deref() == Some("linux")));

    let grafana = store.find_image("docker.io", "grafana", "grafana").await.unwrap().unwrap();
    assert_eq!((grafana.category.as_deref(), grafana.is_official), (Some("monitoring"), false));
    assert_eq!(store.find_image("docker.io", "library", "grafana").await.unwrap(), None);

    assert_eq!(event_count(store).await, 0);
    assert_eq!(store.count_users().await.unwrap(), 0);
}

async fn images_are_created_read_updated_and_deleted_with_events(db: TestDb) {
    let store = &db.store;
    let created =
        store.create_image(new_image("portainer-ce", Some("management"), Some("Container UI")), ADMIN).await.unwrap();
    assert_eq!(created.approval_status, ApprovalStatus::Pending);
    assert_eq!((created.approved_by.as_deref(), created.approved_at), (None, None));
    assert_eq!(created.created_at, created.updated_at);
    assert_eq!(store.get_image(created.id).await.unwrap(), created);
    assert_eq!(store.find_image("docker.io", "library", "portainer-ce").await.unwrap(), Some(created.clone()));

    // Approving records who and when; the update bumps updated_at.
    let update = ImageUpdate {
        description: Some(Some("Lightweight container management UI".into())),
        approval_status: Some(ApprovalStatus::Approved),
        ..ImageUpdate::default()
    };
    let approved = store.update_image(created.id, update, "bob").await.unwrap();
    assert_eq!(approved.approval_status, ApprovalStatus::Approved);
    assert_eq!(approved.approved_by.as_deref(), Some("bob"));
    assert_eq!(approved.approved_at, Some(approved.updated_at));
    assert!(approved.updated_at > created.updated_at);
    assert_eq!(store.get_image(created.id).await.unwrap(), approved);

    // An update that changes nothing changes nothing.
    let same = ImageUpdate { approval_status: Some(ApprovalStatus::Approved), ..ImageUpdate::default() };
    assert_eq!(store.update_image(created.id, same, ADMIN).await.unwrap(), approved);

    // Moving away from approved forgets the approval; a category can be cleared.
    let update =
        ImageUpdate { approval_status: Some(ApprovalStatus::Rejected), category: Some(None), ..ImageUpdate::default() };
    let rejected = store.update_image(created.id, update, ADMIN).await.unwrap();
    assert_eq!((rejected.approved_by, rejected.approved_at, rejected.category), (None, None, None));

    store.create_tag(created.id, new_tag("2.21", true), ADMIN).await.unwrap();
    let deleted = store.delete_image(created.id, ADMIN).await.unwrap();
    assert_eq!(deleted.id, created.id);
    assert_not_found(store.get_image(created.id).await, "image", created.id);
    assert_not_found(store.list_tags(created.id).await, "image", created.id);
    assert_not_found(store.delete_image(created.id, ADMIN).await, "image", created.id);
    assert_not_found(store.update_image(ImageId::new(42_000), ImageUpdate::default(), ADMIN).await, "image", 42_000);

    let events =
        store.list_events(&EventFilter { image_id: Some(created.id), ..EventFilter::default() }).await.unwrap().items;
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        [kind::IMAGE_DELETED, kind::TAG_ADDED, kind::IMAGE_UPDATED, kind::IMAGE_UPDATED, kind::IMAGE_ADDED]
    );
    assert!(events.iter().all(|e| e.image_id == Some(created.id)));
    let added = &events[4];
    assert_eq!((added.actor.as_str(), added.details.clone()), (ADMIN, json!(created)));
    let first_update = &events[3];
    assert_eq!(first_update.actor, "bob");
    assert_eq!(first_update.details["before"], json!(created));
    assert_eq!(first_update.details["after"], json!(approved));
    assert_eq!(
        first_update.details["changes"],
        json!(["approval_status", "approved_at", "approved_by", "description"])
    );
    assert_eq!(events[2].details["changes"], json!(["approval_status", "approved_at", "approved_by", "category"]));
    let removed = &events[0].details;
    assert_eq!(removed["image_name"], "portainer-ce");
    assert_eq!(removed["tags"][0]["tag"], "2.21");
}

async fn a_duplicate_image_conflicts_and_writes_nothing(db: TestDb) {
    let store = &db.store;
    let events = event_count(store).await;
    assert_conflict(
        store.create_image(new_image("redis", None, None), ADMIN).await,
        "image docker.io/library/redis already exists",
    );
    assert_eq!(event_count(store).await, events);
    assert_eq!(store.list_images(&all()).await.unwrap().total, 9);

    // Same name elsewhere is another image.
    let other =
        NewImage::new("redis", Some("ghcr.io"), Some("acme"), None, None, false, ApprovalStatus::Pending).unwrap();
    let other = store.create_image(other, ADMIN).await.unwrap();
    assert_eq!(event_count(store).await, events + 1);
    let again = NewImage::new("redis", Some("GHCR.io"), Some("acme"), None, None, false, ApprovalStatus::Approved);
    assert_conflict(store.create_image(again.unwrap(), ADMIN).await, "image ghcr.io/acme/redis already exists");
    let rootless =
        NewImage::new("app", Some("registry.example.com"), None, None, None, false, ApprovalStatus::Pending).unwrap();
    store.create_image(rootless.clone(), ADMIN).await.unwrap();
    assert_conflict(store.create_image(rootless, ADMIN).await, "image registry.example.com/app already exists");
    assert_eq!(event_count(store).await, events + 2);
    assert_eq!(store.get_image(other.id).await.unwrap(), other);
}

async fn images_are_filtered_searched_and_paged(db: TestDb) {
    let store = &db.store;
    let list = |filter: ImageFilter| async move {
        let listing = store.list_images(&filter).await.unwrap();
        let names: Vec<String> = listing.items.into_iter().map(|s| s.image.image_name).collect();
        (names, listing.total)
    };
    let percent =
        store.create_image(new_image("percent", Some("tools"), Some("100% Rust, 0% C")), ADMIN).await.unwrap();
    store.create_image(new_image("under_score", Some("tools"), Some("1000 Rust")), ADMIN).await.unwrap();
    store.create_image(new_image("plain", None, Some("Uppercase REDIS fan club")), ADMIN).await.unwrap();

    let pending = ImageFilter { status: Some(ApprovalStatus::Pending), ..all() };
    assert_eq!(list(pending).await, (vec!["percent".into(), "under_score".into(), "plain".into()], 3));
    let rejected = ImageFilter { status: Some(ApprovalStatus::Rejected), ..all() };
    assert_eq!(list(rejected).await, (vec![], 0));
    let runtime = ImageFilter { category: Some("runtime".into()), ..all() };
    assert_eq!(list(runtime).await, (vec!["node".into(), "python".into()], 2));
    let not_a_prefix = ImageFilter { category: Some("data".into()), ..all() };
    assert_eq!(list(not_a_prefix).await.1, 0);

    // Case-insensitive, in the name or the description.
    let redis = ImageFilter { search: Some("ReDiS".into()), ..all() };
    assert_eq!(list(redis).await, (vec!["redis".into(), "plain".into()], 2));
    let described = ImageFilter { search: Some("document".into()), ..all() };
    assert_eq!(list(described).await, (vec!["mongo".into()], 1));
    // `%` and `_` are literal characters, not wildcards.
    let percent_sign = ImageFilter { search: Some("%".into()), ..all() };
    assert_eq!(list(percent_sign).await, (vec!["percent".into()], 1));
    let underscore = ImageFilter { search: Some("_".into()), ..all() };
    assert_eq!(list(underscore).await, (vec!["under_score".into()], 1));
    let backslash = ImageFilter { search: Some("\\".into()), ..all() };
    assert_eq!(list(backslash).await.1, 0);
    let combined = ImageFilter {
        search: Some("rust".into()),
        category: Some("tools".into()),
        status: Some(ApprovalStatus::Pending),
        ..all()
    };
    assert_eq!(list(combined).await.1, 2);

    // Pages by id; the total ignores paging.
    let page = ImageFilter { page: Page::new(Some(3), Some(3)).unwrap(), ..ImageFilter::default() };
    assert_eq!(list(page).await, (vec!["mongo".into(), "influxdb".into(), "nginx".into()], 12));
    let last = ImageFilter { page: Page::new(Some(5), Some(10)).unwrap(), ..ImageFilter::default() };
    assert_eq!(list(last).await, (vec!["under_score".into(), "plain".into()], 12));
    let beyond = ImageFilter { page: Page::new(Some(5), Some(100)).unwrap(), ..ImageFilter::default() };
    assert_eq!(list(beyond).await, (vec![], 12));
    // A cursor: the images after an id, in the same order, with the whole listing's total.
    let ids: Vec<ImageId> = store.list_images(&all()).await.unwrap().items.iter().map(|s| s.image.id).collect();
    let after = ImageFilter { after: Some(ids[2]), page: Page::new(Some(3), None).unwrap(), ..ImageFilter::default() };
    assert_eq!(list(after).await, (vec!["mongo".into(), "influxdb".into(), "nginx".into()], 12));
    let skipping =
        ImageFilter { after: Some(ids[2]), page: Page::new(Some(2), Some(1)).unwrap(), ..ImageFilter::default() };
    assert_eq!(list(skipping).await, (vec!["influxdb".into(), "nginx".into()], 12));
    let searched = ImageFilter { search: Some("rust".into()), after: Some(ids[11]), ..all() };
    let (names, total) = list(searched.clone()).await;
    assert!(names.is_empty(), "{names:?}");
    assert_eq!(total, list(ImageFilter { after: None, ..searched }).await.1);
    assert!(total > 0);

    let summaries = store.list_images(&ImageFilter { search: Some("percent".into()), ..all() }).await.unwrap();
    assert_eq!(summaries.items[0].image, percent);
    assert_eq!(summaries.items[0].tag_count, 0);
}

async fn search_finds_substrings_through_the_index_as_like_does(db: TestDb) {
    let store = &db.store;
    let search = |text: &'static str| async move {
        let filter = ImageFilter { search: Some(text.into()), ..all() };
        let listing = store.list_images(&filter).await.unwrap();
        let names: Vec<String> = listing.items.into_iter().map(|s| s.image.image_name).collect();
        assert_eq!(names.len() as i64, listing.total, "{text}");
        names
    };
    let quoted =
        store.create_image(new_image("quoted", None, Some(r#"says "hello" to "everyone""#)), ADMIN).await.unwrap();
    store.create_image(new_image("a_b-tool", None, Some("50%off and more")), ADMIN).await.unwrap();
    store.create_image(new_image("axb-tool", None, Some("50 percent off")), ADMIN).await.unwrap();
    store.create_image(new_image("long-name-with-redis-inside", None, None), ADMIN).await.unwrap();
    store.create_image(new_image("deja", None, Some("déjà vu, in UTF-8")), ADMIN).await.unwrap();

    // Any substring of the name or the description, in any case, as long or as short as it is.
    assert_eq!(search("ReDiS").await, ["redis", "long-name-with-redis-inside"]);
    assert_eq!(search("NAME-WITH-redis-INS").await, ["long-name-with-redis-inside"]);
    assert_eq!(search("ngo").await, ["mongo"]);
    assert_eq!(search("go").await, ["mongo"]);
    assert_eq!(search("x").await, ["influxdb", "nginx", "axb-tool"]);
    assert_eq!(search("déjà vu").await, ["deja"]);
    assert_eq!(search("jà").await, ["deja"]);
    assert!(search("redis-outside").await.is_empty());
    // Not words: text across spaces and punctuation, and no stemming or prefix magic.
    assert_eq!(search("s \"hel").await, ["quoted"]);
    assert_eq!(search(r#"lo" to "ev"#).await, ["quoted"]);
    assert!(search("database*").await.is_empty());
    assert!(search("sayings").await.is_empty());
    // What is syntax to LIKE or to the full-text index is a literal character.
    assert_eq!(search(r#""hello""#).await, ["quoted"]);
    assert_eq!(search("\"").await, ["quoted"]);
    assert_eq!(search("a_b").await, ["a_b-tool"]);
    assert_eq!(search("50%off").await, ["a_b-tool"]);
    assert_eq!(search("%").await, ["a_b-tool"]);
    assert!(search("50%o_f").await.is_empty());
    assert!(search("hello OR redis").await.is_empty());
    assert!(search("NEAR(redis mongo)").await.is_empty());

    // The index follows every change, in the change's transaction.
    let update = ImageUpdate { description: Some(Some("greets nobody".into())), ..ImageUpdate::default() };
    store.update_image(quoted.id, update, ADMIN).await.unwrap();
    assert!(search("hello").await.is_empty());
    assert_eq!(search("nobody").await, ["quoted"]);
    let update = ImageUpdate { description: Some(None), ..ImageUpdate::default() };
    store.update_image(quoted.id, update, ADMIN).await.unwrap();
    assert!(search("nobody").await.is_empty());
    assert_eq!(search("quoted").await, ["quoted"]);
    store.delete_image(quoted.id, ADMIN).await.unwrap();
    assert!(search("quoted").await.is_empty());
    // Filters and paging apply to what the search finds.
    let page = ImageFilter { search: Some("tool".into()), page: Page::new(Some(1), Some(1)).unwrap(), ..all() };
    let listing = store.list_images(&page).await.unwrap();
    assert_eq!((listing.items[0].image.image_name.as_str(), listing.total), ("axb-tool", 2));
    let approved = ImageFilter { search: Some("redis".into()), status: Some(ApprovalStatus::Approved), ..all() };
    let listing = store.list_images(&approved).await.unwrap();
    assert_eq!((listing.items[0].image.image_name.as_str(), listing.total), ("redis", 1));
}

async fn categories_are_counted(db: TestDb) {
    let store = &db.store;
    let counts = |pairs: &[(&str, i64)]| pairs.iter().map(|(c, n)| (c.to_string(), *n)).collect::<Vec<_>>();
    assert_eq!(
        store.categories().await.unwrap(),
        counts(&[("database", 5), ("runtime", 2), ("monitoring", 1), ("web", 1)])
    );
    let caddy = store.create_image(new_image("caddy", Some("web"), None), ADMIN).await.unwrap();
    let portainer = store.create_image(new_image("portainer", Some("management"), None), ADMIN).await.unwrap();
    let uncategorised = store.create_image(new_image("uncategorised", None, None), ADMIN).await.unwrap();
    assert_eq!(
        store.categories().await.unwrap(),
        counts(&[("database", 5), ("runtime", 2), ("web", 2), ("management", 1), ("monitoring", 1)])
    );

    // The counts (kept by triggers) follow every change: a category moved, set, cleared, an image deleted;
    // so do the listings' totals, which are read from them.
    let total = |status: Option<ApprovalStatus>, category: Option<&str>| {
        let filter = ImageFilter { status, category: category.map(str::to_owned), ..all() };
        async move { store.list_images(&filter).await.unwrap().total }
    };
    let set_category =
        |category: Option<&str>| ImageUpdate { category: Some(category.map(str::to_owned)), ..ImageUpdate::default() };
    store.update_image(caddy.id, set_category(Some("proxy")), ADMIN).await.unwrap();
    store.update_image(uncategorised.id, set_category(Some("management")), ADMIN).await.unwrap();
    store.update_image(ImageId::new(1), set_category(None), ADMIN).await.unwrap();
    store.delete_image(portainer.id, ADMIN).await.unwrap();
    assert_eq!(
        store.categories().await.unwrap(),
        counts(&[("database", 4), ("runtime", 2), ("management", 1), ("monitoring", 1), ("proxy", 1), ("web", 1)])
    );
    assert_eq!(total(None, None).await, 11);
    assert_eq!(total(Some(ApprovalStatus::Pending), None).await, 2);
    assert_eq!(total(Some(ApprovalStatus::Approved), Some("database")).await, 4);
    let approve = ImageUpdate { approval_status: Some(ApprovalStatus::Approved), ..ImageUpdate::default() };
    store.update_image(caddy.id, approve, ADMIN).await.unwrap();
    let reject = ImageUpdate { approval_status: Some(ApprovalStatus::Rejected), ..ImageUpdate::default() };
    store.update_image(ImageId::new(2), reject, ADMIN).await.unwrap();
    assert_eq!(total(Some(ApprovalStatus::Pending), None).await, 1);
    assert_eq!(total(Some(ApprovalStatus::Approved), None).await, 9);
    assert_eq!(total(Some(ApprovalStatus::Rejected), Some("database")).await, 1);
    assert_eq!(total(Some(ApprovalStatus::Approved), Some("proxy")).await, 1);
    assert_eq!(total(Some(ApprovalStatus::Pending), Some("proxy")).await, 0);
    assert_eq!(total(None, Some("nothing-here")).await, 0);
    assert_eq!(total(None, None).await, 11);
}

async fn tags_are_added_updated_and_deleted(db: TestDb) {
    let store = &db.store;
    let image = store.create_image(new_image("alpine", Some("base"), None), ADMIN).await.unwrap();
    let digest: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
    let pushed_at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap() + Duration::microseconds(123_456);
    let tag = NewTag::new("3.20")
        .unwrap()
        .with_digest(Some(digest.clone()))
        .with_size_bytes(Some(3_600_000))
        .and_then(|t| t.with_architecture(Some("arm64".into())))
        .and_then(|t| t.with_os(Some("linux".into())))
        .and_then(|t| t.with_security_scan_status(Some("pending".into())))
        .and_then(|t| t.with_vulnerabilities_count(Some(2)))
        .unwrap()
        .with_pushed_at(Some(pushed_at));
    let created = store.create_tag(image.id, tag, ADMIN).await.unwrap();
    assert_eq!(
        (created.image_id, created.digest.as_ref(), created.pushed_at),
        (image.id, Some(&digest), Some(pushed_at))
    );
    assert!(!created.is_recommended && !created.is_deprecated);
    let latest = store.create_tag(image.id, new_tag("latest", false), ADMIN).await.unwrap();
    assert_eq!(store.list_tags(image.id).await.unwrap(), [created.clone(), latest.clone()]);

    assert_conflict(
        store.create_tag(image.id, new_tag("3.20", false), ADMIN).await,
        &format!("tag 3.20 already exists for image {}", image.id),
    );
    assert_conflict(
        store.create_tag(ImageId::new(1), new_tag("7-alpine", true), ADMIN).await,
        "tag 7-alpine already exists for image 1",
    );
    assert_eq!(recommended(store, ImageId::new(1)).await, ["7-alpine"], "a failed insert unmarks nothing");
    assert_not_found(store.create_tag(ImageId::new(42_000), new_tag("x", false), ADMIN).await, "image", 42_000);

    let update = TagUpdate {
        is_deprecated: Some(true),
        security_scan_status: Some(Some("passed".into())),
        vulnerabilities_count: Some(Some(0)),
        digest: Some(None),
        ..TagUpdate::default()
    };
    let updated = store.update_tag(image.id, created.id, update, "bob").await.unwrap();
    assert!(updated.is_deprecated && updated.digest.is_none());
    assert_eq!((updated.security_scan_status.as_deref(), updated.vulnerabilities_count), (Some("passed"), Some(0)));
    assert!(updated.updated_at > created.updated_at);
    assert_eq!(store.list_tags(image.id).await.unwrap()[0], updated);
    assert_not_found(store.update_tag(image.id, TagId::new(42_000), TagUpdate::default(), ADMIN).await, "tag", 42_000);

    let deleted = store.delete_tag(image.id, latest.id, ADMIN).await.unwrap();
    assert_eq!(deleted, latest);
    assert_eq!(store.list_tags(image.id).await.unwrap(), [updated]);
    assert_not_found(store.delete_tag(image.id, latest.id, ADMIN).await, "tag", latest.id);

    let events =
        store.list_events(&EventFilter { image_id: Some(image.id), ..EventFilter::default() }).await.unwrap().items;
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, [kind::TAG_DELETED, kind::TAG_UPDATED, kind::TAG_ADDED, kind::TAG_ADDED, kind::IMAGE_ADDED]);
    assert_eq!((events[0].tag_id, events[0].details.clone()), (Some(latest.id), json!(latest)));
    assert_eq!(events[1].tag_id, Some(created.id));
    assert_eq!(
        events[1].details["changes"],
        json!(["digest", "is_deprecated", "security_scan_status", "vulnerabilities_count"])
    );
    assert_eq!(events[3].details, json!(created));
}

async fn one_tag_per_image_is_recommended(db: TestDb) {
    let store = &db.store;
    let tags = store.list_tags(ImageId::new(1)).await.unwrap();
    let old = tags.iter().find(|t| t.is_recommended).unwrap().clone();

    // Adding a recommended tag unmarks the old one, and records that.
    let new = store.create_tag(ImageId::new(1), new_tag("7.4.1-alpine", true), ADMIN).await.unwrap();
    assert!(new.is_recommended);
    assert_eq!(recommended(store, ImageId::new(1)).await, ["7.4.1-alpine"]);
    let unmarked = store
        .list_events(&EventFilter { event_type: Some(kind::TAG_UPDATED.into()), ..EventFilter::default() })
        .await
        .unwrap()
        .items;
    assert_eq!(unmarked.len(), 1);
    assert_eq!((unmarked[0].tag_id, unmarked[0].details["changes"].clone()), (Some(old.id), json!(["is_recommended"])));

    // Marking another one recommended unmarks the new one.
    let latest = tags.iter().find(|t| t.tag == "latest").unwrap();
    let marked = store
        .update_tag(ImageId::new(1), latest.id, TagUpdate { is_recommended: Some(true), ..TagUpdate::default() }, ADMIN)
        .await
        .unwrap();
    assert!(marked.is_recommended);
    assert_eq!(recommended(store, ImageId::new(1)).await, ["latest"]);

    // Unmarking leaves none; a non-recommended tag is added without touching the others.
    let none = TagUpdate { is_recommended: Some(false), ..TagUpdate::default() };
    store.update_tag(ImageId::new(1), latest.id, none, ADMIN).await.unwrap();
    assert!(recommended(store, ImageId::new(1)).await.is_empty());
    store.create_tag(ImageId::new(1), new_tag("8-alpine", true), ADMIN).await.unwrap();
    store.create_tag(ImageId::new(1), new_tag("8.0-alpine", false), ADMIN).await.unwrap();
    assert_eq!(recommended(store, ImageId::new(1)).await, ["8-alpine"]);

    // Other images keep their own recommended tag.
    let postgres = store.find_image("docker.io", "library", "postgres").await.unwrap().unwrap();
    store.create_tag(postgres.id, new_tag("17-alpine", true), ADMIN).await.unwrap();
    assert_eq!(recommended(store, ImageId::new(1)).await, ["8-alpine"]);
    assert_eq!(recommended(store, postgres.id).await, ["17-alpine"]);
}

async fn concurrent_recommendations_leave_exactly_one(db: TestDb) {
    let store = &db.store;
    let image = store.create_image(new_image("contended", None, None), ADMIN).await.unwrap();
    let mut existing = Vec::new();
    for n in 0..4 {
        existing.push(store.create_tag(image.id, new_tag(&format!("old-{n}"), n == 0), ADMIN).await.unwrap().id);
    }
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let store = store.clone();
            let existing = existing.clone();
            tokio::spawn(async move {
                if n % 2 == 0 {
                    store.create_tag(image.id, new_tag(&format!("new-{n}"), true), "racer").await.map(|t| t.id)
                } else {
                    let update = TagUpdate { is_recommended: Some(true), ..TagUpdate::default() };
                    store.update_tag(image.id, existing[n % 4], update, "racer").await.map(|t| t.id)
                }
            })
        })
        .collect();
    for task in tasks {
        let tag = task.await.unwrap().unwrap();
        assert!(tag > TagId::new(0));
    }
    let tags = store.list_tags(image.id).await.unwrap();
    assert_eq!(tags.len(), 12);
    assert_eq!(tags.iter().filter(|t| t.is_recommended).count(), 1, "{tags:#?}");
}

async fn a_tag_of_another_image_is_not_found(db: TestDb) {
    let store = &db.store;
    let redis_tag = store.list_tags(ImageId::new(1)).await.unwrap().remove(0);
    let postgres = store.find_image("docker.io", "library", "postgres").await.unwrap().unwrap();
    let events = event_count(store).await;
    let update = TagUpdate { is_deprecated: Some(true), ..TagUpdate::default() };
    assert_not_found(store.update_tag(postgres.id, redis_tag.id, update, ADMIN).await, "tag", redis_tag.id);
    assert_not_found(store.delete_tag(postgres.id, redis_tag.id, ADMIN).await, "tag", redis_tag.id);
    assert_not_found(store.delete_tag(ImageId::new(42_000), redis_tag.id, ADMIN).await, "image", 42_000);
    assert_eq!(store.list_tags(ImageId::new(1)).await.unwrap()[0], redis_tag);
    assert_eq!(event_count(store).await, events);
}

fn request(name: &str, tag: Option<&str>) -> NewApprovalRequest {
    NewApprovalRequest::new(name, None, None, tag.map(str::to_owned), Some("for the fleet".into())).unwrap()
}

async fn approval_requests_are_created_and_listed_by_status(db: TestDb) {
    let store = &db.store;
    let first = store.create_approval_request(request("traefik", Some("v3.1")), "carol").await.unwrap();
    assert_eq!(
        (first.status, first.requested_by.as_str(), first.tag.as_deref()),
        (ApprovalStatus::Pending, "carol", Some("v3.1"))
    );
    assert_eq!(
        (first.reviewed_by.as_deref(), first.image_id, first.notes.as_deref()),
        (None, None, Some("for the fleet"))
    );
    assert_eq!(store.get_approval_request(first.id).await.unwrap(), first);
    let second = store.create_approval_request(request("caddy", None), "dave").await.unwrap();
    let third = store.create_approval_request(request("haproxy", None), "dave").await.unwrap();
    store
        .decide_approval_request(second.id, Decision::Reject { reason: "use traefik".into(), notes: None }, ADMIN)
        .await
        .unwrap();

    let by_status = |status: Option<ApprovalStatus>| async move {
        let listing =
            store.list_approval_requests(&ApprovalRequestFilter { status, ..Default::default() }).await.unwrap();
        (listing.items.iter().map(|r| r.id).collect::<Vec<_>>(), listing.total)
    };
    assert_eq!(by_status(None).await, (vec![first.id, second.id, third.id], 3));
    assert_eq!(by_status(Some(ApprovalStatus::Pending)).await, (vec![first.id, third.id], 2));
    assert_eq!(by_status(Some(ApprovalStatus::Rejected)).await, (vec![second.id], 1));
    assert_eq!(by_status(Some(ApprovalStatus::Approved)).await, (vec![], 0));
    let paged = ApprovalRequestFilter { status: None, page: Page::new(Some(1), Some(1)).unwrap() };
    let listing = store.list_approval_requests(&paged).await.unwrap();
    assert_eq!((listing.items[0].id, listing.total), (second.id, 3));
    assert_not_found(store.get_approval_request(ApprovalRequestId::new(42_000)).await, "approval request", 42_000);

    let requested = store
        .list_events(&EventFilter { event_type: Some(kind::APPROVAL_REQUESTED.into()), ..EventFilter::default() })
        .await
        .unwrap();
    assert_eq!(requested.total, 3);
    let oldest = requested.items.last().unwrap();
    assert_eq!(
        (oldest.request_id, oldest.actor.as_str(), oldest.details.clone()),
        (Some(first.id), "carol", json!(first))
    );
}

async fn approving_a_request_creates_the_image_and_its_tag(db: TestDb) {
    let store = &db.store;
    let pending = store.create_approval_request(request("traefik", Some("v3.1")), "carol").await.unwrap();
    let decision = Decision::Approve {
        notes: Some("ok for edge nodes".into()),
        category: Some("web".into()),
        description: Some("Cloud-native reverse proxy".into()),
    };
    let (decided, image) = store.decide_approval_request(pending.id, decision, ADMIN).await.unwrap();
    let image = image.unwrap();
    assert_eq!(decided.status, ApprovalStatus::Approved);
    assert_eq!((decided.reviewed_by.as_deref(), decided.image_id), (Some(ADMIN), Some(image.id)));
    assert!(decided.reviewed_at.is_some());
    assert_eq!(decided.notes.as_deref(), Some("ok for edge nodes"));
    assert_eq!(store.get_approval_request(pending.id).await.unwrap(), decided);

    assert_eq!(
        (image.registry.as_str(), image.namespace.as_str(), image.image_name.as_str()),
        ("docker.io", "library", "traefik")
    );
    assert_eq!((image.approval_status, image.approved_by.as_deref()), (ApprovalStatus::Approved, Some(ADMIN)));
    assert_eq!(
        (image.category.as_deref(), image.description.as_deref()),
        (Some("web"), Some("Cloud-native reverse proxy"))
    );
    assert!(image.is_official);
    assert_eq!(store.get_image(image.id).await.unwrap(), image);
    let tags = store.list_tags(image.id).await.unwrap();
    assert_eq!(tags.iter().map(|t| t.tag.as_str()).collect::<Vec<_>>(), ["v3.1"]);

    let events =
        store.list_events(&EventFilter { image_id: Some(image.id), ..EventFilter::default() }).await.unwrap().items;
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, [kind::APPROVAL_APPROVED, kind::TAG_ADDED, kind::IMAGE_ADDED]);
    assert!(events.iter().all(|e| e.request_id == Some(pending.id) && e.actor == ADMIN));
    assert_eq!(events[1].tag_id, Some(tags[0].id));
    assert_eq!(events[0].details["before"], json!(pending));
    assert_eq!(events[0].details["after"], json!(decided));

    // Deleting the image keeps the request, unlinked.
    store.delete_image(image.id, ADMIN).await.unwrap();
    assert_eq!(store.get_approval_request(pending.id).await.unwrap().image_id, None);
}

async fn approving_a_request_approves_an_existing_image(db: TestDb) {
    let store = &db.store;
    let existing = store.create_image(new_image("traefik", Some("proxy"), Some("old words")), ADMIN).await.unwrap();
    store.create_tag(existing.id, new_tag("v3.1", true), ADMIN).await.unwrap();
    let with_known_tag = store.create_approval_request(request("traefik", Some("v3.1")), "carol").await.unwrap();
    let decision = Decision::Approve { notes: None, category: None, description: Some("new words".into()) };
    let (decided, image) = store.decide_approval_request(with_known_tag.id, decision, ADMIN).await.unwrap();
    let image = image.unwrap();
    assert_eq!(image.id, existing.id);
    assert_eq!(decided.image_id, Some(existing.id));
    assert_eq!(decided.notes.as_deref(), Some("for the fleet"), "no notes in the decision keeps the request's");
    assert_eq!((image.approval_status, image.approved_by.as_deref()), (ApprovalStatus::Approved, Some(ADMIN)));
    assert_eq!((image.category.as_deref(), image.description.as_deref()), (Some("proxy"), Some("new words")));
    assert_eq!(store.get_image(existing.id).await.unwrap(), image);
    let tags = store.list_tags(existing.id).await.unwrap();
    assert_eq!(tags.len(), 1, "the requested tag was there already");
    assert!(tags[0].is_recommended);

    // A request for an approved seed image with a new tag adds just the tag.
    let redis = store.create_approval_request(request("redis", Some("8-alpine")), "carol").await.unwrap();
    let approve = Decision::Approve { notes: None, category: None, description: None };
    let (_, image) = store.decide_approval_request(redis.id, approve, ADMIN).await.unwrap();
    let image = image.unwrap();
    assert_eq!((image.id, image.approved_by.as_deref()), (ImageId::new(1), Some("system")));
    assert_eq!(store.list_tags(ImageId::new(1)).await.unwrap().len(), 5);
    let events = store
        .list_events(&EventFilter { image_id: Some(ImageId::new(1)), ..EventFilter::default() })
        .await
        .unwrap()
        .items;
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, [kind::APPROVAL_APPROVED, kind::TAG_ADDED]);

    let events =
        store.list_events(&EventFilter { image_id: Some(existing.id), ..EventFilter::default() }).await.unwrap().items;
    assert_eq!(events[0].event_type, kind::APPROVAL_APPROVED);
    assert_eq!(events[1].event_type, kind::IMAGE_UPDATED);
    assert_eq!(events[1].details["changes"], json!(["approval_status", "approved_at", "approved_by", "description"]));
}

async fn a_request_is_decided_once(db: TestDb) {
    let store = &db.store;
    let pending = store.create_approval_request(request("traefik", None), "carol").await.unwrap();
    let approve = || Decision::Approve { notes: None, category: None, description: None };
    store.decide_approval_request(pending.id, approve(), ADMIN).await.unwrap();
    let events = event_count(store).await;
    let again = store.decide_approval_request(pending.id, approve(), ADMIN).await;
    assert_conflict(again, &format!("approval request {} is already approved", pending.id));
    let reject = Decision::Reject { reason: "changed my mind".into(), notes: None };
    assert_conflict(
        store.decide_approval_request(pending.id, reject, ADMIN).await,
        &format!("approval request {} is already approved", pending.id),
    );
    assert_eq!(event_count(store).await, events);
    assert_not_found(
        store.decide_approval_request(ApprovalRequestId::new(42_000), approve(), ADMIN).await,
        "approval request",
        42_000,
    );

    // Two admins at once: one decision wins, the other conflicts.
    let contested = store.create_approval_request(request("caddy", Some("2")), "carol").await.unwrap();
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.decide_approval_request(contested.id, approve(), ADMIN).await })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => won += 1,
            Err(Error::Conflict(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won, 1);
}

async fn rejecting_a_request_stores_the_reason(db: TestDb) {
    let store = &db.store;
    let pending = store.create_approval_request(request("traefik", Some("v3.1")), "carol").await.unwrap();
    let reject = Decision::Reject { reason: "not on the allow list".into(), notes: Some("ask security".into()) };
    let (decided, image) = store.decide_approval_request(pending.id, reject, "bob").await.unwrap();
    assert_eq!(image, None);
    assert_eq!(decided.status, ApprovalStatus::Rejected);
    assert_eq!(decided.rejection_reason.as_deref(), Some("not on the allow list"));
    assert_eq!((decided.reviewed_by.as_deref(), decided.notes.as_deref()), (Some("bob"), Some("ask security")));
    assert_eq!(decided.image_id, None);
    assert_eq!(store.get_approval_request(pending.id).await.unwrap(), decided);
    assert_eq!(store.find_image("docker.io", "library", "traefik").await.unwrap(), None);

    let events = store
        .list_events(&EventFilter { event_type: Some(kind::APPROVAL_REJECTED.into()), ..EventFilter::default() })
        .await
        .unwrap()
        .items;
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].request_id, events[0].image_id, events[0].actor.as_str()), (Some(pending.id), None, "bob"));
    assert_eq!(
        events[0].details["changes"],
        json!(["notes", "rejection_reason", "reviewed_at", "reviewed_by", "status"])
    );
}

async fn events_are_filtered_and_paged_newest_first(db: TestDb) {
    let store = &db.store;
    let a = store.create_image(new_image("a", None, None), "ann").await.unwrap();
    let b = store.create_image(new_image("b", None, None), "ben").await.unwrap();
    for n in 0..3 {
        store.create_tag(a.id, new_tag(&format!("a{n}"), false), "ann").await.unwrap();
    }
    store.create_tag(b.id, new_tag("b0", false), "ben").await.unwrap();

    let all = store.list_events(&EventFilter::default()).await.unwrap();
    assert_eq!(all.total, 6);
    let ids: Vec<i64> = all.items.iter().map(|e| e.id.get()).collect();
    let mut newest_first = ids.clone();
    newest_first.sort_unstable_by(|x, y| y.cmp(x));
    assert_eq!(ids, newest_first);
    assert!(all.items.windows(2).all(|w| w[0].occurred_at >= w[1].occurred_at));
    assert_eq!(all.items[0].details["tag"], "b0");

    let tags_of_a = EventFilter {
        event_type: Some(kind::TAG_ADDED.into()),
        image_id: Some(a.id),
        page: Page::new(Some(2), None).unwrap(),
        ..EventFilter::default()
    };
    let page = store.list_events(&tags_of_a).await.unwrap();
    assert_eq!(page.total, 3);
    let tags: Vec<&str> = page.items.iter().map(|e| e.details["tag"].as_str().unwrap()).collect();
    assert_eq!(tags, ["a2", "a1"]);
    let next =
        store.list_events(&EventFilter { page: Page::new(Some(2), Some(2)).unwrap(), ..tags_of_a }).await.unwrap();
    assert_eq!(next.items.iter().map(|e| e.details["tag"].as_str().unwrap()).collect::<Vec<_>>(), ["a0"]);

    let by_ben = store.list_events(&EventFilter { actor: Some("ben".into()), ..EventFilter::default() }).await.unwrap();
    assert_eq!(by_ben.total, 2);
    assert!(by_ben.items.iter().all(|e| e.image_id == Some(b.id)));
    let nothing = EventFilter { event_type: Some("image.nothing".into()), ..EventFilter::default() };
    assert_eq!(store.list_events(&nothing).await.unwrap().total, 0);
}

async fn users_and_tokens(db: TestDb) {
    let store = &db.store;
    let alice = NewUser { username: "alice".into(), password_hash: "$argon2id$…a".into(), role: Role::Admin };
    let created = store.create_user(alice.clone(), "system").await.unwrap();
    assert_eq!((created.username.as_str(), created.role), ("alice", Role::Admin));
    assert_conflict(store.create_user(alice, "system").await, "user alice already exists");
    let bob = NewUser { username: "bob".into(), password_hash: "$argon2id$…b".into(), role: Role::User };
    let bob = store.create_user(bob, ADMIN).await.unwrap();
    assert_eq!(store.count_users().await.unwrap(), 2);

    let credentials = store.find_credentials("alice").await.unwrap().unwrap();
    assert_eq!((credentials.user, credentials.password_hash.as_str()), (created.clone(), "$argon2id$…a"));
    assert!(store.find_credentials("nobody").await.unwrap().is_none());

    let laptop = store.create_token(created.id, "hash-1", "laptop", None).await.unwrap();
    assert_eq!(
        (laptop.user_id, laptop.name.as_str(), laptop.expires_at, laptop.last_used_at),
        (created.id, "laptop", None, None)
    );
    let ci = store.create_token(bob.id, "hash-2", "ci", None).await.unwrap();
    assert_conflict(
        store.create_token(bob.id, "hash-1", "again", None).await,
        "a token with this hash already exists (named again)",
    );
    assert_not_found(store.create_token(UserId::new(42_000), "hash-3", "ghost", None).await, "user", 42_000);
    assert_eq!(token_last_used_at(&db, "hash-1").await, None);
    let before = OffsetDateTime::now_utc() - Duration::milliseconds(1);
    assert_eq!(store.find_user_by_token("hash-1").await.unwrap(), Some((laptop.id, created.clone())));
    let used_at = token_last_used_at(&db, "hash-1").await.unwrap();
    assert!(used_at >= before && used_at <= OffsetDateTime::now_utc(), "{used_at}");
    // Used again within the minute: last_used_at is fresh enough and is not written again.
    assert_eq!(store.find_user_by_token("hash-1").await.unwrap(), Some((laptop.id, created)));
    assert_eq!(token_last_used_at(&db, "hash-1").await, Some(used_at));
    assert_eq!(store.find_user_by_token("hash-2").await.unwrap(), Some((ci.id, bob)));
    assert_eq!(store.find_user_by_token("hash-unknown").await.unwrap(), None);

    // Creating users is in the audit trail, with who did it and never the hash.
    let created_events = EventFilter { event_type: Some(kind::USER_CREATED.into()), ..EventFilter::default() };
    let events = store.list_events(&created_events).await.unwrap().items;
    let seen: Vec<_> = events.iter().map(|e| (e.actor.as_str(), e.details["username"].as_str().unwrap())).collect();
    assert_eq!(seen, [(ADMIN, "bob"), ("system", "alice")]);
    assert_eq!(events[0].details, json!({ "id": events[0].details["id"], "username": "bob", "role": "user" }));
}

async fn expired_tokens_are_ignored(db: TestDb) {
    let store = &db.store;
    let user = NewUser { username: "carol".into(), password_hash: "x".into(), role: Role::User };
    let user = store.create_user(user, ADMIN).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let current =
        store.create_token_with_expiry(user.id, "current", "new", Some(now + Duration::hours(1))).await.unwrap();
    store.create_token_with_expiry(user.id, "expired", "old", Some(now - Duration::seconds(1))).await.unwrap();
    assert_about(current.expires_at.unwrap(), now + Duration::hours(1));
    assert_eq!(store.find_user_by_token("expired").await.unwrap(), None);
    assert_eq!(store.find_user_by_token("current").await.unwrap(), Some((current.id, user.clone())));
    let names = |tokens: Vec<image_core::auth::ApiToken>| tokens.into_iter().map(|t| t.name).collect::<Vec<_>>();
    assert_eq!(names(store.list_tokens(user.id).await.unwrap()), ["new"], "an expired token is not listed");
    assert_eq!(raw_sql(&db, "SELECT name AS text FROM api_tokens ORDER BY id", true).await, ["new", "old"]);
    // The next token issued forgets the expired ones.
    store.create_token(user.id, "later", "later", None).await.unwrap();
    assert_eq!(raw_sql(&db, "SELECT name AS text FROM api_tokens ORDER BY id", true).await, ["new", "later"]);
}

async fn robots_are_stored_with_the_hash_of_their_secret(db: TestDb) {
    use image_core::robot::{NewRobot, RepositoryPattern, RobotAction, RobotStore};
    let store = &db.store;
    let patterns = vec![
        RepositoryPattern::parse("repositories[0]", "team/*").unwrap(),
        RepositoryPattern::parse("repositories[1]", "shared/base").unwrap(),
    ];
    let expires = OffsetDateTime::now_utc() + Duration::days(30);
    let actions = vec![RobotAction::Push, RobotAction::Pull];
    let new = NewRobot::new("ci", patterns.clone(), actions, Some(expires), "hash-of-ci".into()).unwrap();
    let created = store.create_robot(new, ADMIN).await.unwrap();
    assert_eq!(created.name, "ci");
    assert_eq!(created.repositories, patterns);
    assert_eq!(created.actions, [RobotAction::Pull, RobotAction::Push]);
    assert_eq!(created.created_by, ADMIN);
    assert_about(created.expires_at.unwrap(), expires);
    let again = NewRobot::new("ci", patterns.clone(), vec![RobotAction::Pull], None, "other-hash".into()).unwrap();
    assert_conflict(store.create_robot(again, ADMIN).await, "robot ci already exists");
    let reader = NewRobot::new("reader", patterns, vec![RobotAction::Pull], None, "hash-of-reader".into()).unwrap();
    store.create_robot(reader, ADMIN).await.unwrap();

    assert_eq!(store.find_robot("ci").await.unwrap(), Some((created.clone(), "hash-of-ci".to_owned())));
    assert_eq!(store.find_robot("nobody").await.unwrap(), None);
    let names: Vec<String> = store.list_robots().await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["ci", "reader"]);

    assert_eq!(store.delete_robot("ci", ADMIN).await.unwrap(), created);
    assert!(store.delete_robot("ci", ADMIN).await.is_err());
    assert_eq!(store.find_robot("ci").await.unwrap(), None);
    let filter = |k: &str| EventFilter { event_type: Some(k.into()), ..EventFilter::default() };
    let created_events = store.list_events(&filter(kind::ROBOT_CREATED)).await.unwrap().items;
    assert_eq!(created_events.len(), 2);
    assert!(created_events.iter().all(|e| !e.details.to_string().contains("hash-of")), "no hash in the trail");
    let deleted = store.list_events(&filter(kind::ROBOT_DELETED)).await.unwrap().items;
    assert_eq!(deleted[0].details, json!({ "id": created.id, "name": "ci" }));
}

async fn new_user(store: &DbStore, name: &str, role: Role) -> image_core::auth::User {
    let user = NewUser { username: name.into(), password_hash: format!("$argon2id$hash-of-{name}"), role };
    store.create_user(user, ADMIN).await.unwrap()
}

async fn users_are_listed_changed_and_deleted(db: TestDb) {
    let store = &db.store;
    let zed = new_user(store, "zed", Role::Admin).await;
    let amy = new_user(store, "amy", Role::User).await;
    new_user(store, "mo", Role::User).await;
    let listed: Vec<String> = store.list_users().await.unwrap().into_iter().map(|u| u.username).collect();
    assert_eq!(listed, ["amy", "mo", "zed"], "ordered by name");

    store.create_token(amy.id, "amy-1", "laptop", None).await.unwrap();
    store.create_token(amy.id, "amy-2", "ci", None).await.unwrap();
    let zed_token = store.create_token(zed.id, "zed-1", "laptop", None).await.unwrap();

    // A role change keeps the tokens, and the next lookup sees the new role.
    let promoted = store.update_user("amy", UserUpdate { role: Some(Role::Admin), ..UserUpdate::default() }, "zed");
    let promoted = promoted.await.unwrap();
    assert_eq!(promoted.role, Role::Admin);
    let (_, seen) = store.find_user_by_token("amy-1").await.unwrap().unwrap();
    assert_eq!(seen.role, Role::Admin);
    let changes = events_of(store, kind::USER_ROLE_CHANGED).await;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].actor, "zed");
    assert_eq!(changes[0].details, json!({ "id": amy.id, "username": "amy", "before": "user", "after": "admin" }));
    // The same role again, or nothing at all, changes nothing and records nothing.
    store.update_user("amy", UserUpdate { role: Some(Role::Admin), ..UserUpdate::default() }, "zed").await.unwrap();
    store.update_user("amy", UserUpdate::default(), "zed").await.unwrap();
    assert_eq!(events_of(store, kind::USER_ROLE_CHANGED).await.len(), 1);

    // A new password ends every token of that user, and only theirs.
    let update = UserUpdate { password_hash: Some("$argon2id$new-hash".into()), ..UserUpdate::default() };
    store.update_user("amy", update, "amy").await.unwrap();
    assert_eq!(store.find_credentials("amy").await.unwrap().unwrap().password_hash, "$argon2id$new-hash");
    assert_eq!(store.find_user_by_token("amy-1").await.unwrap(), None);
    assert_eq!(store.find_user_by_token("amy-2").await.unwrap(), None);
    assert!(store.list_tokens(amy.id).await.unwrap().is_empty());
    assert_eq!(store.find_user_by_token("zed-1").await.unwrap().unwrap().0, zed_token.id);
    let changed = events_of(store, kind::USER_PASSWORD_CHANGED).await;
    assert_eq!(changed[0].details, json!({ "id": amy.id, "username": "amy", "tokens_revoked": 2 }));
    assert!(!changed[0].details.to_string().contains("hash"), "{}", changed[0].details);

    assert_missing(store.update_user("nobody", UserUpdate::default(), "zed").await, "user", "nobody");
    assert_missing(store.delete_user("nobody", "zed").await, "user", "nobody");

    // Deleting a user ends their tokens; the audit trail keeps their name as an actor.
    store.create_token(amy.id, "amy-3", "again", None).await.unwrap();
    let deleted = store.delete_user("amy", "zed").await.unwrap();
    assert_eq!((deleted.username.as_str(), deleted.role), ("amy", Role::Admin));
    assert_eq!(store.find_user_by_token("amy-3").await.unwrap(), None);
    assert!(store.find_credentials("amy").await.unwrap().is_none());
    assert_eq!(
        raw_sql(
            &db,
            &format!("SELECT CAST(count(*) AS TEXT) AS text FROM api_tokens WHERE user_id = {}", amy.id),
            true
        )
        .await,
        ["0"]
    );
    let gone = events_of(store, kind::USER_DELETED).await;
    assert_eq!(gone[0].actor, "zed");
    assert_eq!(gone[0].details, json!({ "id": amy.id, "username": "amy", "role": "admin", "tokens_revoked": 1 }));
    let by_amy = EventFilter { actor: Some("amy".into()), ..EventFilter::default() };
    assert_eq!(store.list_events(&by_amy).await.unwrap().total, 1, "her password change is still hers");
    let listed: Vec<String> = store.list_users().await.unwrap().into_iter().map(|u| u.username).collect();
    assert_eq!(listed, ["mo", "zed"]);
}

async fn the_last_admin_stays(db: TestDb) {
    let store = &db.store;
    new_user(store, "root", Role::Admin).await;
    new_user(store, "pat", Role::User).await;
    let demote = || UserUpdate { role: Some(Role::User), ..UserUpdate::default() };
    let last = "cannot demote root: it is the last admin; make another user an admin first";
    assert_conflict(store.update_user("root", demote(), "root").await, last);
    assert_conflict(
        store.delete_user("root", "root").await,
        "cannot delete root: it is the last admin; make another user an admin first",
    );
    // A demotion that fails changes nothing else either: the password in the same update stays.
    let both = UserUpdate { role: Some(Role::User), password_hash: Some("$argon2id$other".into()) };
    assert_conflict(store.update_user("root", both, "root").await, last);
    assert_eq!(store.find_credentials("root").await.unwrap().unwrap().password_hash, "$argon2id$hash-of-root");
    // Demoting a user, or keeping an admin an admin, is no demotion of the last admin.
    store.update_user("pat", demote(), "root").await.unwrap();
    store.update_user("root", UserUpdate { role: Some(Role::Admin), ..UserUpdate::default() }, "root").await.unwrap();
    store.delete_user("pat", "root").await.unwrap();

    // Two admins demoting each other at once: one wins, and an admin is left.
    for round in 0..5 {
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        let promote = UserUpdate { role: Some(Role::Admin), ..UserUpdate::default() };
        new_user(store, &a, Role::User).await;
        new_user(store, &b, Role::User).await;
        store.update_user(&a, promote.clone(), "root").await.unwrap();
        store.update_user(&b, promote, "root").await.unwrap();
        store.update_user("root", demote(), "root").await.unwrap();
        let (s1, s2) = (store.clone(), store.clone());
        let (a1, b1, a2, b2) = (a.clone(), b.clone(), a.clone(), b.clone());
        let first = tokio::spawn(async move { s1.update_user(&a1, demote(), &b1).await });
        let second = tokio::spawn(async move { s2.delete_user(&b2, &a2).await });
        let (first, second) = (first.await.unwrap(), second.await.unwrap());
        assert!(first.is_ok() != second.is_ok(), "exactly one passes: {first:?} {second:?}");
        let admins: Vec<_> = store.list_users().await.unwrap().into_iter().filter(|u| u.role == Role::Admin).collect();
        assert_eq!(admins.len(), 1, "{admins:?}");
        // Back to root as the one admin, for the next round.
        let survivor = admins[0].username.clone();
        store
            .update_user("root", UserUpdate { role: Some(Role::Admin), ..UserUpdate::default() }, &survivor)
            .await
            .unwrap();
        store.update_user(&survivor, demote(), "root").await.unwrap();
    }
}

async fn tokens_are_listed_and_revoked(db: TestDb) {
    let store = &db.store;
    let ann = new_user(store, "ann", Role::User).await;
    let ben = new_user(store, "ben", Role::Admin).await;
    let laptop = store.create_token(ann.id, "ann-1", "laptop", None).await.unwrap();
    let expires = OffsetDateTime::now_utc() + Duration::days(30);
    let ci = store.create_token(ann.id, "ann-2", "ci", Some(expires)).await.unwrap();
    let bens = store.create_token(ben.id, "ben-1", "ben", None).await.unwrap();
    assert_eq!(store.list_tokens(ann.id).await.unwrap(), [laptop.clone(), ci.clone()], "oldest first");
    assert_about(ci.expires_at.unwrap(), expires);

    // The owner's revocation: someone else's token is not found, as a token that does not exist is.
    assert_missing(store.revoke_token(bens.id, Some(ann.id), "ann").await, "token", &bens.id.to_string());
    assert_missing(store.revoke_token(TokenId::new(42_000), Some(ann.id), "ann").await, "token", "42000");
    assert!(store.find_user_by_token("ben-1").await.unwrap().is_some());
    assert_eq!(store.revoke_token(laptop.id, Some(ann.id), "ann").await.unwrap(), laptop);
    assert_eq!(store.find_user_by_token("ann-1").await.unwrap(), None);
    assert_missing(store.revoke_token(laptop.id, Some(ann.id), "ann").await, "token", &laptop.id.to_string());
    // An admin's, of anyone's token.
    store.revoke_token(ci.id, None, "ben").await.unwrap();
    assert!(store.list_tokens(ann.id).await.unwrap().is_empty());
    let left = store.list_tokens(ben.id).await.unwrap();
    assert_eq!(left.iter().map(|t| t.id).collect::<Vec<_>>(), [bens.id]);
    assert!(left[0].last_used_at.is_some(), "its use is listed");

    let revoked = events_of(store, kind::TOKEN_REVOKED).await;
    let seen: Vec<_> = revoked.iter().map(|e| (e.actor.as_str(), e.details["name"].as_str().unwrap())).collect();
    assert_eq!(seen, [("ben", "ci"), ("ann", "laptop")]);
    assert_eq!(revoked[1].details, json!({ "id": laptop.id, "name": "laptop", "user_id": ann.id, "username": "ann" }));
}

async fn migrations_are_idempotent(db: TestDb) {
    let image = db.store.create_image(new_image("survivor", None, None), ADMIN).await.unwrap();
    let again = DbStore::connect(&db.url).await.unwrap();
    let third = DbStore::connect(&db.url).await.unwrap();
    for store in [&db.store, &again, &third] {
        let listing = store.list_images(&all()).await.unwrap();
        assert_eq!(listing.total, 10);
        let names: HashSet<String> = listing.items.iter().map(|s| s.image.repository()).collect();
        assert_eq!(names.len(), 10);
        assert_eq!(store.list_tags(ImageId::new(1)).await.unwrap().len(), 4);
        assert_eq!(store.get_image(image.id).await.unwrap(), image);
    }
}

// ---------------------------------------------------------------------------------------------------
// Jobs and imports

const LEASE: std::time::Duration = std::time::Duration::from_secs(30);
const IMPORT: &[&str] = &["import"];

fn reference(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

fn new_import(source: &str, target: &str) -> NewImport {
    NewImport {
        source: reference(source),
        target: reference(target),
        platforms: vec!["linux/amd64".parse().unwrap()],
        description: Some(format!("mirror {source}")),
        max_attempts: 3,
        timeout_secs: 600,
        registry_secret: None,
    }
}

fn digest(n: u8) -> Digest {
    format!("sha256:{}", format!("{n:02x}").repeat(32)).parse().unwrap()
}

fn artifact(n: u8, architecture: &str, size: u64) -> Artifact {
    Artifact {
        digest: digest(n),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        os: Some("linux".into()),
        architecture: Some(architecture.into()),
        variant: None,
        size,
    }
}

fn layer(n: u8, size: u64, done: u64, state: LayerState) -> LayerProgress {
    LayerProgress { digest: digest(n), size, done, state, via: None }
}

async fn enqueue(store: &DbStore, source: &str, target: &str, actor: &str) -> ImportJob {
    match store.enqueue_import(new_import(source, target), actor).await.unwrap() {
        EnqueueOutcome::Started(import) => import,
        other => panic!("expected a new import, got {other:?}"),
    }
}

/// Claims the next import job as `worker`, expecting it to be `import`'s.
async fn claim(store: &DbStore, worker: &str, import: &ImportJob) -> ClaimedJob {
    let job = store.claim_job(worker, IMPORT, LEASE).await.unwrap().expect("a due job");
    assert_eq!(job.payload, json!({ "import_id": import.id }));
    job
}

async fn active_imports_are_found_by_target(db: TestDb) {
    let store = &db.store;
    assert_eq!(store.find_active_import("mirror/redis", "7").await.unwrap(), None);
    let EnqueueOutcome::Started(first) =
        store.enqueue_import(new_import("redis:7", "harbor.example.com/mirror/redis:7"), "carol").await.unwrap()
    else {
        panic!("a new import starts")
    };
    let EnqueueOutcome::Started(other_tag) =
        store.enqueue_import(new_import("redis:8", "harbor.example.com/mirror/redis:8"), "carol").await.unwrap()
    else {
        panic!("a new import starts")
    };
    let found = |repository: &'static str, tag: &'static str| async move {
        store.find_active_import(repository, tag).await.unwrap().map(|i| i.id)
    };
    assert_eq!(found("mirror/redis", "7").await, Some(first.id));
    assert_eq!(found("mirror/redis", "8").await, Some(other_tag.id));
    // Neither the short name nor another tag nor a prefix matches: the whole repository path does.
    assert_eq!(found("redis", "7").await, None);
    assert_eq!(found("mirror/redis", "9").await, None);
    assert_eq!(found("mirror/red", "7").await, None);
    // A running import is active; a succeeded or canceled one is not.
    let job = start(store, "w", &first).await;
    assert_eq!(found("mirror/redis", "7").await, Some(first.id));
    let succeeded = AttemptOutcome::Succeeded { digest: digest(1), artifacts: Vec::new() };
    assert!(store.finish_import_attempt(first.id, job.id, "w", succeeded).await.unwrap());
    assert_eq!(found("mirror/redis", "7").await, None);
    assert_eq!(found("mirror/redis", "8").await, Some(other_tag.id));
    store.cancel_import(other_tag.id, "carol").await.unwrap();
    assert_eq!(found("mirror/redis", "8").await, None);
}

/// Claims `import`'s job and starts an attempt.
async fn start(store: &DbStore, worker: &str, import: &ImportJob) -> ClaimedJob {
    let job = claim(store, worker, import).await;
    assert!(store.start_import_attempt(import.id, job.id, worker, job.attempts).await.unwrap());
    job
}

async fn succeed(store: &DbStore, import: &ImportJob, digest: Digest, artifacts: Vec<Artifact>) {
    let job = start(store, "w", import).await;
    let outcome = AttemptOutcome::Succeeded { digest, artifacts };
    assert!(store.finish_import_attempt(import.id, job.id, "w", outcome).await.unwrap());
}

async fn events_of(store: &DbStore, event_type: &str) -> Vec<image_core::event::AuditEvent> {
    let filter = EventFilter { event_type: Some(event_type.into()), ..EventFilter::default() };
    store.list_events(&filter).await.unwrap().items
}

#[track_caller]
fn assert_invalid(result: Result<impl std::fmt::Debug, Error>, field: &str) {
    match result {
        Err(Error::Invalid { field: f, .. }) if f == field => {}
        other => panic!("expected {field} invalid, got {other:?}"),
    }
}

/// One internal repository, one source: an import whose target repository another source already holds
/// (queued, running or succeeded) is refused, naming that source, and queues nothing; other tags of the same
/// source are welcome, and a holder that failed or was canceled holds nothing.
async fn a_target_held_by_another_source_is_refused(db: TestDb) {
    let store = &db.store;
    let held = enqueue(store, "registry.example:5000/app:1", "harbor.example.com/m/app:1", "carol").await;
    let refused = store.enqueue_import(new_import("ghcr.io/acme/app:1", "harbor.example.com/m/app:1"), "dan").await;
    let Err(Error::Conflict(message)) = refused else { panic!("expected a conflict, got {refused:?}") };
    assert!(message.contains("m/app") && message.contains("registry.example:5000/app"), "{message}");
    let other_tag = store.enqueue_import(new_import("ghcr.io/acme/app:2", "harbor.example.com/m/app:2"), "dan").await;
    assert!(matches!(other_tag, Err(Error::Conflict(_))), "another tag of the same repository: {other_tag:?}");
    assert_eq!(store.job_types().await.unwrap(), [("import".to_string(), 1)]);
    // The holder's own other tags land beside it.
    enqueue(store, "registry.example:5000/app:2", "harbor.example.com/m/app:2", "carol").await;
    // Once the holder's imports are canceled, the repository is free.
    let two = store.find_active_import("m/app", "2").await.unwrap().unwrap();
    store.cancel_import(held.id, "carol").await.unwrap();
    store.cancel_import(two.id, "carol").await.unwrap();
    enqueue(store, "ghcr.io/acme/app:1", "harbor.example.com/m/app:1", "dan").await;
}

async fn imports_are_queued_once(db: TestDb) {
    let store = &db.store;
    let before = OffsetDateTime::now_utc();
    let redis = enqueue(store, "redis:7", "harbor.example.com/mirror/redis:7", "carol").await;
    assert_eq!(redis.source.to_string(), "docker.io/library/redis:7");
    assert_eq!((redis.state, redis.attempts, redis.max_attempts, redis.timeout_secs), (ImportState::Queued, 0, 3, 600));
    assert_eq!((redis.created_by.as_str(), redis.description.as_deref()), ("carol", Some("mirror redis:7")));
    assert_eq!(redis.platforms, vec!["linux/amd64".parse().unwrap()]);
    assert!(redis.created_at >= before && redis.started_at.is_none() && redis.finished_at.is_none());
    assert!(redis.digest.is_none() && redis.artifacts.is_empty() && redis.layers.is_empty());
    assert_eq!(store.get_import(redis.id).await.unwrap(), redis);
    assert_eq!(store.job_types().await.unwrap(), [("import".to_string(), 1)]);

    // The same source into the same target: the queued one, whoever asks and however it is spelt.
    let again =
        store.enqueue_import(new_import("docker.io/library/redis:7", "harbor.example.com/mirror/redis:7"), "dan");
    assert_eq!(again.await.unwrap(), EnqueueOutcome::Existing(redis.clone()));
    assert_eq!(store.job_types().await.unwrap(), [("import".to_string(), 1)]);
    let queued = events_of(store, import_kind::QUEUED).await;
    assert_eq!(queued.len(), 1);
    assert_eq!((queued[0].actor.as_str(), queued[0].image_id), ("carol", None));
    assert_eq!(
        queued[0].details,
        json!({ "import_id": redis.id, "source": "docker.io/library/redis:7", "target": "harbor.example.com/mirror/redis:7" })
    );

    // Another target is another import.
    let other = enqueue(store, "redis:7", "harbor.example.com/other/redis:7", "carol").await;
    assert_ne!(other.id, redis.id);

    // Still the same once it succeeded, and then no job is left for it.
    succeed(store, &redis, digest(1), vec![artifact(2, "amd64", 10)]).await;
    let EnqueueOutcome::Existing(done) =
        store.enqueue_import(new_import("redis:7", "harbor.example.com/mirror/redis:7"), "dan").await.unwrap()
    else {
        panic!("expected the succeeded import")
    };
    assert_eq!((done.id, done.state), (redis.id, ImportState::Succeeded));

    // A failed import makes way for a new one, and so does a canceled one.
    let job = start(store, "w", &other).await;
    let failed = AttemptOutcome::Failed { error: "manifest unknown".into() };
    assert!(store.finish_import_attempt(other.id, job.id, "w", failed).await.unwrap());
    let retried = enqueue(store, "redis:7", "harbor.example.com/other/redis:7", "carol").await;
    assert!(retried.id > other.id);
    store.cancel_import(retried.id, "carol").await.unwrap();
    let third = enqueue(store, "redis:7", "harbor.example.com/other/redis:7", "carol").await;
    assert!(third.id > retried.id);
    assert_eq!(events_of(store, import_kind::QUEUED).await.len(), 4);

    // Nonsense limits change nothing.
    let events = event_count(store).await;
    let zero_attempts = NewImport { max_attempts: 0, ..new_import("nginx", "harbor.example.com/m/nginx:1") };
    assert_invalid(store.enqueue_import(zero_attempts, "carol").await, "max_attempts");
    let no_time = NewImport { timeout_secs: 0, ..new_import("nginx", "harbor.example.com/m/nginx:1") };
    assert_invalid(store.enqueue_import(no_time, "carol").await, "timeout_secs");
    assert_eq!(event_count(store).await, events);
    assert_not_found(store.get_import(ImportId::new(42_000)).await, "import", 42_000);
}

async fn an_import_keeps_the_registry_secret_it_names(db: TestDb) {
    let store = &db.store;
    let named = image_core::import::SecretRef { namespace: "team-b".into(), name: "pull".into() };
    let import = NewImport {
        registry_secret: Some(named.clone()),
        ..new_import("registry.example:5000/team/app:1", "harbor.example.com/m/app:1")
    };
    let EnqueueOutcome::Started(created) = store.enqueue_import(import, "carol").await.unwrap() else {
        panic!("a new import is started");
    };
    assert_eq!(created.registry_secret.as_ref(), Some(&named));
    assert_eq!(store.get_import(created.id).await.unwrap().registry_secret, Some(named));
    let plain = enqueue(store, "redis:7", "harbor.example.com/mirror/redis:7", "carol").await;
    assert_eq!(store.get_import(plain.id).await.unwrap().registry_secret, None);
}

async fn concurrent_enqueues_queue_one_import(db: TestDb) {
    let store = &db.store;
    let racers: Vec<_> = (0..6)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .enqueue_import(new_import("nginx:1.27", "harbor.example.com/m/nginx:1.27"), &format!("u{n}"))
                    .await
            })
        })
        .collect();
    let mut started = Vec::new();
    let mut existing = Vec::new();
    for racer in racers {
        match racer.await.unwrap().unwrap() {
            EnqueueOutcome::Started(import) => started.push(import.id),
            EnqueueOutcome::Existing(import) => existing.push(import.id),
        }
    }
    assert_eq!(started.len(), 1, "{started:?} {existing:?}");
    assert!(existing.iter().all(|id| *id == started[0]));
    assert_eq!(store.list_imports(&ImportFilter::default()).await.unwrap().total, 1);
    assert_eq!(store.job_types().await.unwrap(), [("import".to_string(), 1)]);
    assert_eq!(events_of(store, import_kind::QUEUED).await.len(), 1);
}

async fn a_claimed_job_is_not_claimed_again(db: TestDb) {
    let store = &db.store;
    let import = enqueue(store, "redis:7", "harbor.example.com/mirror/redis:7", "carol").await;
    assert_eq!(store.claim_job("w1", &["sync"], LEASE).await.unwrap(), None, "another type");
    assert_eq!(store.claim_job("w1", &[], LEASE).await.unwrap(), None, "no type");

    let before = OffsetDateTime::now_utc();
    let job = claim(store, "w1", &import).await;
    assert_eq!((job.job_type.as_str(), job.attempts, job.max_attempts), ("import", 1, 3));
    let lease = job.lease_until - before;
    assert!(lease >= Duration::seconds(30) && lease < Duration::seconds(35), "{lease}");
    assert_eq!(store.claim_job("w2", IMPORT, LEASE).await.unwrap(), None);
    assert_eq!(store.claim_job("w1", IMPORT, LEASE).await.unwrap(), None, "not even by its holder");

    // Claiming does not touch the import; starting an attempt does, for the holder only.
    assert_eq!(store.get_import(import.id).await.unwrap(), import);
    assert!(!store.start_import_attempt(import.id, job.id, "w2", 1).await.unwrap());
    assert!(
        !store.start_import_attempt(import.id, JobId::new(job.id.get() + 1), "w1", 1).await.unwrap(),
        "not its job"
    );
    assert_eq!(store.get_import(import.id).await.unwrap(), import);
    let started_at = OffsetDateTime::now_utc();
    assert!(store.start_import_attempt(import.id, job.id, "w1", 1).await.unwrap());
    let running = store.get_import(import.id).await.unwrap();
    assert_eq!((running.state, running.attempts), (ImportState::Running, 1));
    assert!(running.started_at.unwrap() >= started_at && running.updated_at >= started_at);

    // Higher priority first, then older; a job due later waits.
    let now = OffsetDateTime::now_utc();
    let low = store.enqueue_job("sync", &json!({ "n": 1 }), 0, now, 1).await.unwrap();
    let high = store.enqueue_job("sync", &json!({ "n": 2 }), 5, now, 1).await.unwrap();
    let later = store.enqueue_job("sync", &json!({ "n": 3 }), 9, now + Duration::hours(1), 1).await.unwrap();
    let high_too = store.enqueue_job("sync", &json!({ "n": 4 }), 5, now, 1).await.unwrap();
    let mut order = Vec::new();
    while let Some(job) = store.claim_job("w3", &["sync", "import"], LEASE).await.unwrap() {
        order.push(job.id);
    }
    assert_eq!(order, [high, high_too, low]);
    assert!(!order.contains(&later));
    assert_invalid(store.enqueue_job("sync", &json!({}), 0, now, 0).await, "max_attempts");
}

async fn concurrent_workers_claim_each_job_once(db: TestDb) {
    let store = &db.store;
    let mut imports = Vec::new();
    for n in 0..5 {
        imports.push(
            enqueue(store, &format!("redis:7.{n}"), &format!("harbor.example.com/m/redis:7.{n}"), "c").await.id.get(),
        );
    }
    let workers: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let worker = format!("worker-{n}");
                let mut claimed = Vec::new();
                while let Some(job) = store.claim_job(&worker, IMPORT, LEASE).await.unwrap() {
                    claimed.push((job.payload["import_id"].as_i64().unwrap(), job.attempts));
                }
                claimed
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for worker in workers {
        claimed.extend(worker.await.unwrap());
    }
    assert!(claimed.iter().all(|(_, attempts)| *attempts == 1));
    let mut ids: Vec<i64> = claimed.into_iter().map(|(id, _)| id).collect();
    ids.sort_unstable();
    assert_eq!(ids, imports);
}

async fn an_expired_lease_passes_to_another_worker(db: TestDb) {
    let store = &db.store;
    let import = enqueue(store, "redis:7", "harbor.example.com/mirror/redis:7", "carol").await;
    let short = std::time::Duration::from_millis(1);
    let first = store.claim_job("w1", IMPORT, short).await.unwrap().unwrap();
    assert!(store.start_import_attempt(import.id, first.id, "w1", first.attempts).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    // w1 stopped renewing (it died, or stalled): w2 takes the job over, as the next attempt.
    let second = store.claim_job("w2", IMPORT, LEASE).await.unwrap().unwrap();
    assert_eq!((second.id, second.attempts), (first.id, 2));
    assert_eq!(store.claim_job("w3", IMPORT, LEASE).await.unwrap(), None);

    // w1 has lost it, whatever it tries.
    assert!(!store.renew_lease(first.id, "w1", LEASE).await.unwrap());
    assert!(!store.start_import_attempt(import.id, first.id, "w1", 1).await.unwrap());
    let progress = AttemptOutcome::Succeeded { digest: digest(1), artifacts: vec![] };
    assert!(!store.finish_import_attempt(import.id, first.id, "w1", progress).await.unwrap());
    assert!(!store.retry_job(first.id, "w1", "late", OffsetDateTime::now_utc()).await.unwrap());
    assert!(!store.complete_job(first.id, "w1").await.unwrap());

    // w2 holds it, and renewing keeps it.
    assert!(store.start_import_attempt(import.id, second.id, "w2", second.attempts).await.unwrap());
    assert!(store.renew_lease(second.id, "w2", short).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(store.renew_lease(second.id, "w2", LEASE).await.unwrap(), "ended but not taken over: still w2's");
    assert_eq!(store.claim_job("w3", IMPORT, LEASE).await.unwrap(), None);
    let running = store.get_import(import.id).await.unwrap();
    assert_eq!((running.state, running.attempts), (ImportState::Running, 2));

    // The queue's own completion, for jobs without an import.
    assert!(store.complete_job(second.id, "w2").await.unwrap());
    assert!(!store.renew_lease(second.id, "w2", LEASE).await.unwrap());
    assert!(store.job_types().await.unwrap().is_empty());
}

async fn a_retried_job_waits_for_its_time(db: TestDb) {
    let store = &db.store;
    let import = enqueue(store, "redis:7", "harbor.example.com/mirror/redis:7", "carol").await;
    let job = start(store, "w1", &import).await;
    let retry_at = OffsetDateTime::now_utc() + Duration::milliseconds(400);
    let outcome = AttemptOutcome::Retry { error: "503 from registry-1.docker.io".into(), retry_at };
    assert!(store.finish_import_attempt(import.id, job.id, "w1", outcome).await.unwrap());
    let queued = store.get_import(import.id).await.unwrap();
    assert_eq!((queued.state, queued.attempts), (ImportState::Queued, 1));
    assert_eq!(queued.error.as_deref(), Some("503 from registry-1.docker.io"));
    assert!(queued.finished_at.is_none());
    assert!(!store.renew_lease(job.id, "w1", LEASE).await.unwrap(), "the lease went with the retry");

    assert_eq!(store.claim_job("w2", IMPORT, LEASE).await.unwrap(), None, "not due yet");
    tokio::time::sleep_until(tokio::time::Instant::now() + std::time::Duration::from_millis(450)).await;
    let again = claim(store, "w2", &import).await;
    assert_eq!((again.id, again.attempts), (job.id, 2));
    assert!(store.start_import_attempt(import.id, again.id, "w2", again.attempts).await.unwrap());
    let running = store.get_import(import.id).await.unwrap();
    assert_eq!((running.state, running.attempts, running.error), (ImportState::Running, 2, None));
    assert_eq!(running.started_at, queued.started_at, "started_at is the first attempt's");
    assert!(running.started_at.is_some());

    // The queue's own retry works the same for any job.
    let now = OffsetDateTime::now_utc();
    let sync = store.enqueue_job("sync", &json!({ "subscription": 7 }), 0, now, 3).await.unwrap();
    let claimed = store.claim_job("w3", &["sync"], LEASE).await.unwrap().unwrap();
    assert_eq!((claimed.id, claimed.payload.clone()), (sync, json!({ "subscription": 7 })));
    assert!(store.retry_job(sync, "w3", "timeout", now + Duration::milliseconds(300)).await.unwrap());
    assert!(!store.retry_job(sync, "w3", "timeout", now).await.unwrap(), "no longer held");
    assert_eq!(store.claim_job("w3", &["sync"], LEASE).await.unwrap(), None);
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    let claimed = store.claim_job("w4", &["sync"], LEASE).await.unwrap().unwrap();
    assert_eq!((claimed.id, claimed.attempts), (sync, 2));
}

async fn running_out_of_attempts_fails_the_import(db: TestDb) {
    let store = &db.store;
    let two_tries = NewImport { max_attempts: 2, ..new_import("redis:7", "harbor.example.com/mirror/redis:7") };
    let EnqueueOutcome::Started(import) = store.enqueue_import(two_tries, "carol").await.unwrap() else { panic!() };
    for attempt in 1..=2 {
        let job = start(store, "w", &import).await;
        assert_eq!(job.attempts, attempt);
        let outcome =
            AttemptOutcome::Retry { error: format!("timeout {attempt}"), retry_at: OffsetDateTime::now_utc() };
        assert!(store.finish_import_attempt(import.id, job.id, "w", outcome).await.unwrap());
    }
    let failed = store.get_import(import.id).await.unwrap();
    assert_eq!((failed.state, failed.attempts, failed.error.as_deref()), (ImportState::Failed, 2, Some("timeout 2")));
    assert!(failed.finished_at.is_some());
    assert_eq!(store.claim_job("w", IMPORT, LEASE).await.unwrap(), None);
    assert!(store.job_types().await.unwrap().is_empty());
    let events = events_of(store, import_kind::FAILED).await;
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].actor.as_str(), events[0].details["error"].clone()), ("carol", json!("timeout 2")));
    assert_eq!(events[0].details["attempts"], 2);

    // A failure for good needs no more attempts.
    let import = enqueue(store, "nginx", "harbor.example.com/mirror/nginx:latest", "carol").await;
    let job = start(store, "w", &import).await;
    let outcome = AttemptOutcome::Failed { error: "schema1 manifests are not supported".into() };
    assert!(store.finish_import_attempt(import.id, job.id, "w", outcome.clone()).await.unwrap());
    let failed = store.get_import(import.id).await.unwrap();
    assert_eq!((failed.state, failed.attempts), (ImportState::Failed, 1));
    assert!(!store.finish_import_attempt(import.id, job.id, "w", outcome).await.unwrap(), "once");
    assert!(store.job_types().await.unwrap().is_empty());
}

async fn a_successful_import_adds_its_image_and_tag_to_the_catalog(db: TestDb) {
    let store = &db.store;
    let images = store.list_images(&all()).await.unwrap().total;
    let widget = enqueue(store, "ghcr.io/acme/widget:1.0", "harbor.example.com/mirror/widget:1.0", "carol").await;
    let job = start(store, "w", &widget).await;
    let layers = vec![layer(10, 100, 40, LayerState::Downloading), layer(11, 50, 0, LayerState::Waiting)];
    let artifacts = vec![artifact(2, "amd64", 1000), artifact(3, "arm64", 900)];
    store.record_import_progress(widget.id, Some(&digest(1)), &artifacts, &layers).await.unwrap();
    let before = OffsetDateTime::now_utc();
    let outcome = AttemptOutcome::Succeeded { digest: digest(1), artifacts: artifacts.clone() };
    assert!(store.finish_import_attempt(widget.id, job.id, "w", outcome).await.unwrap());

    let done = store.get_import(widget.id).await.unwrap();
    assert_eq!(
        (done.state, done.digest.as_ref(), done.error.as_deref()),
        (ImportState::Succeeded, Some(&digest(1)), None)
    );
    assert_eq!(done.artifacts, artifacts);
    assert!(done.layers.iter().all(|l| l.state == LayerState::Completed && l.done == l.size && l.percent() == 100));
    assert_eq!(done.layers.len(), 2);
    assert!(done.finished_at.unwrap() >= before);
    assert!(store.job_types().await.unwrap().is_empty());
    assert!(!store.renew_lease(job.id, "w", LEASE).await.unwrap());

    let image = store.find_image("ghcr.io", "acme", "widget").await.unwrap().expect("the source's image");
    assert_eq!(
        (image.approval_status, image.is_official, image.category.as_deref()),
        (ApprovalStatus::Pending, false, None)
    );
    let tags = store.list_tags(image.id).await.unwrap();
    assert_eq!(tags.len(), 1);
    let tag = &tags[0];
    assert_eq!((tag.tag.as_str(), tag.digest.as_ref(), tag.size_bytes), ("1.0", Some(&digest(1)), Some(1000)));
    assert_eq!((tag.architecture.as_deref(), tag.os.as_deref()), (Some("amd64"), Some("linux")));
    assert!(tag.pushed_at.unwrap() >= before && !tag.is_recommended);
    let events =
        store.list_events(&EventFilter { image_id: Some(image.id), ..EventFilter::default() }).await.unwrap().items;
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, [import_kind::SUCCEEDED, kind::TAG_ADDED, kind::IMAGE_ADDED]);
    assert!(events.iter().all(|e| e.actor == "carol"));
    assert_eq!(events[0].tag_id, Some(tag.id));
    assert_eq!(events[0].details["import_id"], widget.id.get());
    assert_eq!(events[0].details["digest"], digest(1).as_str());

    // Another tag of the same image joins the same catalog image.
    let two = enqueue(store, "ghcr.io/acme/widget:2.0", "harbor.example.com/mirror/widget:2.0", "dan").await;
    succeed(store, &two, digest(4), vec![artifact(5, "arm64", 700)]).await;
    let tags = store.list_tags(image.id).await.unwrap();
    assert_eq!(tags.iter().map(|t| t.tag.as_str()).collect::<Vec<_>>(), ["1.0", "2.0"]);
    assert_eq!((tags[1].architecture.as_deref(), tags[1].size_bytes), (Some("arm64"), Some(700)));
    assert_eq!(store.list_images(&all()).await.unwrap().total, images + 1);

    // Importing a tag the image has updates it.
    let again = enqueue(store, "ghcr.io/acme/widget:1.0", "harbor.example.com/other/widget:1.0", "dan").await;
    succeed(store, &again, digest(6), vec![artifact(7, "amd64", 1200)]).await;
    let tags = store.list_tags(image.id).await.unwrap();
    assert_eq!(tags.len(), 2);
    assert_eq!((tags[0].id, tags[0].digest.as_ref(), tags[0].size_bytes), (tag.id, Some(&digest(6)), Some(1200)));
    assert!(tags[0].pushed_at > tag.pushed_at);
    let updated = store
        .list_events(&EventFilter { event_type: Some(kind::TAG_UPDATED.into()), ..EventFilter::default() })
        .await
        .unwrap()
        .items;
    assert_eq!(updated.len(), 1);
    assert_eq!((updated[0].actor.as_str(), updated[0].tag_id), ("dan", Some(tag.id)));
    assert_eq!(updated[0].details["changes"], json!(["digest", "pushed_at", "size_bytes"]));

    // An official image goes to the existing seed image, approved as it was.
    let redis = enqueue(store, "redis:8", "harbor.example.com/library/redis:8", "carol").await;
    succeed(store, &redis, digest(8), vec![artifact(9, "amd64", 30)]).await;
    let seed = store.get_image(ImageId::new(1)).await.unwrap();
    assert_eq!((seed.approval_status, seed.approved_by.as_deref()), (ApprovalStatus::Approved, Some("system")));
    assert_eq!(store.list_tags(ImageId::new(1)).await.unwrap().len(), 5);
    let valkey = enqueue(store, "valkey/valkey:8", "harbor.example.com/library/valkey:8", "carol").await;
    succeed(store, &valkey, digest(12), vec![]).await;
    let valkey = store.find_image("docker.io", "valkey", "valkey").await.unwrap().unwrap();
    assert!(!valkey.is_official);
    let tags = store.list_tags(valkey.id).await.unwrap();
    assert_eq!((tags[0].size_bytes, tags[0].architecture.as_deref()), (None, None), "no artifacts, no platform");
    let caddy = enqueue(store, "caddy:2", "harbor.example.com/library/caddy:2", "carol").await;
    succeed(store, &caddy, digest(13), vec![]).await;
    assert!(store.find_image("docker.io", "library", "caddy").await.unwrap().unwrap().is_official);
    let rootless = enqueue(store, "registry.example.com/app:3", "harbor.example.com/m/app:3", "carol").await;
    succeed(store, &rootless, digest(14), vec![]).await;
    assert!(store.find_image("registry.example.com", "", "app").await.unwrap().is_some());
}

async fn concurrent_successes_add_one_catalog_image(db: TestDb) {
    let store = &db.store;
    let mut held = Vec::new();
    for n in 0..4 {
        let import =
            enqueue(store, &format!("quay.io/acme/tool:{n}"), &format!("harbor.example.com/m/tool:{n}"), "c").await;
        let worker = format!("w{n}");
        let job = start(store, &worker, &import).await;
        held.push((import, job, worker));
    }
    let finishers: Vec<_> = held
        .into_iter()
        .map(|(import, job, worker)| {
            let store = store.clone();
            tokio::spawn(async move {
                let outcome = AttemptOutcome::Succeeded { digest: digest(import.id.get() as u8), artifacts: vec![] };
                store.finish_import_attempt(import.id, job.id, &worker, outcome).await
            })
        })
        .collect();
    for finisher in finishers {
        assert!(finisher.await.unwrap().unwrap());
    }
    let image = store.find_image("quay.io", "acme", "tool").await.unwrap().unwrap();
    assert_eq!(store.list_tags(image.id).await.unwrap().len(), 4);
    assert_eq!(events_of(store, kind::IMAGE_ADDED).await.len(), 1);
    assert_eq!(events_of(store, import_kind::SUCCEEDED).await.len(), 4);
}

async fn progress_round_trips(db: TestDb) {
    let store = &db.store;
    let import = enqueue(store, "redis:7", "harbor.example.com/mirror/redis:7", "carol").await;
    let job = start(store, "w", &import).await;
    let mut layers = vec![
        layer(10, 1_000, 1_000, LayerState::Completed),
        layer(11, 3_000_000_000, 1_500_000_000, LayerState::Downloading),
        layer(12, 20, 0, LayerState::Waiting),
    ];
    layers[0].via = Some(BlobCopy::Mounted);
    let artifacts =
        vec![artifact(2, "amd64", 3_000_001_020), Artifact { variant: Some("v8".into()), ..artifact(3, "arm64", 5) }];
    store.record_import_progress(import.id, Some(&digest(1)), &artifacts, &layers).await.unwrap();
    let seen = store.get_import(import.id).await.unwrap();
    assert_eq!((seen.digest.as_ref(), &seen.artifacts, &seen.layers), (Some(&digest(1)), &artifacts, &layers));
    assert_eq!(seen.layers[1].percent(), 50);
    assert!(seen.updated_at >= import.updated_at);

    // No digest keeps the known one; the lists are replaced.
    layers[1].done = 3_000_000_000;
    layers[1].state = LayerState::Failed;
    store.record_import_progress(import.id, None, &[], &layers).await.unwrap();
    let seen = store.get_import(import.id).await.unwrap();
    assert_eq!((seen.digest.as_ref(), seen.artifacts.len(), &seen.layers), (Some(&digest(1)), 0, &layers));

    // A report that arrives after the end changes nothing.
    let outcome = AttemptOutcome::Failed { error: "digest mismatch".into() };
    assert!(store.finish_import_attempt(import.id, job.id, "w", outcome).await.unwrap());
    let failed = store.get_import(import.id).await.unwrap();
    store.record_import_progress(import.id, Some(&digest(9)), &[], &[]).await.unwrap();
    assert_eq!(store.get_import(import.id).await.unwrap(), failed);
    assert_not_found(store.record_import_progress(ImportId::new(42_000), None, &[], &[]).await, "import", 42_000);
}

async fn canceling_removes_the_job(db: TestDb) {
    let store = &db.store;
    let running = enqueue(store, "redis:7", "harbor.example.com/mirror/redis:7", "carol").await;
    let queued = enqueue(store, "nginx:1", "harbor.example.com/mirror/nginx:1", "carol").await;
    let job = start(store, "w", &running).await;

    let canceled = store.cancel_import(running.id, "bob").await.unwrap();
    assert_eq!(canceled.state, ImportState::Canceled);
    assert!(canceled.finished_at.is_some());
    assert_eq!(store.get_import(running.id).await.unwrap(), canceled);
    // The worker learns at its next renewal; whatever it reports later is refused.
    assert!(!store.renew_lease(job.id, "w", LEASE).await.unwrap());
    let outcome = AttemptOutcome::Succeeded { digest: digest(1), artifacts: vec![] };
    assert!(!store.finish_import_attempt(running.id, job.id, "w", outcome).await.unwrap());
    assert!(!store.start_import_attempt(running.id, job.id, "w", 2).await.unwrap());
    assert_eq!(store.get_import(running.id).await.unwrap(), canceled);
    assert_eq!(store.find_image("docker.io", "library", "redis").await.unwrap().map(|i| i.id), Some(ImageId::new(1)));
    assert_eq!(store.list_tags(ImageId::new(1)).await.unwrap().len(), 4, "nothing reached the catalog");

    // A queued one is never handed out.
    store.cancel_import(queued.id, "carol").await.unwrap();
    assert_eq!(store.claim_job("w", IMPORT, LEASE).await.unwrap(), None);
    assert!(store.job_types().await.unwrap().is_empty());

    assert_conflict(
        store.cancel_import(running.id, "bob").await,
        &format!("import {} is already canceled", running.id),
    );
    let done = enqueue(store, "mongo:8", "harbor.example.com/mirror/mongo:8", "carol").await;
    succeed(store, &done, digest(2), vec![]).await;
    assert_conflict(store.cancel_import(done.id, "bob").await, &format!("import {} is already succeeded", done.id));
    assert_not_found(store.cancel_import(ImportId::new(42_000), "bob").await, "import", 42_000);

    let events = events_of(store, import_kind::CANCELED).await;
    assert_eq!(events.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>(), ["carol", "bob"]);
    assert_eq!(events[1].details["import_id"], running.id.get());
}

async fn an_active_import_is_not_deleted(db: TestDb) {
    let store = &db.store;
    let import = enqueue(store, "redis:7", "harbor.example.com/mirror/redis:7", "carol").await;
    assert_conflict(
        store.delete_import(import.id, "bob").await,
        &format!("import {} is queued; cancel it first", import.id),
    );
    start(store, "w", &import).await;
    assert_conflict(
        store.delete_import(import.id, "bob").await,
        &format!("import {} is running; cancel it first", import.id),
    );
    assert!(store.get_import(import.id).await.is_ok());
    assert!(events_of(store, import_kind::DELETED).await.is_empty());

    let canceled = store.cancel_import(import.id, "bob").await.unwrap();
    assert_eq!(store.delete_import(import.id, "bob").await.unwrap(), canceled);
    assert_not_found(store.get_import(import.id).await, "import", import.id);
    assert_not_found(store.delete_import(import.id, "bob").await, "import", import.id);
    let events = events_of(store, import_kind::DELETED).await;
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].actor.as_str(), events[0].details["id"].clone()), ("bob", json!(import.id)));

    // A succeeded import's record may go; the catalog keeps what it added.
    let done = enqueue(store, "ghcr.io/acme/widget:1", "harbor.example.com/m/widget:1", "carol").await;
    succeed(store, &done, digest(1), vec![]).await;
    store.delete_import(done.id, "bob").await.unwrap();
    assert!(store.find_image("ghcr.io", "acme", "widget").await.unwrap().is_some());
}

async fn a_catalog_image_with_an_active_import_is_not_deleted(db: TestDb) {
    let store = &db.store;
    let import = enqueue(store, "redis:7", "harbor.example.com/mirror/redis:7", "carol").await;
    let events = event_count(store).await;
    let message = format!("image docker.io/library/redis has an import in progress (import {})", import.id);
    assert_conflict(store.delete_image(ImageId::new(1), ADMIN).await, &message);
    start(store, "w", &import).await;
    assert_conflict(store.delete_image(ImageId::new(1), ADMIN).await, &message);
    assert_eq!(store.list_tags(ImageId::new(1)).await.unwrap().len(), 4);
    assert_eq!(event_count(store).await, events);

    // At a registry's root too; another image of the same registry is free to go.
    let app = NewImage::new("app", Some("registry.example.com"), None, None, None, false, ApprovalStatus::Pending);
    let app = store.create_image(app.unwrap(), ADMIN).await.unwrap();
    let other = NewImage::new("other", Some("registry.example.com"), None, None, None, false, ApprovalStatus::Pending);
    let other = store.create_image(other.unwrap(), ADMIN).await.unwrap();
    let app_import = enqueue(store, "registry.example.com/app:1", "harbor.example.com/m/app:1", "carol").await;
    assert_conflict(
        store.delete_image(app.id, ADMIN).await,
        &format!("image registry.example.com/app has an import in progress (import {})", app_import.id),
    );
    store.delete_image(other.id, ADMIN).await.unwrap();

    // Once the imports are over, the images may go.
    store.cancel_import(import.id, "carol").await.unwrap();
    store.cancel_import(app_import.id, "carol").await.unwrap();
    store.delete_image(ImageId::new(1), ADMIN).await.unwrap();
    store.delete_image(app.id, ADMIN).await.unwrap();
}

async fn imports_are_filtered_ordered_and_paged(db: TestDb) {
    let store = &db.store;
    let a = enqueue(store, "redis:7", "harbor.example.com/b-mirror/redis:7", "carol").await;
    let b = enqueue(store, "nginx:1", "harbor.example.com/a-mirror/nginx:1", "dan").await;
    let c = enqueue(store, "redis:8", "harbor.example.com/c-mirror/redis:7", "carol").await;
    let d = enqueue(store, "mongo:8", "harbor.example.com/a-mirror/mongo:0", "carol").await;
    succeed(store, &a, digest(1), vec![]).await;
    let list = |filter: ImportFilter| async move {
        let listing = store.list_imports(&filter).await.unwrap();
        (listing.items.into_iter().map(|i| i.id).collect::<Vec<_>>(), listing.total)
    };

    assert_eq!(list(ImportFilter::default()).await, (vec![a.id, b.id, c.id, d.id], 4));
    let newest_first = ImportFilter { descending: true, ..ImportFilter::default() };
    assert_eq!(list(newest_first).await, (vec![d.id, c.id, b.id, a.id], 4));
    let tag7 = ImportFilter { tag: Some("7".into()), ..ImportFilter::default() };
    assert_eq!(list(tag7).await, (vec![a.id, c.id], 2));
    let ready = ImportFilter { ready: Some(true), ..ImportFilter::default() };
    assert_eq!(list(ready).await, (vec![a.id], 1));
    let not_ready = ImportFilter { ready: Some(false), ..ImportFilter::default() };
    assert_eq!(list(not_ready).await, (vec![b.id, c.id, d.id], 3));
    let by_carol = ImportFilter { created_by: Some("carol".into()), ready: Some(false), ..ImportFilter::default() };
    assert_eq!(list(by_carol).await, (vec![c.id, d.id], 2));

    let by_repo = ImportFilter { order_by: ImportOrder::Repository, ..ImportFilter::default() };
    assert_eq!(list(by_repo.clone()).await.0, [d.id, b.id, a.id, c.id]);
    let by_repo_desc = ImportFilter { descending: true, ..by_repo };
    assert_eq!(list(by_repo_desc).await.0, [c.id, a.id, b.id, d.id]);
    let by_tag = ImportFilter { order_by: ImportOrder::Tag, ..ImportFilter::default() };
    assert_eq!(list(by_tag.clone()).await.0, [d.id, b.id, a.id, c.id]);
    let by_tag_desc = ImportFilter { descending: true, ..by_tag };
    assert_eq!(list(by_tag_desc).await.0, [c.id, a.id, b.id, d.id]);
    let by_id_desc = ImportFilter { order_by: ImportOrder::Id, descending: true, ..ImportFilter::default() };
    assert_eq!(list(by_id_desc.clone()).await.0, [d.id, c.id, b.id, a.id]);

    let page = ImportFilter { page: Page::new(Some(2), Some(1)).unwrap(), ..by_id_desc.clone() };
    assert_eq!(list(page).await, (vec![c.id, b.id], 4));
    let beyond = ImportFilter { page: Page::new(Some(2), Some(10)).unwrap(), ..by_id_desc };
    assert_eq!(list(beyond).await, (vec![], 4));
    let listed = store.list_imports(&ImportFilter::default()).await.unwrap();
    assert_eq!(listed.items[1], store.get_import(b.id).await.unwrap());
}

async fn exports_are_recorded_and_listed(db: TestDb) {
    let store = &db.store;
    let record = |tag: &str, by: &str, phase: ExportPhase| ExportRecord {
        id: ExportId::new(99),
        registry_host: "harbor.example.com".into(),
        repository: "custom/app".into(),
        tag: tag.into(),
        source: Some("pod default/app-0".into()),
        description: None,
        created_by: by.into(),
        phase,
        created_at: OffsetDateTime::UNIX_EPOCH,
    };
    let before = OffsetDateTime::now_utc();
    let first = store.create_export(record("v1", "carol", ExportPhase::Pending)).await.unwrap();
    assert_ne!(first.id, ExportId::new(99));
    assert!(first.created_at >= before);
    assert_eq!(
        (first.tag.as_str(), first.phase.as_str(), first.source.as_deref()),
        ("v1", "Pending", Some("pod default/app-0"))
    );
    let second = store.create_export(record("v2", "dan", ExportPhase::Running)).await.unwrap();
    let third = store.create_export(record("v3", "carol", ExportPhase::Succeeded)).await.unwrap();

    let first = store.set_export_phase(first.id, ExportPhase::Succeeded, ADMIN, true).await.unwrap();
    assert_eq!(first.phase, ExportPhase::Succeeded);
    let missing = store.set_export_phase(ExportId::new(42_000), ExportPhase::Failed, ADMIN, true).await;
    assert_not_found(missing, "export", 42_000);

    let list = |ready: Option<bool>, by: Option<&'static str>, page: Page| async move {
        let listing = store.list_exports(ready, by, page).await.unwrap();
        (listing.items.into_iter().map(|e| e.id).collect::<Vec<_>>(), listing.total)
    };
    let all = Page::default();
    assert_eq!(list(None, None, all).await, (vec![third.id, second.id, first.id], 3));
    assert_eq!(list(Some(true), None, all).await, (vec![third.id, first.id], 2));
    assert_eq!(list(Some(false), None, all).await, (vec![second.id], 1));
    assert_eq!(list(None, Some("carol"), all).await, (vec![third.id, first.id], 2));
    assert_eq!(list(Some(true), Some("dan"), all).await, (vec![], 0));
    assert_eq!(list(None, None, Page::new(Some(1), Some(1)).unwrap()).await, (vec![second.id], 3));
    let listed = store.list_exports(None, None, all).await.unwrap();
    assert_eq!(listed.items[2], first);
}

async fn job_types_are_counted(db: TestDb) {
    let store = &db.store;
    assert!(store.job_types().await.unwrap().is_empty());
    enqueue(store, "redis:7", "harbor.example.com/m/redis:7", "c").await;
    enqueue(store, "redis:8", "harbor.example.com/m/redis:8", "c").await;
    let now = OffsetDateTime::now_utc();
    for _ in 0..3 {
        store.enqueue_job("renamed-long-ago", &json!({}), 0, now, 1).await.unwrap();
    }
    store.enqueue_job("sync", &json!({}), 0, now, 1).await.unwrap();
    // Claimed jobs count too.
    store.claim_job("w", &["sync"], LEASE).await.unwrap().unwrap();
    assert_eq!(
        store.job_types().await.unwrap(),
        [("import".to_string(), 2), ("renamed-long-ago".to_string(), 3), ("sync".to_string(), 1)]
    );
}

// ---------------------------------------------------------------------------------------------------
// Registry secrets and repositories

const PASSWORD: &str = "Harbor12345";

fn new_secret(namespace: &str, name: &str, domain: &str) -> NewRegistrySecret {
    NewRegistrySecret {
        namespace: namespace.into(),
        name: name.into(),
        display_name: None,
        description: None,
        domain: domain.into(),
        username: "admin".into(),
        password: Secret::new(PASSWORD),
        provider: Provider::Harbor,
        insecure: false,
        ca_bundle: None,
    }
    .validated()
    .unwrap()
}

fn new_repository(namespace: &str, name: &str, path: &str, tag: &str, secret: (&str, &str)) -> NewRepository {
    NewRepository {
        namespace: namespace.into(),
        name: name.into(),
        display_name: None,
        description: None,
        repository: path.into(),
        tag: tag.into(),
        registry_ref_namespace: secret.0.into(),
        registry_ref_name: secret.1.into(),
        sync_interval: NewRepository::DEFAULT_SYNC_INTERVAL,
        sync_timeout: NewRepository::DEFAULT_SYNC_TIMEOUT,
        retry_count: NewRepository::DEFAULT_RETRY_COUNT,
    }
    .validated()
    .unwrap()
}

const HARBOR: (&str, &str) = ("default", "harbor-prod");

/// `default/harbor-prod`, on harbor.example.com.
async fn harbor(store: &DbStore) -> image_core::kube::RegistrySecret {
    store.create_registry_secret(new_secret("default", "harbor-prod", "harbor.example.com"), ADMIN).await.unwrap()
}

fn page(limit: i64, offset: i64) -> Page {
    Page::new(Some(limit), Some(offset)).unwrap()
}

#[track_caller]
fn assert_missing(result: Result<impl std::fmt::Debug, Error>, kind: &str, id: &str) {
    match result {
        Err(Error::NotFound { kind: k, id: i }) if k == kind && i == id => {}
        other => panic!("expected {kind} {id} not found, got {other:?}"),
    }
}

/// The message of a `Storage` error, which must not give the password away.
#[track_caller]
fn storage_message(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        // A key that does not fit is `Unavailable` (an operator must act), other failures are storage errors.
        Err(e @ (Error::Storage(_) | Error::Unavailable(_))) => {
            let message = e.to_string();
            assert!(!message.contains(PASSWORD), "{message}");
            message
        }
        other => panic!("expected a storage or key error, got {other:?}"),
    }
}

#[derive(diesel::QueryableByName)]
struct RawText {
    #[diesel(sql_type = diesel::sql_types::Text)]
    text: String,
}

/// Runs `sql` behind the store's back: a query whose one column is named `text`, or a statement.
async fn raw_sql(db: &TestDb, sql: &str, returns_rows: bool) -> Vec<String> {
    use diesel_async::{
        AsyncConnection, AsyncPgConnection, RunQueryDsl, sync_connection_wrapper::SyncConnectionWrapper,
    };

    let query = diesel::sql_query(sql);
    let rows: Vec<RawText> = match db.url.strip_prefix("sqlite://") {
        Some(path) => {
            let mut conn = SyncConnectionWrapper::<diesel::SqliteConnection>::establish(path).await.unwrap();
            if returns_rows {
                query.load(&mut conn).await.unwrap()
            } else {
                query.execute(&mut conn).await.map(|_| vec![]).unwrap()
            }
        }
        None => {
            let mut conn = AsyncPgConnection::establish(&db.url).await.unwrap();
            if returns_rows {
                query.load(&mut conn).await.unwrap()
            } else {
                query.execute(&mut conn).await.map(|_| vec![]).unwrap()
            }
        }
    };
    rows.into_iter().map(|r| r.text).collect()
}

async fn secret_names(
    store: &DbStore,
    namespace: Option<&str>,
    search: Option<&str>,
    page: Page,
) -> (Vec<String>, i64) {
    let listing = store.list_registry_secrets(namespace, search, page).await.unwrap();
    (listing.items.into_iter().map(|s| format!("{}/{}", s.namespace, s.name)).collect(), listing.total)
}

async fn repository_names(
    store: &DbStore,
    namespace: Option<&str>,
    name: Option<&str>,
    page: Page,
) -> (Vec<String>, i64) {
    let listing = store.list_repositories(namespace, name, page).await.unwrap();
    (listing.items.into_iter().map(|r| format!("{}/{}", r.namespace, r.name)).collect(), listing.total)
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// Whether two times agree to within the store's precision (microseconds).
#[track_caller]
fn assert_about(actual: OffsetDateTime, expected: OffsetDateTime) {
    assert!((actual - expected).abs() < Duration::milliseconds(1), "{actual} != {expected}");
}

async fn registry_secrets_are_created_read_listed_and_deleted(db: TestDb) {
    let store = &db.store;
    let before = OffsetDateTime::now_utc();
    let mut new = new_secret("default", "harbor-prod", "Harbor.Example.com/");
    new.display_name = Some("生产环境 Harbor".into());
    new.description = Some("生产环境主镜像仓库".into());
    let created = store.create_registry_secret(new, ADMIN).await.unwrap();
    assert_eq!(
        (created.namespace.as_str(), created.name.as_str(), created.domain.as_str(), created.username.as_str()),
        ("default", "harbor-prod", "harbor.example.com", "admin")
    );
    assert_eq!(
        (created.display_name.as_deref(), created.description.as_deref()),
        (Some("生产环境 Harbor"), Some("生产环境主镜像仓库"))
    );
    assert_eq!((created.provider, created.insecure, created.ca_bundle.as_deref()), (Provider::Harbor, false, None));
    assert_eq!(created.password.expose(), PASSWORD);
    assert_eq!(
        (created.verify_status, created.verify_message.as_deref(), created.verify_timestamp),
        (VerifyStatus::Untested, None, None)
    );
    assert!(created.created_at >= before);
    assert_eq!(store.get_registry_secret("default", "harbor-prod").await.unwrap(), created);

    let mut hub = new_secret("default", "dockerhub", "docker.io");
    hub.provider = Provider::Dockerhub;
    hub.display_name = Some("Docker Hub, 100% mirrored".into());
    let hub = store.create_registry_secret(hub, ADMIN).await.unwrap();
    let mut aliyun = new_secret("team-a", "aliyun", "registry.cn-hangzhou.aliyuncs.com");
    aliyun.provider = Provider::Aliyun;
    aliyun.display_name = Some("cn_hangzhou".into());
    aliyun.insecure = true;
    let aliyun = store.create_registry_secret(aliyun, "bob").await.unwrap();
    assert_eq!((aliyun.provider, aliyun.insecure), (Provider::Aliyun, true));
    store
        .create_registry_secret(new_secret("team-a", "harbor-prod", "harbor.team-a.example.com"), ADMIN)
        .await
        .unwrap();

    let all = Page::default();
    let everything = names(&["default/dockerhub", "default/harbor-prod", "team-a/aliyun", "team-a/harbor-prod"]);
    assert_eq!(secret_names(store, None, None, all).await, (everything, 4));
    assert_eq!(
        secret_names(store, Some("default"), None, all).await,
        (names(&["default/dockerhub", "default/harbor-prod"]), 2)
    );
    assert_eq!(secret_names(store, Some("nowhere"), None, all).await, (vec![], 0));
    // By name or domain, case-insensitively…
    let harbors = names(&["default/harbor-prod", "team-a/harbor-prod"]);
    assert_eq!(secret_names(store, None, Some("HARBOR"), all).await, (harbors, 2));
    assert_eq!(secret_names(store, None, Some("AliyunCS"), all).await, (names(&["team-a/aliyun"]), 1));
    assert_eq!(secret_names(store, Some("default"), Some("team-a"), all).await, (vec![], 0));
    // … or by display name, with `%` and `_` taken literally.
    assert_eq!(secret_names(store, None, Some("生产环境"), all).await, (names(&["default/harbor-prod"]), 1));
    assert_eq!(secret_names(store, None, Some("100%"), all).await, (names(&["default/dockerhub"]), 1));
    assert_eq!(secret_names(store, None, Some("%"), all).await, (names(&["default/dockerhub"]), 1));
    assert_eq!(secret_names(store, None, Some("_"), all).await, (names(&["team-a/aliyun"]), 1));
    // Paged, with the total of all pages.
    assert_eq!(
        secret_names(store, None, None, page(2, 1)).await,
        (names(&["default/harbor-prod", "team-a/aliyun"]), 4)
    );
    assert_eq!(secret_names(store, None, None, page(2, 4)).await, (vec![], 4));
    let listed = store.list_registry_secrets(None, None, all).await.unwrap().items;
    assert_eq!((&listed[0], &listed[2]), (&hub, &aliyun));
    assert!(listed.iter().all(|s| s.password.expose() == PASSWORD));
    assert_eq!(store.all_registry_secrets().await.unwrap(), listed);

    let deleted = store.delete_registry_secret("default", "dockerhub", "carol").await.unwrap();
    assert_eq!(deleted, hub);
    assert_missing(store.get_registry_secret("default", "dockerhub").await, "registry secret", "default/dockerhub");
    assert_missing(
        store.delete_registry_secret("default", "dockerhub", ADMIN).await,
        "registry secret",
        "default/dockerhub",
    );
    assert_missing(store.get_registry_secret("team-b", "harbor-prod").await, "registry secret", "team-b/harbor-prod");
    assert_eq!(store.all_registry_secrets().await.unwrap().len(), 3);

    let created_events = events_of(store, kube_kind::SECRET_CREATED).await;
    assert_eq!(created_events.len(), 4);
    let first = created_events.last().unwrap();
    assert_eq!(first.actor, ADMIN);
    assert_eq!(
        first.details,
        json!({
            "id": created.id, "namespace": "default", "name": "harbor-prod", "display_name": "生产环境 Harbor",
            "description": "生产环境主镜像仓库", "domain": "harbor.example.com", "username": "admin",
            "provider": "harbor", "insecure": false, "ca_bundle": false,
        })
    );
    let deleted_events = events_of(store, kube_kind::SECRET_DELETED).await;
    assert_eq!(deleted_events.len(), 1);
    assert_eq!((deleted_events[0].actor.as_str(), &deleted_events[0].details["name"]), ("carol", &json!("dockerhub")));
}

async fn a_duplicate_registry_secret_conflicts_and_writes_nothing(db: TestDb) {
    let store = &db.store;
    let original = harbor(store).await;
    let events = event_count(store).await;
    let mut again = new_secret("default", "harbor-prod", "other.example.com");
    again.password = Secret::new("another-password");
    assert_conflict(
        store.create_registry_secret(again, ADMIN).await,
        "registrysecret default/harbor-prod already exists",
    );
    assert_eq!(event_count(store).await, events);
    assert_eq!(store.get_registry_secret("default", "harbor-prod").await.unwrap(), original);
    // The same name in another namespace is another secret.
    store.create_registry_secret(new_secret("team-a", "harbor-prod", "harbor.example.com"), ADMIN).await.unwrap();
    assert_eq!(secret_names(store, None, None, Page::default()).await.1, 2);
}

async fn repositories_are_created_read_listed_and_deleted(db: TestDb) {
    let store = &db.store;
    harbor(store).await;
    store.create_registry_secret(new_secret("team-a", "mirror", "mirror.example.com"), ADMIN).await.unwrap();
    let before = OffsetDateTime::now_utc();
    let mut new = new_repository("default", "nginx-latest", "library/nginx", "latest", HARBOR);
    new.display_name = Some("Nginx 最新版本".into());
    new.description = Some("Nginx web 服务器".into());
    new.sync_interval = std::time::Duration::from_secs(5400);
    new.sync_timeout = std::time::Duration::from_millis(1500);
    new.retry_count = 5;
    let nginx = store.create_repository(new, ADMIN).await.unwrap();
    let after = OffsetDateTime::now_utc();
    assert_eq!(
        (nginx.namespace.as_str(), nginx.name.as_str(), nginx.repository.as_str(), nginx.tag.as_str()),
        ("default", "nginx-latest", "library/nginx", "latest")
    );
    assert_eq!(
        (nginx.display_name.as_deref(), nginx.description.as_deref()),
        (Some("Nginx 最新版本"), Some("Nginx web 服务器"))
    );
    assert_eq!((nginx.registry_ref_namespace.as_str(), nginx.registry_ref_name.as_str()), HARBOR);
    assert_eq!(nginx.domain.as_deref(), Some("harbor.example.com"));
    // Whole seconds, a fraction rounded up.
    assert_eq!((nginx.sync_interval.as_secs(), nginx.sync_timeout.as_secs(), nginx.retry_count), (5400, 2, 5));
    assert_eq!(
        (nginx.sync_status, nginx.sync_message.as_deref(), nginx.last_synced, nginx.manifest.as_ref()),
        (None, None, None, None)
    );
    // The first sync is due at once.
    assert!(
        nginx.next_sync_at >= before - Duration::milliseconds(1) && nginx.next_sync_at <= after,
        "{}",
        nginx.next_sync_at
    );
    assert!(nginx.created_at >= before - Duration::milliseconds(1));
    assert_eq!(store.get_repository("default", "nginx-latest").await.unwrap(), nginx);

    let myapp = store
        .create_repository(new_repository("default", "myapp-v1-0-0", "myapp/myapp", "v1.0.0", HARBOR), ADMIN)
        .await
        .unwrap();
    assert_eq!((myapp.sync_interval.as_secs(), myapp.sync_timeout.as_secs(), myapp.retry_count), (3600, 600, 3));
    let redis = store
        .create_repository(new_repository("team-a", "redis-7", "library/redis", "7", ("team-a", "mirror")), "bob")
        .await
        .unwrap();
    assert_eq!(redis.domain.as_deref(), Some("mirror.example.com"));
    // Across namespaces too.
    let cross = store
        .create_repository(new_repository("team-b", "nginx", "library/nginx", "1.27", HARBOR), ADMIN)
        .await
        .unwrap();
    assert_eq!(cross.domain.as_deref(), Some("harbor.example.com"));

    let all = Page::default();
    let everything = names(&["default/myapp-v1-0-0", "default/nginx-latest", "team-a/redis-7", "team-b/nginx"]);
    assert_eq!(repository_names(store, None, None, all).await, (everything, 4));
    assert_eq!(repository_names(store, Some("team-a"), None, all).await, (names(&["team-a/redis-7"]), 1));
    assert_eq!(repository_names(store, Some("nowhere"), None, all).await, (vec![], 0));
    // By name or repository path, case-insensitively, `%` and `_` literally.
    assert_eq!(
        repository_names(store, None, Some("NGINX"), all).await,
        (names(&["default/nginx-latest", "team-b/nginx"]), 2)
    );
    assert_eq!(
        repository_names(store, Some("default"), Some("library/"), all).await,
        (names(&["default/nginx-latest"]), 1)
    );
    assert_eq!(repository_names(store, None, Some("Redis-7"), all).await, (names(&["team-a/redis-7"]), 1));
    assert_eq!(repository_names(store, None, Some("myapp/my"), all).await, (names(&["default/myapp-v1-0-0"]), 1));
    assert_eq!(repository_names(store, None, Some("%"), all).await, (vec![], 0));
    assert_eq!(repository_names(store, None, Some("_"), all).await, (vec![], 0));
    assert_eq!(
        repository_names(store, None, None, page(2, 1)).await,
        (names(&["default/nginx-latest", "team-a/redis-7"]), 4)
    );
    let listed = store.list_repositories(None, None, all).await.unwrap().items;
    assert_eq!(listed, [myapp.clone(), nginx.clone(), redis.clone(), cross.clone()]);

    let deleted = store.delete_repository("team-a", "redis-7", "carol").await.unwrap();
    assert_eq!(deleted, redis);
    assert_missing(store.get_repository("team-a", "redis-7").await, "repository", "team-a/redis-7");
    assert_missing(store.delete_repository("team-a", "redis-7", ADMIN).await, "repository", "team-a/redis-7");
    assert_eq!(repository_names(store, None, None, all).await.1, 3);

    let created_events = events_of(store, kube_kind::REPOSITORY_CREATED).await;
    assert_eq!(created_events.len(), 4);
    assert_eq!(
        created_events.last().unwrap().details,
        json!({
            "id": nginx.id, "namespace": "default", "name": "nginx-latest", "display_name": "Nginx 最新版本",
            "description": "Nginx web 服务器", "repository": "library/nginx", "tag": "latest",
            "registry_ref": { "namespace": "default", "name": "harbor-prod" },
            "sync_interval_secs": 5400, "sync_timeout_secs": 2, "retry_count": 5,
        })
    );
    let deleted_events = events_of(store, kube_kind::REPOSITORY_DELETED).await;
    assert_eq!(deleted_events.len(), 1);
    assert_eq!((deleted_events[0].actor.as_str(), &deleted_events[0].details["id"]), ("carol", &json!(redis.id)));
}

async fn a_duplicate_repository_conflicts_and_writes_nothing(db: TestDb) {
    let store = &db.store;
    harbor(store).await;
    let original = store
        .create_repository(new_repository("default", "nginx", "library/nginx", "latest", HARBOR), ADMIN)
        .await
        .unwrap();
    let events = event_count(store).await;
    assert_conflict(
        store.create_repository(new_repository("default", "nginx", "library/nginx", "1.27", HARBOR), ADMIN).await,
        "repository default/nginx already exists",
    );
    assert_eq!(event_count(store).await, events);
    assert_eq!(store.get_repository("default", "nginx").await.unwrap(), original);
    store.create_repository(new_repository("team-a", "nginx", "library/nginx", "1.27", HARBOR), ADMIN).await.unwrap();
    assert_eq!(repository_names(store, None, None, Page::default()).await.1, 2);
}

async fn a_repository_needs_its_registry_secret(db: TestDb) {
    let store = &db.store;
    harbor(store).await;
    let events = event_count(store).await;
    assert_missing(
        store.create_repository(new_repository("default", "app", "app/app", "1", ("default", "missing")), ADMIN).await,
        "registry secret",
        "default/missing",
    );
    // The name alone is not enough: the namespace counts.
    assert_missing(
        store
            .create_repository(new_repository("team-a", "app", "app/app", "1", ("team-a", "harbor-prod")), ADMIN)
            .await,
        "registry secret",
        "team-a/harbor-prod",
    );
    assert_eq!(repository_names(store, None, None, Page::default()).await, (vec![], 0));
    assert_eq!(event_count(store).await, events);
    assert_eq!(store.enqueue_due_syncs(OffsetDateTime::now_utc()).await.unwrap(), 0);
}

async fn a_registry_secret_in_use_is_not_deleted(db: TestDb) {
    let store = &db.store;
    let secret = harbor(store).await;
    store
        .create_repository(new_repository("default", "myapp-v1-0-0", "myapp/myapp", "v1.0.0", HARBOR), ADMIN)
        .await
        .unwrap();
    let events = event_count(store).await;
    assert_conflict(
        store.delete_registry_secret("default", "harbor-prod", ADMIN).await,
        "registry secret default/harbor-prod is used by repository default/myapp-v1-0-0",
    );
    store.create_repository(new_repository("team-a", "app", "app/app", "2", HARBOR), ADMIN).await.unwrap();
    let events = events + 1;
    assert_conflict(
        store.delete_registry_secret("default", "harbor-prod", ADMIN).await,
        "registry secret default/harbor-prod is used by repository default/myapp-v1-0-0 and 1 more",
    );
    assert_eq!(event_count(store).await, events);
    assert_eq!(store.get_registry_secret("default", "harbor-prod").await.unwrap(), secret);

    store.delete_repository("default", "myapp-v1-0-0", ADMIN).await.unwrap();
    assert_conflict(
        store.delete_registry_secret("default", "harbor-prod", ADMIN).await,
        "registry secret default/harbor-prod is used by repository team-a/app",
    );
    store.delete_repository("team-a", "app", ADMIN).await.unwrap();
    assert_eq!(store.delete_registry_secret("default", "harbor-prod", ADMIN).await.unwrap(), secret);
}

async fn verifications_are_recorded(db: TestDb) {
    let store = &db.store;
    let secret = harbor(store).await;
    let events = event_count(store).await;
    let before = OffsetDateTime::now_utc();
    let verified =
        store.record_verification("default", "harbor-prod", VerifyStatus::Success, "连接成功").await.unwrap();
    assert_eq!((verified.verify_status, verified.verify_message.as_deref()), (VerifyStatus::Success, Some("连接成功")));
    let at = verified.verify_timestamp.unwrap();
    assert!(at >= before - Duration::milliseconds(1) && at <= OffsetDateTime::now_utc(), "{at}");
    assert_eq!(verified.password, secret.password);
    assert_eq!(store.get_registry_secret("default", "harbor-prod").await.unwrap(), verified);

    let failed =
        store.record_verification("default", "harbor-prod", VerifyStatus::Failed, "401 Unauthorized").await.unwrap();
    assert_eq!(
        (failed.verify_status, failed.verify_message.as_deref()),
        (VerifyStatus::Failed, Some("401 Unauthorized"))
    );
    assert!(failed.verify_timestamp.unwrap() >= at);
    let blank = store.record_verification("default", "harbor-prod", VerifyStatus::Untested, "").await.unwrap();
    assert_eq!((blank.verify_status, blank.verify_message.as_deref()), (VerifyStatus::Untested, None));
    assert_eq!(event_count(store).await, events);
    assert_missing(
        store.record_verification("default", "nope", VerifyStatus::Success, "ok").await,
        "registry secret",
        "default/nope",
    );
}

async fn passwords_are_sealed_at_rest(db: TestDb) {
    use base64::{Engine, engine::general_purpose::STANDARD};

    let store = &db.store;
    let secret = harbor(store).await;
    assert_eq!(store.get_registry_secret("default", "harbor-prod").await.unwrap().password.expose(), PASSWORD);
    assert!(!format!("{secret:?}").contains(PASSWORD));
    let options = format!("{:?}", StoreOptions { secret_key: Some(db.key.clone()) });
    assert_eq!(options, "StoreOptions { secret_key: Some(SecretKey(<redacted>)) }");

    // The row holds the sealed password, not the password, nor its base64 or hex.
    let rows = raw_sql(
        &db,
        "SELECT namespace || '|' || name || '|' || domain || '|' || username || '|' || password_sealed AS text \
         FROM registry_secrets",
        true,
    )
    .await;
    assert_eq!(rows.len(), 1);
    let encodings = [
        PASSWORD.to_owned(),
        STANDARD.encode(PASSWORD),
        STANDARD.encode(PASSWORD).trim_end_matches('=').to_owned(),
        hex_of(PASSWORD),
    ];
    for row in rows.iter().chain(&raw_sql(&db, "SELECT details AS text FROM audit_events", true).await) {
        for encoded in &encodings {
            assert!(!row.to_lowercase().contains(&encoded.to_lowercase()), "{encoded} in {row}");
        }
    }
    let sealed = rows[0].rsplit('|').next().unwrap();
    assert!(sealed.starts_with("v1:"), "{sealed}");
    assert!(STANDARD.decode(&sealed[3..]).unwrap().len() >= 24 + PASSWORD.len() + 16);
    // Each sealing has a nonce of its own: the same password seals differently.
    store.create_registry_secret(new_secret("team-a", "harbor-prod", "harbor.example.com"), ADMIN).await.unwrap();
    let sealed_values = raw_sql(&db, "SELECT password_sealed AS text FROM registry_secrets", true).await;
    assert_eq!(sealed_values.len(), 2);
    assert_ne!(sealed_values[0], sealed_values[1]);

    // Another key opens nothing, and says so.
    let other = db.reconnect(StoreOptions { secret_key: Some(SecretKey::generate()) }).await;
    let message = storage_message(other.get_registry_secret("default", "harbor-prod").await);
    assert!(message.contains("cannot decrypt the password of registry secret default/harbor-prod"), "{message}");
    assert!(message.contains("not the one it was sealed with"), "{message}");
    storage_message(other.all_registry_secrets().await);
    storage_message(other.list_registry_secrets(None, None, Page::default()).await);
    // The same key, given again, does.
    let same = db.reconnect(StoreOptions { secret_key: Some(db.key.clone()) }).await;
    assert_eq!(same.get_registry_secret("default", "harbor-prod").await.unwrap(), secret);

    // A sealed password copied into another row does not open there.
    let mut moved = new_secret("default", "moved", "harbor.example.com");
    moved.password = Secret::new("another-password");
    store.create_registry_secret(moved, ADMIN).await.unwrap();
    raw_sql(
        &db,
        "UPDATE registry_secrets SET password_sealed = \
         (SELECT password_sealed FROM registry_secrets WHERE namespace = 'default' AND name = 'harbor-prod') \
         WHERE namespace = 'default' AND name = 'moved'",
        false,
    )
    .await;
    let message = storage_message(store.get_registry_secret("default", "moved").await);
    assert!(message.contains("registry secret default/moved") && message.contains("altered"), "{message}");

    // A secret whose password does not open can still be deleted: that is how a lost key is recovered from.
    let deleted = store.delete_registry_secret("default", "moved", ADMIN).await.unwrap();
    assert_eq!((deleted.name.as_str(), deleted.password.expose()), ("moved", ""));
    let deleted = other.delete_registry_secret("team-a", "harbor-prod", ADMIN).await.unwrap();
    assert_eq!(deleted.password.expose(), "");

    // Without a key, everything works but registry passwords.
    let keyless = DbStore::connect(&db.url).await.unwrap();
    assert!(format!("{keyless:?}").contains("secret_key: false"), "{keyless:?}");
    let events = event_count(store).await;
    let message = storage_message(
        keyless.create_registry_secret(new_secret("default", "new", "harbor.example.com"), ADMIN).await,
    );
    assert!(message.contains("no secret key configured"), "{message}");
    assert_eq!(event_count(store).await, events);
    assert_missing(store.get_registry_secret("default", "new").await, "registry secret", "default/new");
    let message = storage_message(keyless.get_registry_secret("default", "harbor-prod").await);
    assert!(message.contains("no secret key configured"), "{message}");
    store.create_repository(new_repository("default", "app", "app/app", "1", HARBOR), ADMIN).await.unwrap();
    assert_eq!(keyless.get_repository("default", "app").await.unwrap().domain.as_deref(), Some("harbor.example.com"));
    assert_eq!(keyless.list_images(&all()).await.unwrap().total, 9);
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

async fn a_key_file_is_private_and_reused(db: TestDb) {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys").join("secret.key");
    let key = SecretKey::load_or_create(&path).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.len() == 65 && written.ends_with('\n'), "{}", written.len());
    assert!(!format!("{key:?}").contains(written.trim()));
    // Nothing left beside it.
    assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);

    let first = db.reconnect(StoreOptions { secret_key: Some(key) }).await;
    first.create_registry_secret(new_secret("default", "harbor-prod", "harbor.example.com"), ADMIN).await.unwrap();
    // The next load reads the same key, and leaves the file as it was.
    let again = SecretKey::load_or_create(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written);
    let second = db.reconnect(StoreOptions { secret_key: Some(again) }).await;
    assert_eq!(second.get_registry_secret("default", "harbor-prod").await.unwrap().password.expose(), PASSWORD);

    // A key file that others may read is refused.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    match SecretKey::load_or_create(&path) {
        // A key that does not fit is `Unavailable` (an operator must act), other failures are storage errors.
        Err(e @ (Error::Storage(_) | Error::Unavailable(_))) => {
            let message = e.to_string();
            assert!(message.contains("0644") && message.contains("chmod 600"), "{message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written, "left as it was");

    // 32 raw bytes do too; anything else is refused.
    let raw = dir.path().join("raw.key");
    let hex_path = dir.path().join("hex.key");
    let bad = dir.path().join("bad.key");
    for (file, contents) in [
        (&raw, vec![0x42u8; 32]),
        (&hex_path, format!("{}\r\n", "42".repeat(32)).into_bytes()),
        (&bad, b"not a key\n".to_vec()),
    ] {
        std::fs::write(file, contents).unwrap();
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let raw_key = SecretKey::load_or_create(&raw).unwrap();
    let hex_key = SecretKey::load_or_create(&hex_path).unwrap();
    let raw_store = db.reconnect(StoreOptions { secret_key: Some(raw_key) }).await;
    raw_store.create_registry_secret(new_secret("team-a", "raw", "harbor.example.com"), ADMIN).await.unwrap();
    let hex_store = db.reconnect(StoreOptions { secret_key: Some(hex_key) }).await;
    assert_eq!(hex_store.get_registry_secret("team-a", "raw").await.unwrap().password.expose(), PASSWORD);
    let message = storage_message(SecretKey::load_or_create(&bad));
    assert!(message.contains("32 raw bytes or 64 hexadecimal digits"), "{message}");
}

/// Claims the next sync job, expecting it to be for `repository_id`.
async fn claim_sync(store: &DbStore, worker: &str, repository_id: RepositoryId) -> ClaimedJob {
    let job = store.claim_job(worker, &[SYNC_JOB_TYPE], LEASE).await.unwrap().expect("a due sync job");
    assert_eq!((job.job_type.as_str(), &job.payload), (SYNC_JOB_TYPE, &json!({ "repository_id": repository_id })));
    job
}

fn sync_jobs(count: i64) -> Vec<(String, i64)> {
    if count == 0 { vec![] } else { vec![(SYNC_JOB_TYPE.to_string(), count)] }
}

async fn syncs_are_queued_when_due(db: TestDb) {
    let store = &db.store;
    harbor(store).await;
    let hour = std::time::Duration::from_secs(3600);
    let mut a = new_repository("default", "a", "library/a", "1", HARBOR);
    a.retry_count = 2;
    let a = store.create_repository(a, ADMIN).await.unwrap();
    let mut b = new_repository("default", "b", "library/b", "1", HARBOR);
    b.sync_interval = hour / 2;
    let b = store.create_repository(b, ADMIN).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let c = store.create_repository(new_repository("default", "c", "library/c", "1", HARBOR), ADMIN).await.unwrap();

    // Due: the two created before `now`; c falls due just after.
    assert_eq!(store.enqueue_due_syncs(now).await.unwrap(), 2);
    assert_eq!(store.job_types().await.unwrap(), sync_jobs(2));
    assert_about(store.get_repository("default", "a").await.unwrap().next_sync_at, now + hour);
    assert_about(store.get_repository("default", "b").await.unwrap().next_sync_at, now + hour / 2);
    assert_eq!(store.get_repository("default", "c").await.unwrap().next_sync_at, c.next_sync_at);
    // Queued once: not again, even when due again, while the job is there.
    assert_eq!(store.enqueue_due_syncs(now).await.unwrap(), 0);
    assert_eq!(store.enqueue_due_syncs(now + 2 * hour).await.unwrap(), 1, "only c");
    assert_eq!(store.job_types().await.unwrap(), sync_jobs(3));
    assert_about(store.get_repository("default", "c").await.unwrap().next_sync_at, now + 3 * hour);

    // Jobs come out in the order the repositories fell due, with retry_count + 1 attempts.
    let job_a = claim_sync(store, "w", a.id).await;
    assert_eq!((job_a.attempts, job_a.max_attempts), (1, 3));
    let job_b = claim_sync(store, "w", b.id).await;
    assert_eq!(job_b.max_attempts, 4);

    // a's sync ends; b's job goes without a word (its row is gone, its job_id left behind).
    assert!(store.record_sync(a.id, job_a.id, "w", SyncStatus::Success, None, None).await.unwrap());
    assert!(!store.complete_job(job_a.id, "w").await.unwrap(), "recording the success completed it");
    assert!(store.complete_job(job_b.id, "w").await.unwrap());
    assert_eq!(store.enqueue_due_syncs(now + hour / 4).await.unwrap(), 0, "none due");
    assert_eq!(store.enqueue_due_syncs(now + hour / 2).await.unwrap(), 1, "b, whose job is gone");
    assert_eq!(store.enqueue_due_syncs(now + hour).await.unwrap(), 1, "a");
    assert_about(store.get_repository("default", "a").await.unwrap().next_sync_at, now + 2 * hour);
    assert_about(store.get_repository("default", "b").await.unwrap().next_sync_at, now + hour);
    assert_eq!(store.job_types().await.unwrap(), sync_jobs(3));
    // None of this is audited.
    assert!(events_of(store, kube_kind::REPOSITORY_CREATED).await.len() == 3 && event_count(store).await == 4);
}

async fn concurrent_schedulers_queue_each_repository_once(db: TestDb) {
    let store = &db.store;
    harbor(store).await;
    let mut ids = HashSet::new();
    for n in 0..8 {
        let repository = new_repository("default", &format!("app-{n}"), &format!("team/app-{n}"), "1", HARBOR);
        ids.insert(store.create_repository(repository, ADMIN).await.unwrap().id);
    }
    // Six schedulers at once, each asked what is due at `now`; how many they queued in all.
    let race = |now: OffsetDateTime| async move {
        let schedulers: Vec<_> = (0..6)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.enqueue_due_syncs(now).await })
            })
            .collect();
        let mut queued = 0;
        for scheduler in schedulers {
            queued += scheduler.await.unwrap().unwrap();
        }
        queued
    };
    let start = OffsetDateTime::now_utc();
    for round in 0..3 {
        // Every repository is due again (an hour's interval), its last job done.
        let now = start + Duration::hours(2 * round);
        assert_eq!(race(now).await, 8, "round {round} on {}", store.backend_name());
        assert_eq!(store.job_types().await.unwrap(), sync_jobs(8));
        // With every job still there, nothing more is queued, however late it is.
        assert_eq!(race(now + Duration::hours(1)).await, 0);
        let mut synced = HashSet::new();
        while let Some(job) = store.claim_job("w", &[SYNC_JOB_TYPE], LEASE).await.unwrap() {
            assert!(synced.insert(job.payload["repository_id"].as_i64().unwrap()), "{job:?}");
            assert!(store.complete_job(job.id, "w").await.unwrap());
        }
        assert_eq!(synced, ids.iter().map(|id| id.get()).collect());
    }
}

async fn a_triggered_sync_is_queued_once(db: TestDb) {
    let store = &db.store;
    harbor(store).await;
    let app = store.create_repository(new_repository("default", "app", "team/app", "1", HARBOR), ADMIN).await.unwrap();
    let before = OffsetDateTime::now_utc();
    assert!(store.trigger_sync("default", "app").await.unwrap());
    let next = store.get_repository("default", "app").await.unwrap().next_sync_at;
    assert!(next >= before + Duration::hours(1) - Duration::milliseconds(1), "the next scheduled sync moves on");
    assert!(!store.trigger_sync("default", "app").await.unwrap(), "queued");
    assert_eq!(store.enqueue_due_syncs(OffsetDateTime::now_utc() + Duration::hours(2)).await.unwrap(), 0);
    assert_eq!(store.job_types().await.unwrap(), sync_jobs(1));

    let job = claim_sync(store, "w", app.id).await;
    assert!(!store.trigger_sync("default", "app").await.unwrap(), "running");
    assert!(store.complete_job(job.id, "w").await.unwrap());
    assert!(store.trigger_sync("default", "app").await.unwrap(), "its job is gone");
    assert!(!store.trigger_sync("default", "app").await.unwrap());
    assert_eq!(store.job_types().await.unwrap(), sync_jobs(1));
    assert_missing(store.trigger_sync("default", "nope").await, "repository", "default/nope");

    // Deleting the repository removes its job.
    store.delete_repository("default", "app", ADMIN).await.unwrap();
    assert_eq!(store.job_types().await.unwrap(), sync_jobs(0));
}

/// A sync lands where an import of its source does: when the catalog lists the synced tag with another
/// digest, the catalog's tag takes the new digest, as an audit event by the repository.
async fn a_sync_that_moves_a_catalog_tag_records_it(db: TestDb) {
    let store = &db.store;
    harbor(store).await;
    let approved =
        NewImage::new("app", Some("harbor.example.com"), Some("team"), None, None, false, ApprovalStatus::Approved);
    let image = store.create_image(approved.unwrap(), ADMIN).await.unwrap();
    let tag = store.create_tag(image.id, new_tag("1", false).with_digest(Some(digest(1))), ADMIN).await.unwrap();
    let app = store.create_repository(new_repository("default", "app", "team/app", "1", HARBOR), ADMIN).await.unwrap();
    let sync = async |n: u8| {
        assert!(store.trigger_sync("default", "app").await.unwrap());
        let job = claim_sync(store, "w", app.id).await;
        let manifest =
            SyncedManifest { digest: Some(digest(n).to_string()), size: Some(4242), ..SyncedManifest::default() };
        assert!(store.record_sync(app.id, job.id, "w", SyncStatus::Success, None, Some(&manifest)).await.unwrap());
    };
    let updates = async || {
        let filter = EventFilter { event_type: Some(kind::TAG_UPDATED.into()), ..EventFilter::default() };
        store.list_events(&filter).await.unwrap().items
    };

    sync(2).await;
    let tags = store.list_tags(image.id).await.unwrap();
    assert_eq!((tags[0].id, tags[0].digest.as_ref(), tags[0].size_bytes), (tag.id, Some(&digest(2)), Some(4242)));
    let events = updates().await;
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].actor.as_str(), events[0].tag_id), ("repository default/app", Some(tag.id)));
    assert_eq!(events[0].details["before"]["digest"], digest(1).as_str());
    assert_eq!(events[0].details["after"]["digest"], digest(2).as_str());
    // The same digest again changes nothing.
    sync(2).await;
    assert_eq!(updates().await.len(), 1);
}

/// `retry_sync` writes the repository's status and the job's requeue together, and only for the worker that
/// holds the repository's job.
async fn a_sync_retry_records_its_status_and_requeues_its_job_together(db: TestDb) {
    let store = &db.store;
    harbor(store).await;
    let app = store.create_repository(new_repository("default", "app", "team/app", "1", HARBOR), ADMIN).await.unwrap();
    assert!(store.trigger_sync("default", "app").await.unwrap());
    let job = claim_sync(store, "w", app.id).await;
    let later = OffsetDateTime::now_utc() + time::Duration::hours(1);

    assert!(!store.retry_sync(app.id, job.id, "other", "stale", "stale", later).await.unwrap());
    assert!(!store.retry_sync(app.id, JobId::new(job.id.get() + 1000), "w", "stale", "stale", later).await.unwrap());
    assert_eq!(store.get_repository("default", "app").await.unwrap().sync_message, None);

    let message = "attempt 1 failed: 503 Service Unavailable; retrying";
    assert!(store.retry_sync(app.id, job.id, "w", message, "503 Service Unavailable", later).await.unwrap());
    let repository = store.get_repository("default", "app").await.unwrap();
    assert_eq!(
        (repository.sync_status, repository.sync_message.as_deref()),
        (Some(SyncStatus::Syncing), Some(message))
    );
    // The job is released (no lease) and not due before `later`: nobody can claim it now, and it is still
    // the repository's, so no second sync is queued.
    assert!(store.claim_job("w2", &[SYNC_JOB_TYPE], LEASE).await.unwrap().is_none());
    assert!(!store.renew_lease(job.id, "w", LEASE).await.unwrap(), "the lease ended with the requeue");
    assert!(!store.trigger_sync("default", "app").await.unwrap());
    assert_eq!(store.job_types().await.unwrap(), sync_jobs(1));
}

async fn sync_outcomes_are_recorded(db: TestDb) {
    let store = &db.store;
    harbor(store).await;
    let app = store.create_repository(new_repository("default", "app", "team/app", "1", HARBOR), ADMIN).await.unwrap();
    let get = || store.get_repository("default", "app");
    assert!(store.trigger_sync("default", "app").await.unwrap());
    let job = claim_sync(store, "w", app.id).await;

    assert!(store.record_sync(app.id, job.id, "w", SyncStatus::Syncing, None, None).await.unwrap());
    let syncing = get().await.unwrap();
    assert_eq!(
        (syncing.sync_status, syncing.sync_message.as_deref(), syncing.last_synced),
        (Some(SyncStatus::Syncing), None, None)
    );
    // Only the worker holding the repository's job records anything: not another worker (one whose lease
    // was taken over), and not for another job; a final outcome from them completes nothing either.
    for (job_id, worker) in [(job.id, "other"), (JobId::new(job.id.get() + 1000), "w")] {
        for status in [SyncStatus::Syncing, SyncStatus::Success, SyncStatus::Failed] {
            let recorded = store.record_sync(app.id, job_id, worker, status, Some("stale"), None).await.unwrap();
            assert!(!recorded, "{status:?} by {worker} for job {job_id}");
        }
    }
    assert_eq!(get().await.unwrap(), syncing);
    assert_eq!(store.job_types().await.unwrap(), sync_jobs(1));
    // A failed attempt that will be retried is still syncing, and keeps the job.
    let message = "attempt 1: 503 Service Unavailable; retrying";
    assert!(store.record_sync(app.id, job.id, "w", SyncStatus::Syncing, Some(message), None).await.unwrap());
    let retrying = get().await.unwrap();
    assert_eq!(retrying.sync_message.as_deref(), Some("attempt 1: 503 Service Unavailable; retrying"));
    assert!(!store.trigger_sync("default", "app").await.unwrap());

    let manifest = SyncedManifest {
        digest: Some(format!("sha256:{}", "ab".repeat(32))),
        architecture: Some("amd64".into()),
        os: Some("linux".into()),
        size: Some(142_000_000),
        created: Some("2024-01-08T10:30:00Z".into()),
        layers: vec![format!("sha256:{}", "cd".repeat(32)), format!("sha256:{}", "ef".repeat(32))],
    };
    let before = OffsetDateTime::now_utc();
    assert!(
        store.record_sync(app.id, job.id, "w", SyncStatus::Success, Some("synced"), Some(&manifest)).await.unwrap()
    );
    let success = get().await.unwrap();
    assert_eq!((success.sync_status, success.sync_message.as_deref()), (Some(SyncStatus::Success), Some("synced")));
    assert_eq!(success.manifest.as_ref(), Some(&manifest));
    let last_synced = success.last_synced.unwrap();
    assert!(last_synced >= before - Duration::milliseconds(1));
    assert_eq!(success.next_sync_at, retrying.next_sync_at, "the schedule is the scheduler's");
    // Recording the outcome completed the job, and the repository is free for its next sync.
    assert!(!store.complete_job(job.id, "w").await.unwrap());
    assert!(store.trigger_sync("default", "app").await.unwrap());
    let job = claim_sync(store, "w", app.id).await;

    // Giving up is final: the job is completed, the last good manifest stays.
    assert!(store.record_sync(app.id, job.id, "w", SyncStatus::Failed, Some("manifest unknown"), None).await.unwrap());
    let failed = get().await.unwrap();
    assert_eq!(
        (failed.sync_status, failed.sync_message.as_deref()),
        (Some(SyncStatus::Failed), Some("manifest unknown"))
    );
    assert_eq!((failed.manifest.as_ref(), failed.last_synced), (Some(&manifest), Some(last_synced)));
    assert!(!store.complete_job(job.id, "w").await.unwrap(), "recording the failure completed it");
    assert!(store.trigger_sync("default", "app").await.unwrap(), "the failed job no longer counts");
    let job = claim_sync(store, "w", app.id).await;

    // A success without a manifest keeps the last one.
    assert!(store.record_sync(app.id, job.id, "w", SyncStatus::Success, None, None).await.unwrap());
    let again = get().await.unwrap();
    assert_eq!(
        (again.sync_status, again.sync_message.as_deref(), again.manifest.as_ref()),
        (Some(SyncStatus::Success), None, Some(&manifest))
    );
    assert_missing(
        store.record_sync(RepositoryId::new(42_000), job.id, "w", SyncStatus::Syncing, None, None).await,
        "repository",
        "42000",
    );
}

async fn a_sync_job_finds_its_repository_and_secret(db: TestDb) {
    let store = &db.store;
    let mut new = new_secret("default", "harbor-prod", "harbor.example.com");
    new.ca_bundle = Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into());
    let secret = store.create_registry_secret(new, ADMIN).await.unwrap();
    let app = store.create_repository(new_repository("default", "app", "team/app", "1", HARBOR), ADMIN).await.unwrap();
    assert_eq!(store.enqueue_due_syncs(OffsetDateTime::now_utc()).await.unwrap(), 1);
    let job = store.claim_job("w", &[SYNC_JOB_TYPE], LEASE).await.unwrap().unwrap();
    let id = RepositoryId::new(job.payload["repository_id"].as_i64().unwrap());
    let (repository, its_secret) = store.repository_by_id(id).await.unwrap();
    assert_eq!(repository, store.get_repository("default", "app").await.unwrap());
    assert_eq!(repository.id, app.id);
    assert_eq!(its_secret, secret);
    assert_eq!(
        (its_secret.password.expose(), its_secret.ca_bundle.as_deref()),
        (PASSWORD, secret.ca_bundle.as_deref())
    );
    assert_missing(store.repository_by_id(RepositoryId::new(42_000)).await, "repository", "42000");

    // A job whose repository was deleted finds nothing, and loses its lease.
    store.delete_repository("default", "app", ADMIN).await.unwrap();
    assert_missing(store.repository_by_id(id).await, "repository", &id.to_string());
    assert_missing(
        store.record_sync(id, job.id, "w", SyncStatus::Failed, Some("gone"), None).await,
        "repository",
        &id.to_string(),
    );
    assert!(!store.renew_lease(job.id, "w", LEASE).await.unwrap());
}

// Not part of the suite above: what only SQLite has, and runtimes other than the tests' default.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_urls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.db");
    let store = DbStore::connect(&format!("sqlite:{}", path.display())).await.unwrap();
    assert!(path.is_file());
    assert_eq!(store.list_images(&all()).await.unwrap().total, 9);

    // One in-memory database per store, kept for the store's lifetime and shared by its clones.
    let memory = DbStore::connect("sqlite::memory:").await.unwrap();
    let other = DbStore::connect("sqlite://:memory:").await.unwrap();
    memory.clone().create_image(new_image("only-here", None, None), ADMIN).await.unwrap();
    assert_eq!(memory.list_images(&all()).await.unwrap().total, 10);
    assert_eq!(other.list_images(&all()).await.unwrap().total, 9);
    let racers: Vec<_> = (0..8)
        .map(|n| {
            let memory = memory.clone();
            tokio::spawn(
                async move { memory.create_tag(ImageId::new(1), new_tag(&format!("m{n}"), true), ADMIN).await },
            )
        })
        .collect();
    for racer in racers {
        racer.await.unwrap().unwrap();
    }
    assert_eq!(recommended(&memory, ImageId::new(1)).await.len(), 1);

    for bad in ["mysql://localhost/db", "sqlite:", "sqlite://", "file:x.db"] {
        match DbStore::connect(bad).await {
            Err(Error::Invalid { field, .. }) => assert_eq!(field, "database_url"),
            other => panic!("{bad}: expected invalid, got {other:?}"),
        }
    }
}

/// The store needs no multi-threaded runtime: migrations and operations run on their own threads/tasks.
#[tokio::test(flavor = "current_thread")]
async fn a_current_thread_runtime_is_enough() {
    let db = TestDb::sqlite().await;
    db.store.create_tag(ImageId::new(1), new_tag("on-one-thread", true), ADMIN).await.unwrap();
    assert_eq!(recommended(&db.store, ImageId::new(1)).await, ["on-one-thread"]);
    let db = TestDb::postgres().await;
    db.store.create_tag(ImageId::new(1), new_tag("on-one-thread", true), ADMIN).await.unwrap();
    assert_eq!(recommended(&db.store, ImageId::new(1)).await, ["on-one-thread"]);
}

/// A caller that stops waiting does not cut a write short, nor break the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_calls_complete_or_roll_back_cleanly() {
    for db in [TestDb::sqlite().await, TestDb::postgres().await] {
        let store = &db.store;
        for n in 0..20 {
            let call = store.create_tag(ImageId::new(1), new_tag(&format!("dropped-{n}"), true), ADMIN);
            // Give up at various points of the call.
            let _ = tokio::time::timeout(std::time::Duration::from_micros(50 * n), call).await;
        }
        // Let the detached operations finish.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let tags = store.list_tags(ImageId::new(1)).await.unwrap();
        assert_eq!(tags.len(), 24, "{}", store.backend_name());
        assert_eq!(tags.iter().filter(|t| t.is_recommended).count(), 1);
        let added = EventFilter { event_type: Some(kind::TAG_ADDED.into()), ..EventFilter::default() };
        assert_eq!(store.list_events(&added).await.unwrap().total, 20);
        store.ping().await.unwrap();
    }
}

async fn queued_jobs_are_announced_on_postgres(db: TestDb) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let store = &db.store;
    let heard = Arc::new(AtomicUsize::new(0));
    let counter = heard.clone();
    let Some(listener) = store.watch_job_queue(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    }) else {
        assert_eq!(store.backend_name(), "sqlite", "only SQLite has no announcements");
        return;
    };
    // Another schema of the same database: its listener must not hear this one's jobs.
    let other = TestDb::postgres().await;
    let heard_there = Arc::new(AtomicUsize::new(0));
    let counter = heard_there.clone();
    let other_listener = other.store.watch_job_queue(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let wait_for = |count: &Arc<AtomicUsize>, at_least: usize| {
        let count = count.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while count.load(Ordering::SeqCst) < at_least {
                assert!(std::time::Instant::now() < deadline, "heard {} of {at_least}", count.load(Ordering::SeqCst));
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    // Each listener calls once when it connects (jobs may have been queued before).
    wait_for(&heard, 1).await;
    wait_for(&heard_there, 1).await;

    harbor(store).await;
    store.create_repository(new_repository("default", "app", "team/app", "1", HARBOR), ADMIN).await.unwrap();
    assert!(store.trigger_sync("default", "app").await.unwrap());
    wait_for(&heard, 2).await;
    // A sync already queued queues nothing, and says nothing.
    assert!(!store.trigger_sync("default", "app").await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(heard.load(Ordering::SeqCst), 2);
    assert_eq!(heard_there.load(Ordering::SeqCst), 1, "the other schema heard this one's job");
    listener.abort();
    other_listener.unwrap().abort();
}

async fn all_event_ids(store: &DbStore) -> Vec<i64> {
    let filter = EventFilter { page: Page::new(Some(1000), None).unwrap(), ..EventFilter::default() };
    let mut ids: Vec<i64> = store.list_events(&filter).await.unwrap().items.iter().map(|e| e.id.get()).collect();
    ids.sort();
    ids
}

async fn import_ids(store: &DbStore) -> Vec<ImportId> {
    let filter = ImportFilter { page: Page::new(Some(1000), None).unwrap(), ..ImportFilter::default() };
    let mut ids: Vec<ImportId> = store.list_imports(&filter).await.unwrap().items.iter().map(|i| i.id).collect();
    ids.sort_by_key(|id| id.get());
    ids
}

/// Rows on either side of a moment `mid`: pruning "as of 90 days after `mid`" removes the finished
/// imports and the events from before it, in batches of one or two rows, and keeps everything newer,
/// and every import that has not finished (a running one here), however old.
async fn retention_removes_only_what_is_old(db: TestDb) {
    use image_core::ops::{OpsStore as _, Pruned, RetentionPolicy};
    let store = &db.store;
    let old_done = enqueue(store, "redis:1", "harbor.example.com/mirror/redis:1", ADMIN).await;
    succeed(store, &old_done, digest(1), Vec::new()).await;
    let old_canceled = enqueue(store, "redis:2", "harbor.example.com/mirror/redis:2", ADMIN).await;
    store.cancel_import(old_canceled.id, ADMIN).await.unwrap();
    let old_failed = enqueue(store, "redis:3", "harbor.example.com/mirror/redis:3", ADMIN).await;
    let job = start(store, "w", &old_failed).await;
    let failed = AttemptOutcome::Failed { error: "broken".into() };
    assert!(store.finish_import_attempt(old_failed.id, job.id, "w", failed).await.unwrap());
    // Running (its job claimed, so that the later import's claim takes that one): not finished, so kept.
    let old_running = enqueue(store, "redis:4", "harbor.example.com/mirror/redis:4", ADMIN).await;
    start(store, "w", &old_running).await;
    let old_events = all_event_ids(store).await;
    assert!(old_events.len() >= 7, "{old_events:?}");

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mid = OffsetDateTime::now_utc();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    let new_done = enqueue(store, "redis:5", "harbor.example.com/mirror/redis:5", ADMIN).await;
    succeed(store, &new_done, digest(5), Vec::new()).await;
    let all_events = all_event_ids(store).await;
    let new_events: Vec<i64> = all_events.iter().copied().filter(|id| !old_events.contains(id)).collect();
    assert!(new_events.len() >= 2, "{all_events:?}");

    let later = mid + Duration::days(90);
    let keep_events =
        RetentionPolicy { imports: std::time::Duration::from_secs(90 * 86_400), batch: 1, ..RetentionPolicy::DEFAULT };
    // Nothing is old yet a moment before `mid` + 90 days.
    let pruned =
        store.prune(keep_events, old_done.created_at + Duration::days(90) - Duration::seconds(1)).await.unwrap();
    assert_eq!(pruned, Pruned::default());
    assert_eq!(import_ids(store).await.len(), 5);

    let pruned = store.prune(keep_events, later).await.unwrap();
    assert_eq!(pruned, Pruned { imports: 3, events: 0 });
    assert_eq!(import_ids(store).await, vec![old_running.id, new_done.id], "the running import stays, however old");
    assert_eq!(all_event_ids(store).await, all_events, "events are kept for 365 days");

    let ninety_days = RetentionPolicy {
        imports: std::time::Duration::from_secs(90 * 86_400),
        events: std::time::Duration::from_secs(90 * 86_400),
        batch: 2,
    };
    let pruned = store.prune(ninety_days, later).await.unwrap();
    assert_eq!(pruned, Pruned { imports: 0, events: old_events.len() as u64 });
    assert_eq!(all_event_ids(store).await, new_events);
    // Again: nothing more is old.
    assert_eq!(store.prune(ninety_days, later).await.unwrap(), Pruned::default());
    assert_eq!(import_ids(store).await, vec![old_running.id, new_done.id]);
    store.get_import(new_done.id).await.unwrap();
}

async fn one_retention_job_is_queued_at_a_time(db: TestDb) {
    use image_core::{job::RetentionPayload, ops::OpsStore as _};
    let store = &db.store;
    let payload = RetentionPayload { imports_secs: 3600, events_secs: 7200 };
    let queued = futures::future::join_all((0..8).map(|_| store.queue_retention(payload))).await;
    assert_eq!(queued.iter().filter(|q| *q.as_ref().unwrap()).count(), 1, "{queued:?}");
    assert!(!store.queue_retention(payload).await.unwrap());
    let job = store.claim_job("w", &["retention"], LEASE).await.unwrap().expect("the retention job");
    assert_eq!(job.payload, json!({ "imports_secs": 3600, "events_secs": 7200 }));
    // Still one while it runs; once done, the next run may queue again.
    assert!(!store.queue_retention(payload).await.unwrap());
    assert!(store.complete_job(job.id, "w").await.unwrap());
    assert!(store.queue_retention(payload).await.unwrap());
}

/// The targets and digests of the succeeded imports, oldest first.
async fn ready_imports(store: &DbStore) -> Vec<(String, Option<Digest>, String)> {
    let filter = ImportFilter {
        ready: Some(true),
        order_by: ImportOrder::Id,
        descending: false,
        page: Page::new(Some(100), None).unwrap(),
        ..ImportFilter::default()
    };
    let listing = store.list_imports(&filter).await.unwrap();
    listing.items.into_iter().map(|i| (i.target.to_string(), i.digest, i.created_by)).collect()
}

async fn a_push_beside_imagegate_is_recorded_and_its_delete_forgotten(db: TestDb) {
    let store = &db.store;
    let imported = enqueue(store, "redis:7", "harbor.example.com/mirror/redis:7", "carol").await;
    succeed(store, &imported, digest(1), vec![artifact(2, "amd64", 100)]).await;
    let push = |tag: &str, n: u8| image_core::import::RegistryPush {
        source: reference(&format!("redis:{tag}")),
        target: reference(&format!("harbor.example.com/mirror/redis:{tag}")),
        digest: digest(n),
        artifacts: vec![artifact(n + 1, "arm64", 50)],
    };
    let recorded = store.record_registry_push(&push("8", 3), "harbor-webhook").await.unwrap().expect("recorded");
    assert_eq!((recorded.state, recorded.digest.clone()), (ImportState::Succeeded, Some(digest(3))));
    assert_eq!(recorded.artifacts, vec![artifact(4, "arm64", 50)]);
    assert_eq!(events_of(store, import_kind::RECORDED).await.len(), 1);
    // The same push again changes nothing; no job is queued for a recorded push.
    assert_eq!(store.record_registry_push(&push("8", 3), "harbor-webhook").await.unwrap(), None);
    assert!(store.claim_job("w", IMPORT, LEASE).await.unwrap().is_none());
    // A push that moves tag 7 replaces the import's record, whose digest is no longer there.
    store.record_registry_push(&push("7", 5), "harbor-webhook").await.unwrap().expect("recorded");
    assert_eq!(
        ready_imports(store).await,
        vec![
            ("harbor.example.com/mirror/redis:8".into(), Some(digest(3)), "harbor-webhook".into()),
            ("harbor.example.com/mirror/redis:7".into(), Some(digest(5)), "harbor-webhook".into()),
        ]
    );

    // A delete by another tag or digest, or in another repository, forgets nothing.
    let forget = |repository: &'static str, tag: Option<&'static str>, n: u8| async move {
        store
            .forget_registry_artifact("harbor.example.com", repository, tag, &digest(n), "harbor-webhook")
            .await
            .unwrap()
    };
    assert_eq!(forget("mirror/redis", Some("7"), 3).await, 0);
    assert_eq!(forget("mirror/redis", None, 9).await, 0);
    assert_eq!(forget("mirror/other", None, 3).await, 0);
    assert_eq!(forget("mirror/redis", Some("8"), 3).await, 1);
    assert_eq!(forget("mirror/redis", None, 5).await, 1);
    assert!(ready_imports(store).await.is_empty());
    // A queued import is never forgotten.
    let queued = enqueue(store, "redis:9", "harbor.example.com/mirror/redis:9", "carol").await;
    assert_eq!(
        store.forget_registry_artifact("harbor.example.com", "mirror/redis", None, &digest(1), "x").await.unwrap(),
        0
    );
    assert_eq!(store.get_import(queued.id).await.unwrap().state, ImportState::Queued);
}

async fn pending_scans_are_queued_once(db: TestDb) {
    let store = &db.store;
    assert_eq!(store.queue_pending_scans(100).await.unwrap(), 0);
    let imported = enqueue(store, "redis:7", "harbor.example.com/mirror/redis:7", "carol").await;
    succeed(store, &imported, digest(1), vec![artifact(2, "amd64", 100)]).await;
    let image = store.find_image("docker.io", "library", "redis").await.unwrap().expect("imported");
    let tag = store.list_tags(image.id).await.unwrap().into_iter().find(|t| t.tag == "7").expect("tag 7");
    // Unscanned and passed tags are not refreshed.
    assert_eq!(store.queue_pending_scans(100).await.unwrap(), 0);
    let pending = TagUpdate { security_scan_status: Some(Some("pending".into())), ..TagUpdate::default() };
    store.update_tag(image.id, tag.id, pending, ADMIN).await.unwrap();
    assert_eq!(store.queue_pending_scans(100).await.unwrap(), 1);
    // A scan job is queued for it already: none more.
    assert_eq!(store.queue_pending_scans(100).await.unwrap(), 0);
    use image_core::job::JobPayload as _;
    let job = store.claim_job("w", &[image_core::job::ScanPayload::NAME], LEASE).await.unwrap().expect("a scan job");
    let payload: image_core::job::ScanPayload = serde_json::from_value(job.payload.clone()).unwrap();
    assert_eq!(
        payload,
        image_core::job::ScanPayload {
            source: reference("redis:7"),
            repository: "mirror/redis".into(),
            digest: digest(1),
            request: false,
        }
    );
    // Still running: none more; once it is done, the next round queues another while the tag is pending.
    assert_eq!(store.queue_pending_scans(100).await.unwrap(), 0);
    assert!(store.complete_job(job.id, "w").await.unwrap());
    assert_eq!(store.queue_pending_scans(100).await.unwrap(), 1);
}

/// Waits until `check` holds: at once on SQLite; on PostgreSQL, within the few milliseconds a change's
/// notification takes to arrive (and the listener the first read of the data version starts).
async fn eventually<F, Fut>(db: &TestDb, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let tries = if db.url.starts_with("sqlite") { 1 } else { 500 };
    for _ in 0..tries {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{what}");
}

async fn the_data_version_moves_with_every_write(db: TestDb) {
    use image_core::ops::OpsStore as _;
    let store = &db.store;
    eventually(&db, "the data version is known", || async { store.data_version().is_some() }).await;
    let before = store.data_version().unwrap();
    assert_eq!(store.data_version(), Some(before), "nothing changed");
    store.create_image(new_image("cache-probe", None, None), ADMIN).await.unwrap();
    let after = store.data_version().expect("still known");
    assert!(after > before, "this store's own write is seen before its caller has the answer");
    // A write that fails changes nothing, but may move the version: never a stale read.
    assert!(store.create_image(new_image("cache-probe", None, None), ADMIN).await.is_err());
    assert!(store.data_version().unwrap() >= after);
}

async fn a_change_made_outside_the_store_is_read_at_once(db: TestDb) {
    let store = &db.store;
    let image = store.create_image(new_image("cache-probe", Some("web"), Some("before")), ADMIN).await.unwrap();
    let other = db.reconnect(StoreOptions::default()).await;
    let total = store.list_images(&all()).await.unwrap().total;
    // Read twice, so that the second comes from memory.
    for _ in 0..2 {
        assert_eq!(store.get_image(image.id).await.unwrap().description.as_deref(), Some("before"));
        assert_eq!(store.list_images(&all()).await.unwrap().total, total);
    }
    // Another process (another store on the database) changes the image and adds one.
    let update = ImageUpdate { description: Some(Some("after".into())), ..ImageUpdate::default() };
    other.update_image(image.id, update, ADMIN).await.unwrap();
    other.create_image(new_image("cache-probe-2", None, None), ADMIN).await.unwrap();
    eventually(&db, "the other store's changes are read", || async {
        store.get_image(image.id).await.unwrap().description.as_deref() == Some("after")
            && store.list_images(&all()).await.unwrap().total == total + 1
    })
    .await;
    // And SQL from outside imagegate altogether.
    raw_sql(&db, "UPDATE images SET description = 'by hand' WHERE image_name = 'cache-probe'", false).await;
    eventually(&db, "a change by hand is read", || async {
        store.get_image(image.id).await.unwrap().description.as_deref() == Some("by hand")
    })
    .await;
}

async fn a_kept_token_stops_working_when_it_expires_or_is_revoked(db: TestDb) {
    let store = &db.store;
    let user = NewUser { username: "carol".into(), password_hash: "x".into(), role: Role::User };
    let user = store.create_user(user, ADMIN).await.unwrap();
    let soon = OffsetDateTime::now_utc() + Duration::milliseconds(1500);
    let brief = store.create_token_with_expiry(user.id, "brief", "brief", Some(soon)).await.unwrap();
    let lasting = store.create_token(user.id, "lasting", "lasting", None).await.unwrap();
    for _ in 0..3 {
        assert_eq!(store.find_user_by_token("brief").await.unwrap(), Some((brief.id, user.clone())));
        assert_eq!(store.find_user_by_token("lasting").await.unwrap(), Some((lasting.id, user.clone())));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    assert_eq!(store.find_user_by_token("brief").await.unwrap(), None, "expired while kept in memory");
    // Revoked by another process, and by hand.
    let other = db.reconnect(StoreOptions::default()).await;
    other.revoke_token(lasting.id, None, ADMIN).await.unwrap();
    eventually(&db, "a token revoked elsewhere stops working", || async {
        store.find_user_by_token("lasting").await.unwrap().is_none()
    })
    .await;
    let again = store.create_token(user.id, "again", "again", None).await.unwrap();
    assert_eq!(store.find_user_by_token("again").await.unwrap(), Some((again.id, user.clone())));
    raw_sql(&db, "DELETE FROM api_tokens", false).await;
    eventually(&db, "a token deleted by hand stops working", || async {
        store.find_user_by_token("again").await.unwrap().is_none()
    })
    .await;
}

/// The statement trigger that announces changes (see the store's `changes` module) is on every table, so a
/// migration that adds a table without it fails here.
async fn every_table_announces_its_changes_on_postgres(db: TestDb) {
    if db.url.starts_with("sqlite") {
        return;
    }
    let missing = raw_sql(
        &db,
        "SELECT tablename AS text FROM pg_tables t WHERE schemaname = current_schema() \
         AND tablename NOT LIKE '\\_\\_%' AND NOT EXISTS (SELECT 1 FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = t.tablename AND n.nspname = t.schemaname \
         AND g.tgname = 'imagegate_data_changed') ORDER BY 1",
        true,
    )
    .await;
    assert_eq!(missing, Vec::<String>::new(), "tables without the imagegate_data_changed trigger");
    let tables =
        raw_sql(&db, "SELECT count(*)::text AS text FROM pg_tables WHERE schemaname = current_schema()", true).await;
    assert!(tables[0].parse::<u32>().unwrap() > 10, "{tables:?}");
}
