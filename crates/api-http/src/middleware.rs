//! What every request passes through, in one layer: it is measured ([`crate::metrics`]), held to the
//! limits ([`crate::limits`]: its route's body limit, the body deadline and the cap on requests at once),
//! and its answer carries the headers every answer carries ([`security_headers`]).
//!
//! One hand-written layer rather than one `from_fn` per concern: each axum middleware layer costs every
//! request a boxed future and a clone of the boxed service beneath it, which on the cheapest routes (the
//! admission check, the probes) is a large part of what a request costs.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use axum::{
    extract::{DefaultBodyLimit, Request},
    http::{HeaderValue, header},
    response::Response,
};
use tokio::sync::OwnedSemaphorePermit;
use tower::{Layer, Service};

use crate::{AppState, limits, metrics};

/// The layer [`crate::router`] puts around every route.
#[derive(Clone)]
pub(crate) struct Guard {
    state: AppState,
    /// `None` when another metrics recorder is installed (see [`metrics::handle`]).
    metrics: Option<Arc<metrics::RequestMetrics>>,
}

impl Guard {
    pub(crate) fn new(state: AppState, routes: &[crate::Route]) -> Guard {
        let metrics = metrics::handle().map(|_| Arc::new(metrics::RequestMetrics::new(routes)));
        Guard { state, metrics }
    }
}

impl<S> Layer<S> for Guard {
    type Service = Guarded<<DefaultBodyLimit as Layer<S>>::Service>;

    fn layer(&self, inner: S) -> Self::Service {
        // The body limits are this layer's (by route), not axum's one default for every extractor.
        Guarded { inner: DefaultBodyLimit::disable().layer(inner), guard: self.clone() }
    }
}

/// A route behind [`Guard`].
#[derive(Clone)]
pub(crate) struct Guarded<S> {
    inner: S,
    guard: Guard,
}

impl<S> Service<Request> for Guarded<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = GuardedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let measure = self.guard.metrics.as_ref().map(|metrics| metrics.of(&request));
        let (step, slot) = match limits::admit(&self.guard.state.requests, request) {
            limits::Admitted::Go(request, slot) => (Step::Running { inner: self.inner.call(request) }, slot),
            limits::Admitted::Refused(refused) => (Step::Answered { response: Some(refused) }, None),
        };
        GuardedFuture { step, started, measure, _slot: slot }
    }
}

pin_project_lite::pin_project! {
    /// A guarded request on its way to its answer.
    pub(crate) struct GuardedFuture<F> {
        #[pin]
        step: Step<F>,
        started: Instant,
        measure: Option<metrics::Measure>,
        // Held until the answer's headers are ready.
        _slot: Option<OwnedSemaphorePermit>,
    }
}

pin_project_lite::pin_project! {
    #[project = StepProj]
    enum Step<F> {
        Running { #[pin] inner: F },
        Answered { response: Option<Response> },
    }
}

impl<F> Future for GuardedFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.step.project() {
            StepProj::Running { inner } => match inner.poll(cx) {
                Poll::Ready(Ok(response)) => response,
                Poll::Ready(Err(never)) => match never {},
                Poll::Pending => return Poll::Pending,
            },
            StepProj::Answered { response } => {
                response.take().expect("a guarded future is not polled after its answer")
            }
        };
        security_headers(&mut response);
        if let Some(measure) = this.measure.take() {
            measure.record(response.status().as_u16(), this.started.elapsed());
        }
        Poll::Ready(Ok(response))
    }
}

/// Headers every answer carries: no content sniffing, so that no JSON answer is ever read as a page.
fn security_headers(response: &mut Response) {
    response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}
