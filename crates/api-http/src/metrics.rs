//! Prometheus metrics: `GET /metrics` in the text exposition format.
//!
//! The crates record through the `metrics` facade (registry-client: registry requests, retries, 429s and
//! `Retry-After` waits; the copy engine: bytes and blobs; sync-worker: jobs by outcome), and this module
//! installs the process's one recorder, measures every request (by route template, so that ids in paths
//! do not make a series each), and at each scrape reads from the store what only it knows: the queue's
//! depth and the age of its oldest due job per job type, imports by state, and the connection pool.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `imagegate_http_requests_total` | counter | `method`, `route`, `status` |
//! | `imagegate_http_request_duration_seconds` | histogram | `method`, `route` |
//! | `imagegate_imports` | gauge | `state` |
//! | `imagegate_copy_bytes_total` | counter | |
//! | `imagegate_copy_blobs_total` | counter | `via` (`copied`, `skipped`, `mounted`) |
//! | `imagegate_copy_throughput_bytes_per_second` | histogram | |
//! | `imagegate_queue_jobs` | gauge | `job_type` |
//! | `imagegate_queue_due_jobs` | gauge | `job_type` |
//! | `imagegate_queue_oldest_due_age_seconds` | gauge | `job_type` |
//! | `imagegate_jobs_finished_total` | counter | `job_type`, `outcome` (`succeeded`, `retry`, `failed`, `obsolete`) |
//! | `imagegate_registry_requests_total` | counter | `registry`, `status` (a code, or `error`) |
//! | `imagegate_registry_retries_total` | counter | `registry` |
//! | `imagegate_registry_rate_limited_total` | counter | `registry` |
//! | `imagegate_registry_retry_after_wait_seconds_total` | counter | `registry` |
//! | `imagegate_db_pool_connections` | gauge | `state` (`max`, `open`, `idle`, `waiting`) |
//! | `imagegate_admission_cache_total` | counter | `result` (`hit`, `miss`) |
//! | `imagegate_http_requests_refused_total` | counter | (beyond the cap on requests at once) |
//!
//! Sync outcomes are `imagegate_jobs_finished_total{job_type="sync"}`.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock, PoisonError, RwLock},
    time::Duration,
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderMap, HeaderValue, Method, header},
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{
    AppState,
    error::{ApiError, Plain, ProfileError},
    routes::{Access, Routes},
};

/// Who may read `/metrics`.
#[derive(Clone, Default)]
pub enum MetricsAccess {
    /// Anyone (the default: metrics hold counts, never names or secrets).
    #[default]
    Open,
    /// Requests that carry `Authorization: Bearer <token>`.
    Token(Arc<str>),
    /// Nobody: `/metrics` answers 404.
    Off,
}

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MetricsAccess::Open => "Open",
            MetricsAccess::Token(_) => "Token(…)",
            MetricsAccess::Off => "Off",
        })
    }
}

/// Latency buckets in seconds: from half a millisecond (the admission check) to a minute.
const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Copy throughput buckets in bytes per second: 64 KiB/s to 1 GiB/s.
const THROUGHPUT_BUCKETS: &[f64] =
    &[65_536.0, 262_144.0, 1_048_576.0, 4_194_304.0, 16_777_216.0, 67_108_864.0, 268_435_456.0, 1_073_741_824.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first use; `None` when another recorder was installed first (an
/// embedding program's), whose metrics are then that program's to export.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_bytes_per_second".into()), THROUGHPUT_BUCKETS)
                });
            let recorder = match builder {
                Ok(builder) => builder.build_recorder(),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot set up the metrics recorder");
                    return None;
                }
            };
            let handle = recorder.handle();
            match ::metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    describe();
                    Some(handle)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "another metrics recorder is installed: /metrics shows nothing");
                    None
                }
            }
        })
        .as_ref()
}

