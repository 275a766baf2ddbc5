//! Limits that hold under load: request bodies by route, and a cap on requests handled at once.
//!
//! Every body is read through a length limit: [`JSON_BODY_LIMIT`] unless [`LARGER_BODIES`] names the
//! route; a larger body is answered 413 (before it is read when its `Content-Length` says so). No route
//! takes an upload: images travel from registry to registry, never through this server.
//! Beyond [`RequestLimit`]'s cap, requests are answered 503 with `Retry-After` at once instead of
//! queueing, so a flood cannot grow memory or latency without bound; the probes and `/metrics` are not
//! counted, so that an overloaded server still says it is alive and shows why.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::body::Bytes;
use axum::{
    body::Body,
    extract::{MatchedPath, Request},
    http::{Method, header},
    response::Response,
};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Sleep,
};

use crate::error::{ApiError, ErrorFormat, KubeStatus, Plain};

/// The largest JSON body most routes take: every field the API accepts fits many times over.
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// Routes that take more: (method, route template, bytes).
pub const LARGER_BODIES: &[(&str, &str, usize)] = &[
    // A registry secret's CA bundle may be 1 MiB of PEM, which JSON escaping makes longer.
    ("POST", "/oapis/image.theriseunion.io/v1alpha1/namespaces/{namespace}/registry-secrets", 3 * 1024 * 1024),
    // An external import's progress names every layer.
    ("PUT", "/api/v1/images:import/{name}/progress", 1024 * 1024),
];

/// The body limit of a route.
pub fn body_limit(method: &Method, route: &str) -> usize {
    LARGER_BODIES
        .iter()
        .find(|(m, r, _)| *m == method.as_str() && *r == route)
        .map_or(JSON_BODY_LIMIT, |(_, _, limit)| *limit)
}

/// How long a client has to send a whole request body, by default.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests handled at once by default.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 512;

/// The seconds a refused request is asked to wait.
const RETRY_AFTER_SECS: u64 = 1;

/// Requests handled at once; see the module documentation.
#[derive(Debug)]
pub(crate) struct RequestLimit {
    slots: Arc<Semaphore>,
    max: usize,
    body_timeout: Duration,
}

impl RequestLimit {
    pub(crate) fn new(max: usize, body_timeout: Duration) -> RequestLimit {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        RequestLimit {
            slots: Arc::new(Semaphore::new(max)),
            max,
            body_timeout: body_timeout.max(Duration::from_millis(1)),
        }
    }
}

impl Default for RequestLimit {
    fn default() -> Self {
        RequestLimit::new(DEFAULT_MAX_CONCURRENT_REQUESTS, DEFAULT_BODY_TIMEOUT)
    }
}

/// A body that fails once its deadline passes: a client sending a body a byte at a time cannot hold a
/// request (and its slot) open for longer than the body timeout. The deadline counts from the request's
/// arrival; its timer starts the first time the body has to wait for the client, so a body that came with
/// its headers (most JSON bodies) or is never read (most `GET`s) costs none.
struct DeadlineBody<B> {
    inner: B,
    arrived: tokio::time::Instant,
    deadline: Option<Pin<Box<Sleep>>>,
    timeout: Duration,
}

impl<B> DeadlineBody<B> {
    fn expired(&self) -> axum::BoxError {
        format!("the request body took longer than {} s to arrive", self.timeout.as_secs_f64()).into()
    }
}

impl<B> http_body::Body for DeadlineBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => {}
            // Once the body has waited, what arrives after the deadline is refused all the same.
            Poll::Ready(_) if self.deadline.is_some() && tokio::time::Instant::now() >= self.arrived + self.timeout => {
                return Poll::Ready(Some(Err(self.expired())));
            }
            ready => return ready.map_err(Into::into),
        }
        let (arrived, timeout) = (self.arrived, self.timeout);
        let deadline = self.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(arrived + timeout)));
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(self.expired())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Paths the cap does not count.
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// What [`admit`] decided.
pub(crate) enum Admitted {
    /// The request to go on with (its body read through the limits) and its slot (`None` for the paths
    /// the cap does not count).
    Go(Request, Option<OwnedSemaphorePermit>),
    /// The answer that refuses it.
    Refused(Response),
}

/// Applies the route's body limit and the cap on requests at once.
pub(crate) fn admit(limits: &RequestLimit, request: Request) -> Admitted {
    let route = request.extensions().get::<MatchedPath>();
    let limit = route.map_or(JSON_BODY_LIMIT, |route| body_limit(request.method(), route.as_str()));
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Admitted::Refused(too_large(request.uri().path(), limit));
    }
    let timeout = limits.body_timeout;
    let request = request.map(|body| {
        let inner = http_body_util::Limited::new(body, limit);
        Body::new(DeadlineBody { inner, arrived: tokio::time::Instant::now(), deadline: None, timeout })
    });
    if exempt(request.uri().path()) {
        return Admitted::Go(request, None);
    }
    let Ok(slot) = limits.slots.clone().try_acquire_owned() else {
        ::metrics::counter!("imagegate_http_requests_refused_total").increment(1);
        let mut error = ApiError::unavailable(format!(
            "the server is handling {} requests, its limit: try again in {RETRY_AFTER_SECS} s",
            limits.max
        ));
        error.retry_after_secs = Some(RETRY_AFTER_SECS);
        return Admitted::Refused(render(request.uri().path(), &error));
    };
    Admitted::Go(request, Some(slot))
}

/// In the format of the profile the path belongs to.
fn render(path: &str, error: &ApiError) -> Response {
    if path.starts_with("/oapis/") {
        KubeStatus::render(error)
    } else if crate::profile::station::owns(path) {
        crate::profile::station::Station::render(error)
    } else {
        Plain::render(error)
    }
}

fn too_large(path: &str, limit: usize) -> Response {
    let error = ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "Payload too large",
        format!("the request body is larger than this route takes ({limit} bytes)"),
    );
    render(path, &error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn larger_bodies_name_routes_that_exist() {
        let routes = crate::routes();
        for (method, route, limit) in LARGER_BODIES {
            assert!(routes.iter().any(|r| r.method == *method && r.path == *route), "{method} {route} is not a route");
            assert_eq!(body_limit(&method.parse().unwrap(), route), *limit);
        }
        assert_eq!(body_limit(&Method::POST, "/catalog/api/v1/images"), JSON_BODY_LIMIT);
    }
}
