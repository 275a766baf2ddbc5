//! What the client and the copy engine count, through the `metrics` facade: whoever embeds the crate
//! installs a recorder (imagegate's server exports them at `/metrics`); without one these cost nothing.

use std::time::Duration;

/// A registry answered (`status` is its code) or did not (`None`: a transport error).
pub(crate) fn request(registry: &str, status: Option<u16>) {
    if status == Some(429) {
        metrics::counter!("imagegate_registry_rate_limited_total", "registry" => registry.to_owned()).increment(1);
    }
    let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
    metrics::counter!("imagegate_registry_requests_total", "registry" => registry.to_owned(), "status" => status)
        .increment(1);
}

/// A request is sent again after `wait`; `asked` when the registry's `Retry-After` set the wait.
pub(crate) fn retry(registry: &str, wait: Duration, asked: bool) {
    metrics::counter!("imagegate_registry_retries_total", "registry" => registry.to_owned()).increment(1);
    if asked {
        metrics::counter!("imagegate_registry_retry_after_wait_seconds_total", "registry" => registry.to_owned())
            .increment(wait.as_secs_f64().ceil() as u64);
    }
}

/// Bytes of blobs streamed from a source to a target.
pub(crate) fn bytes_copied() -> metrics::Counter {
    metrics::counter!("imagegate_copy_bytes_total")
}

/// One blob reached its target: `copied`, `skipped` (there already) or `mounted`.
pub(crate) fn blob(via: image_core::import::BlobCopy) {
    metrics::counter!("imagegate_copy_blobs_total", "via" => via.as_str()).increment(1);
}

/// One copy's bytes over its time, when it streamed any.
pub(crate) fn throughput(bytes: u64, took: Duration) {
    if bytes > 0 && !took.is_zero() {
        metrics::histogram!("imagegate_copy_throughput_bytes_per_second").record(bytes as f64 / took.as_secs_f64());
    }
}

/// The help lines, once per process.
pub(crate) fn describe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        metrics::describe_counter!(
            "imagegate_registry_requests_total",
            "Requests sent to registries, by answer status."
        );
        metrics::describe_counter!("imagegate_registry_retries_total", "Registry requests sent again after a failure.");
        metrics::describe_counter!("imagegate_registry_rate_limited_total", "429 answers from registries.");
        metrics::describe_counter!(
            "imagegate_registry_retry_after_wait_seconds_total",
            metrics::Unit::Seconds,
            "Seconds waited because a registry's Retry-After asked for it."
        );
        metrics::describe_counter!(
            "imagegate_copy_bytes_total",
            metrics::Unit::Bytes,
            "Blob bytes streamed to targets."
        );
        metrics::describe_counter!("imagegate_copy_blobs_total", "Blobs that reached a target, by how.");
        metrics::describe_histogram!(
            "imagegate_copy_throughput_bytes_per_second",
            "Bytes per second of each copy that streamed blobs."
        );
    });
}