/// The help lines of the metrics recorded here; the other crates' are theirs.
fn describe() {
    ::metrics::describe_counter!(
        "imagegate_http_requests_total",
        "HTTP requests answered, by route template and status."
    );
    ::metrics::describe_histogram!(
        "imagegate_http_request_duration_seconds",
        ::metrics::Unit::Seconds,
        "Time from a request's arrival to its answer's headers, by route template."
    );
    ::metrics::describe_gauge!("imagegate_imports", "Import records by state.");
    ::metrics::describe_gauge!("imagegate_queue_jobs", "Jobs in the queue (waiting or running), by job type.");
    ::metrics::describe_gauge!("imagegate_queue_due_jobs", "Jobs due now and not held by a live lease, by job type.");
    ::metrics::describe_gauge!(
        "imagegate_queue_oldest_due_age_seconds",
        ::metrics::Unit::Seconds,
        "How long the oldest due job has waited, by job type (0 when none is due)."
    );
    ::metrics::describe_gauge!(
        "imagegate_db_pool_connections",
        "The database pool: max, open, idle, and callers waiting."
    );
}

/// `GET /metrics`.
pub(crate) fn routes() -> Routes {
    Routes::new("").get("/metrics", Access::Anyone, scrape)
}

/// The handles each route's measurements go to, made once per route and method: recording through a
/// handle allocates nothing, where the recorder's own lookup builds its labels on every call.
pub(crate) struct RequestMetrics {
    routes: HashMap<Box<str>, Vec<(Method, Arc<RouteMetrics>)>>,
}

impl RequestMetrics {
    pub(crate) fn new(routes: &[crate::Route]) -> RequestMetrics {
        let mut by_path: HashMap<Box<str>, Vec<(Method, Arc<RouteMetrics>)>> = HashMap::new();
        for route in routes {
            let Ok(method) = route.method.parse::<Method>() else { continue };
            let metrics = Arc::new(RouteMetrics::new(method.clone(), route.path.clone()));
            by_path.entry(route.path.as_str().into()).or_default().push((method, metrics));
        }
        RequestMetrics { routes: by_path }
    }

    /// Where `request`'s measurements go: its route template's handles, or labels made for it (a path no
    /// route serves is `unmatched`; a method its path does not take has no handles made in advance).
    pub(crate) fn of(&self, request: &Request) -> Measure {
        let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
        let kept = route
            .and_then(|route| self.routes.get(route))
            .and_then(|methods| methods.iter().find(|(method, _)| method == request.method()));
        match kept {
            Some((_, metrics)) => Measure::Route(metrics.clone()),
            None => Measure::Labels {
                method: request.method().as_str().to_owned(),
                route: route.unwrap_or("unmatched").to_owned(),
            },
        }
    }
}

/// One route's request counters (by status) and latency histogram, registered on first use.
pub(crate) struct RouteMetrics {
    method: Method,
    route: String,
    duration: OnceLock<::metrics::Histogram>,
    by_status: RwLock<Vec<(u16, ::metrics::Counter)>>,
}

impl RouteMetrics {
    fn new(method: Method, route: String) -> RouteMetrics {
        RouteMetrics { method, route, duration: OnceLock::new(), by_status: RwLock::default() }
    }

    fn record(&self, status: u16, elapsed: Duration) {
        let counter = self
            .by_status
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(kept, _)| *kept == status)
            .map(|(_, counter)| counter.clone());
        let counter = counter.unwrap_or_else(|| {
            let counter = requests_total(self.method.as_str(), &self.route, status);
            let mut by_status = self.by_status.write().unwrap_or_else(PoisonError::into_inner);
            if !by_status.iter().any(|(kept, _)| *kept == status) {
                by_status.push((status, counter.clone()));
            }
            counter
        });
        counter.increment(1);
        self.duration.get_or_init(|| request_duration(self.method.as_str(), &self.route)).record(elapsed);
    }
}

/// Where one request's measurements go.
pub(crate) enum Measure {
    Route(Arc<RouteMetrics>),
    Labels { method: String, route: String },
}

impl Measure {
    /// Counts the request under its answer's status and records how long the answer took.
    pub(crate) fn record(self, status: u16, elapsed: Duration) {
        match self {
            Measure::Route(metrics) => metrics.record(status, elapsed),
            Measure::Labels { method, route } => {
                requests_total(&method, &route, status).increment(1);
                request_duration(&method, &route).record(elapsed);
            }
        }
    }
}

fn requests_total(method: &str, route: &str, status: u16) -> ::metrics::Counter {
    ::metrics::counter!(
        "imagegate_http_requests_total",
        "method" => method.to_owned(),
        "route" => route.to_owned(),
        "status" => status.to_string()
    )
}

