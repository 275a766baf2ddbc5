//! The JSON answers of read routes whose answer depends on nothing but the request's own parameters and
//! the store (the catalog's listing and categories, the platform profile's listing), kept as the bytes
//! sent while the store's data version stays (see [`image_core::cache`]): a repeated request costs a map
//! lookup, and neither a copy of the store's answer nor its serialisation. The handler authenticates and
//! validates first, as for any request; only its answer is kept. The station's searches of what the store
//! holds keep their results in the same cache, under `station.search`.

use axum::{
    body::Bytes,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::{AppState, error::ApiError};

/// What identifies a kept answer: the route, and the parameters it was given as `Debug` renders them.
pub(crate) type AnswerKey = (&'static str, String);

impl AppState {
    /// `answer`'s JSON, kept under `(route, params)` while the store is unchanged.
    pub(crate) async fn json_answer<T, F, E>(
        &self,
        route: &'static str,
        params: String,
        answer: F,
    ) -> Result<Response, E>
    where
        T: Serialize,
        F: Future<Output = Result<T, E>>,
        E: From<ApiError>,
    {
        let version = self.store.data_version();
        let bytes: Bytes = self
            .answers
            .read(version, (route, params), async {
                let value = answer.await?;
                serde_json::to_vec(&value).map(Bytes::from).map_err(|e| E::from(ApiError::internal(route, &e)))
            })
            .await?;
        Ok(json_bytes(bytes))
    }
}

/// A 200 answer of JSON already serialised.
pub(crate) fn json_bytes(bytes: Bytes) -> Response {
    let mut response = bytes.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
