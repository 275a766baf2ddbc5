//! A stand-in for Docker Hub's repository search, `GET /v1/search?q=…&n=…`, answering as Docker Hub
//! documents it:
//!
//! ```json
//! {"num_pages": 1, "num_results": 1, "page": 1, "page_size": 25, "query": "dorowu",
//!  "results": [{"description": "…", "is_automated": true, "is_official": false,
//!               "name": "dorowu/ubuntu-desktop-lxde-vnc", "star_count": 16}]}
//! ```
//!
//! It holds a fixed list of repositories, answers those whose name or description holds the query,
//! and counts the searches it answered. Dropping it stops it.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming};

/// One repository the stand-in knows.
#[derive(Debug, Clone)]
pub struct HubEntry {
    pub name: &'static str,
    pub description: &'static str,
    pub star_count: i64,
    pub is_official: bool,
    pub is_automated: bool,
}

/// What the stand-in knows unless told otherwise: a few of Docker Hub's own answers to `dorowu`, and
/// two official images.
pub const DEFAULT_ENTRIES: &[HubEntry] = &[
    HubEntry {
        name: "dorowu/ubuntu-desktop-lxde-vnc",
        description: "Ubuntu with openssh-server and NoVNC on port 6080  ",
        star_count: 16,
        is_official: false,
        is_automated: true,
    },
    HubEntry { name: "dorowu/qnap-builder", description: "", star_count: 1, is_official: false, is_automated: false },
    HubEntry {
        name: "redis",
        description: "Redis is an open source key-value store that functions as a data structure server.",
        star_count: 12000,
        is_official: true,
        is_automated: false,
    },
    HubEntry {
        name: "nginx",
        description: "Official build of Nginx.",
        star_count: 19000,
        is_official: true,
        is_automated: false,
    },
];

/// The stand-in; see the [module documentation](self).
#[derive(Debug)]
pub struct DockerHubSearch {
    url: String,
    searches: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DockerHubSearch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DockerHubSearch {
    /// Starts on a free loopback port with [`DEFAULT_ENTRIES`].
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn start() -> DockerHubSearch {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("test-support: binding a port");
        let url = format!("http://{}/v1/search", listener.local_addr().unwrap());
        let searches = Arc::new(AtomicUsize::new(0));
        let counter = searches.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let counter = counter.clone();
                        connections.spawn(async move {
                            let service = hyper::service::service_fn(move |req| answer(counter.clone(), req));
                            let io = hyper_util::rt::TokioIo::new(stream);
                            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        DockerHubSearch { url, searches, task }
    }

    /// The search URL, `http://127.0.0.1:PORT/v1/search`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many searches it answered.
    pub fn searches(&self) -> usize {
        self.searches.load(Ordering::SeqCst)
    }
}

async fn answer(counter: Arc<AtomicUsize>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/v1/search" {
        let mut response = Response::new(Full::new(Bytes::from_static(b"{\"message\": \"not found\"}")));
        *response.status_mut() = hyper::StatusCode::NOT_FOUND;
        return Ok(response);
    }
    counter.fetch_add(1, Ordering::SeqCst);
    let query = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("q="))
        .map(|q| crate::proxy::percent_decode(&q.replace('+', " ")))
        .unwrap_or_default()
        .to_lowercase();
    let results: Vec<serde_json::Value> = DEFAULT_ENTRIES
        .iter()
        .filter(|e| e.name.contains(&query) || e.description.to_lowercase().contains(&query))
        .map(|e| {
            serde_json::json!({
                "description": e.description,
                "is_automated": e.is_automated,
                "is_official": e.is_official,
                "name": e.name,
                "star_count": e.star_count,
            })
        })
        .collect();
    let body = serde_json::json!({
        "num_pages": 1,
        "num_results": results.len(),
        "page": 1,
        "page_size": 25,
        "query": query,
        "results": results,
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    Ok(response)
}