fn request_duration(method: &str, route: &str) -> ::metrics::Histogram {
    ::metrics::histogram!("imagegate_http_request_duration_seconds", "method" => method.to_owned(), "route" => route.to_owned())
}

/// How often the histograms' samples are folded into their buckets when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Folds histogram samples into buckets every few seconds, so that they take bounded memory between
/// scrapes; started once, on the first router built inside a runtime.
pub(crate) fn start_upkeep() {
    static STARTED: OnceLock<()> = OnceLock::new();
    let (Some(handle), Ok(runtime)) = (handle(), tokio::runtime::Handle::try_current()) else { return };
    STARTED.get_or_init(|| {
        runtime.spawn(async move {
            let mut every = tokio::time::interval(UPKEEP_INTERVAL);
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        });
    });
}

async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ProfileError<Plain>> {
    match &state.metrics {
        MetricsAccess::Off => return Err(ApiError::not_found("metrics are turned off on this server").into()),
        MetricsAccess::Token(token) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if !given.is_some_and(|given| same_secret(given, token)) {
                return Err(ApiError::unauthorized("/metrics needs the metrics token as a bearer token").into());
            }
        }
        MetricsAccess::Open => {}
    }
    let Some(handle) = handle() else {
        return Err(ApiError::unavailable("another metrics recorder is installed in this process").into());
    };
    record_store_gauges(&state).await;
    handle.run_upkeep();
    let mut response = handle.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(response)
}

/// Reads the queue, the imports and the pool from the store into their gauges. A store that does not
/// answer leaves the last values (and says so in the log), so a scrape still answers.
/// Compares by SHA-256, so the time taken says nothing about how much of the token was right.
fn same_secret(given: &str, token: &str) -> bool {
    use sha2::Digest as _;
    sha2::Sha256::digest(given.as_bytes()) == sha2::Sha256::digest(token.as_bytes())
}

async fn record_store_gauges(state: &AppState) {
    let pool = state.store.pool_status();
    for (name, value) in [("max", pool.max), ("open", pool.open), ("idle", pool.idle), ("waiting", pool.waiting)] {
        ::metrics::gauge!("imagegate_db_pool_connections", "state" => name).set(value as f64);
    }
    match state.store.import_counts().await {
        Ok(counts) => {
            for (import_state, n) in counts {
                ::metrics::gauge!("imagegate_imports", "state" => import_state.as_str()).set(n as f64);
            }
        }
        Err(err) => tracing::warn!(error = %err, "metrics: cannot count imports"),
    }
    match state.store.queue_depths().await {
        Ok(depths) => {
            let now = time::OffsetDateTime::now_utc();
            let mut seen = Vec::with_capacity(depths.len());
            for depth in depths {
                let age = depth.oldest_due.map_or(0.0, |due| (now - due).as_seconds_f64().max(0.0));
                let job_type = depth.job_type.clone();
                ::metrics::gauge!("imagegate_queue_jobs", "job_type" => job_type.clone()).set(depth.jobs as f64);
                ::metrics::gauge!("imagegate_queue_due_jobs", "job_type" => job_type.clone()).set(depth.due as f64);
                ::metrics::gauge!("imagegate_queue_oldest_due_age_seconds", "job_type" => job_type.clone()).set(age);
                seen.push(job_type);
            }
            // A job type whose last job left the queue reads 0 rather than its last value.
            let mut known = known_job_types().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for gone in known.iter().filter(|t| !seen.contains(t)) {
                ::metrics::gauge!("imagegate_queue_jobs", "job_type" => gone.clone()).set(0.0);
                ::metrics::gauge!("imagegate_queue_due_jobs", "job_type" => gone.clone()).set(0.0);
                ::metrics::gauge!("imagegate_queue_oldest_due_age_seconds", "job_type" => gone.clone()).set(0.0);
            }
            for job_type in seen {
                if !known.contains(&job_type) {
                    known.push(job_type);
                }
            }
        }
        Err(err) => tracing::warn!(error = %err, "metrics: cannot read the queue"),
    }
}

fn known_job_types() -> &'static std::sync::Mutex<Vec<String>> {
    static KNOWN: OnceLock<std::sync::Mutex<Vec<String>>> = OnceLock::new();
    KNOWN.get_or_init(Default::default)
}
