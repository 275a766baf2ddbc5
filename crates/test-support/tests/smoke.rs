//! Proves the helpers work against the real services `cargo xtask test` provides.

use diesel::dsl::sql;
use diesel::sql_types::{Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use test_support::{Distribution, PgSchema};

async fn connect(url: &str) -> AsyncPgConnection {
    AsyncPgConnection::establish(url).await.unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

async fn text(conn: &mut AsyncPgConnection, expr: &str) -> Option<String> {
    diesel::select(sql::<Nullable<Text>>(expr)).get_result(conn).await.unwrap_or_else(|e| panic!("SELECT {expr}: {e}"))
}

#[tokio::test]
async fn schema_url_lands_in_a_fresh_schema() {
    let pg = PgSchema::create().await;
    assert!(
        pg.schema.len() == 18 && pg.schema.starts_with("t_") && pg.schema[2..].chars().all(|c| c.is_ascii_hexdigit()),
        "{}",
        pg.schema
    );
    assert!(pg.url.starts_with(&pg.base_url) && pg.url.ends_with(&pg.schema), "{}", pg.url);
    let mut conn = connect(&pg.url).await;
    assert_eq!(text(&mut conn, "current_schema()::text").await.as_deref(), Some(pg.schema.as_str()));
    // Unqualified DDL, like a migration's, lands in the schema.
    conn.batch_execute("CREATE TABLE landed (id int)").await.unwrap();
    // Earlier runs on the same database left `landed` tables in their own schemas: look in this one only.
    let in_schema = format!(
        "(SELECT count(*)::text FROM information_schema.tables WHERE table_name = 'landed' AND table_schema = '{}')",
        pg.schema
    );
    assert_eq!(text(&mut conn, &in_schema).await.as_deref(), Some("1"));
    // The shorthand gives a URL of the same shape.
    let url = test_support::postgres_url().await;
    assert!(url.contains("options=-csearch_path%3Dt_"), "{url}");
}

#[tokio::test]
async fn schemas_are_isolated() {
    let (a, b) = (PgSchema::create().await, PgSchema::create().await);
    assert_ne!(a.schema, b.schema);
    assert_ne!(a.url, b.url);

    let mut conn_a = connect(&a.url).await;
    conn_a.batch_execute("CREATE TABLE probe (id int PRIMARY KEY); INSERT INTO probe VALUES (1)").await.unwrap();
    assert_eq!(text(&mut conn_a, "(SELECT count(*)::text FROM probe)").await.as_deref(), Some("1"));

    let mut conn_b = connect(&b.url).await;
    assert_eq!(text(&mut conn_b, "current_schema()::text").await.as_deref(), Some(b.schema.as_str()));
    assert_eq!(text(&mut conn_b, "to_regclass('probe')::text").await, None);
    let err = conn_b.batch_execute("SELECT * FROM probe").await.expect_err("b must not see a's table");
    assert!(err.to_string().contains("does not exist"), "{err}");
    // Same database though: the table is there under a's name.
    let qualified = format!("{}.probe", a.schema);
    assert_eq!(
        text(&mut conn_b, &format!("to_regclass('{qualified}')::text")).await.as_deref(),
        Some(qualified.as_str())
    );
    // And b can have a `probe` of its own.
    conn_b.batch_execute("CREATE TABLE probe (id int PRIMARY KEY)").await.unwrap();
    assert_eq!(text(&mut conn_b, "(SELECT count(*)::text FROM probe)").await.as_deref(), Some("0"));
}

#[tokio::test]
async fn distribution_answers_v2() {
    let registry = Distribution::start().await;
    assert_eq!(registry.url(), format!("http://{}", registry.host()));
    assert_eq!(registry.host(), format!("127.0.0.1:{}", registry.port()));
    assert!(registry.credentials().is_none());

    let resp = reqwest::get(format!("{}/v2/", registry.url())).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["docker-distribution-api-version"], "registry/2.0");

    // A second one runs side by side on another port.
    let other = Distribution::start().await;
    assert_ne!(other.port(), registry.port());
    let resp = reqwest::get(format!("{}/v2/", other.url())).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn distribution_stores_and_deletes_blobs() {
    let registry = Distribution::start().await;
    let client = reqwest::Client::new();
    let blob = b"imagegate test-support smoke blob".to_vec();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&blob)));
    let base = format!("{}/v2/smoke/test", registry.url());

    let resp = client.post(format!("{base}/blobs/uploads/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let location = if location.starts_with('/') { format!("{}{location}", registry.url()) } else { location };
    let sep = if location.contains('?') { '&' } else { '?' };
    let resp = client
        .put(format!("{location}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "{:?}", resp.text().await);

    let resp = client.get(format!("{base}/blobs/{digest}")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), blob.as_slice());
    assert!(registry.storage_dir().join("docker").is_dir());

    // `delete: enabled: true`
    let resp = client.delete(format!("{base}/blobs/{digest}")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = client.head(format!("{base}/blobs/{digest}")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn distribution_with_basic_auth() {
    let registry = Distribution::start_with_basic_auth("alice", "s3cret pass").await;
    assert_eq!(registry.credentials(), Some(("alice", "s3cret pass")));
    let client = reqwest::Client::new();
    let v2 = format!("{}/v2/", registry.url());

    let resp = client.get(&v2).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Basic"), "{challenge}");

    let resp = client.get(&v2).basic_auth("alice", Some("wrong")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let resp = client.get(&v2).basic_auth("alice", Some("s3cret pass")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn distribution_cleans_up_on_drop() {
    let registry = Distribution::start().await;
    let storage = registry.storage_dir();
    let url = format!("{}/v2/", registry.url());
    assert!(storage.is_dir());
    drop(registry);
    assert!(!storage.exists(), "{} was left behind", storage.display());
    let gone =
        reqwest::Client::builder().timeout(std::time::Duration::from_secs(2)).build().unwrap().get(&url).send().await;
    assert!(gone.is_err(), "the registry still answers: {gone:?}");
}
