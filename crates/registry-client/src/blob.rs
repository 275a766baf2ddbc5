//! Blob streams: downloads, digest verification on the fly, and the source side of uploads.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use image_core::Digest;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// A stream of blob bytes, as this crate produces and consumes them.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send + 'static>>;

/// A blob being downloaded.
///
/// The stream holds one of its registry's request slots until it ends or is dropped, so a copy
/// within one registry must keep fewer blobs in flight than `max_concurrent_requests_per_registry`
/// (each needs a slot to read and one to write).
/// A stream that breaks off yields a transient error ([`Error::Interrupted`]); continue with
/// [`RegistryClient::get_blob`](crate::RegistryClient::get_blob) at the offset reached.
pub struct BlobStream {
    /// The size of the whole blob, when the registry says.
    pub size: Option<u64>,
    /// Where in the blob the stream starts.
    pub offset: u64,
    pub stream: ByteStream,
}

impl fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStream").field("size", &self.size).field("offset", &self.offset).finish_non_exhaustive()
    }
}

/// The sha256 digest of `bytes`.
pub fn digest_of(bytes: &[u8]) -> Digest {
    Digest::from_sha256_bytes(Sha256::digest(bytes).into())
}

/// Passes `stream` through while hashing it; if the whole does not hash to `expected`, the
/// stream ends with [`Error::DigestMismatch`] instead of its last chunk.
///
/// The last chunk is held back until the hash is known, so a consumer that uploads the stream
/// never receives all of a corrupt blob: its upload is cut short (the registry sees fewer bytes
/// than announced) and cannot complete.
/// Only one chunk is ever held; nothing else is buffered.
pub fn verify_digest<S>(stream: S, expected: Digest) -> impl Stream<Item = Result<Bytes>> + Send + 'static
where
    S: Stream<Item = Result<Bytes>> + Send + 'static,
{
    VerifyDigest { inner: Some(Box::pin(stream)), hasher: Sha256::new(), held: None, expected }
}

struct VerifyDigest<S> {
    /// `None` once the inner stream ended or failed.
    inner: Option<Pin<Box<S>>>,
    hasher: Sha256,
    /// The latest chunk, released when the next one arrives or the digest is confirmed.
    held: Option<Bytes>,
    expected: Digest,
}

impl<S: Stream<Item = Result<Bytes>>> Stream for VerifyDigest<S> {
    type Item = Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes>>> {
        let this = self.get_mut();
        loop {
            let Some(inner) = this.inner.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(inner.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => {
                    if chunk.is_empty() {
                        continue;
                    }
                    this.hasher.update(&chunk);
                    if let Some(previous) = this.held.replace(chunk) {
                        return Poll::Ready(Some(Ok(previous)));
                    }
                }
                Some(Err(e)) => {
                    this.inner = None;
                    this.held = None;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    this.inner = None;
                    let actual = Digest::from_sha256_bytes(std::mem::take(&mut this.hasher).finalize().into());
                    if actual == this.expected {
                        return Poll::Ready(this.held.take().map(Ok));
                    }
                    this.held = None;
                    return Poll::Ready(Some(Err(Error::DigestMismatch { expected: this.expected.clone(), actual })));
                }
            }
        }
    }
}

/// How much of an upload is kept for a replay when a registry refuses a monolithic `PUT`
/// (413/416) after reading part of it: at most this, and only while that `PUT` runs.
const REPLAY_LIMIT: usize = 4 * 1024 * 1024;

/// The caller's blob stream during an upload, shared between the request body that reads it
/// and the upload logic that must learn why it failed and may have to replay its start.
pub(crate) struct UploadSource {
    stream: Option<ByteStream>,
    expected_size: u64,
    /// Bytes taken from the caller's stream so far.
    taken: u64,
    /// Chunks to hand out again before reading on: a replay after a refused `PUT`, or the rest
    /// of a chunk that did not fit into a `PATCH`.
    queue: VecDeque<Bytes>,
    /// Whether chunks handed out are recorded (in `recorded`) for a replay.
    recording: bool,
    recorded: VecDeque<Bytes>,
    recorded_len: usize,
    overflowed: bool,
    /// The first error: the caller's stream failed or had the wrong size.
    error: Option<Error>,
}

pub(crate) type SharedSource = Arc<Mutex<UploadSource>>;

impl UploadSource {
    pub fn new<S>(stream: S, expected_size: u64) -> SharedSource
    where
        S: Stream<Item = Result<Bytes>> + Send + 'static,
    {
        Arc::new(Mutex::new(UploadSource {
            stream: Some(Box::pin(stream)),
            expected_size,
            taken: 0,
            queue: VecDeque::new(),
            recording: false,
            recorded: VecDeque::new(),
            recorded_len: 0,
            overflowed: false,
            error: None,
        }))
    }

    pub fn lock(shared: &SharedSource) -> std::sync::MutexGuard<'_, UploadSource> {
        shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records what is handed out from now on, up to [`REPLAY_LIMIT`].
    pub fn start_recording(&mut self) {
        self.recording = true;
    }

    /// Queues what was recorded to be handed out again; false when more was handed out than
    /// was kept.
    pub fn rewind(&mut self) -> bool {
        self.recording = false;
        if self.overflowed {
            return false;
        }
        let recorded = std::mem::take(&mut self.recorded);
        for chunk in recorded.into_iter().rev() {
            self.queue.push_front(chunk);
        }
        self.recorded_len = 0;
        true
    }

    /// Stops recording and forgets what was recorded.
    pub fn stop_recording(&mut self) {
        self.recording = false;
        self.recorded.clear();
        self.recorded_len = 0;
    }

    /// Puts back the unused rest of a chunk.
    fn unread(&mut self, rest: Bytes) {
        self.queue.push_front(rest);
    }

    pub fn take_error(&mut self) -> Option<Error> {
        self.error.take()
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<std::io::Result<Bytes>>> {
        let chunk = match self.queue.pop_front() {
            Some(chunk) => chunk,
            None => {
                if self.error.is_some() {
                    return Poll::Ready(Some(Err(source_failed())));
                }
                let Some(stream) = self.stream.as_mut() else {
                    return Poll::Ready(None);
                };
                loop {
                    match ready!(stream.as_mut().poll_next(cx)) {
                        Some(Ok(chunk)) if chunk.is_empty() => continue,
                        Some(Ok(chunk)) => {
                            self.taken += chunk.len() as u64;
                            if self.taken > self.expected_size {
                                self.fail(Error::SizeMismatch { expected: self.expected_size, actual: self.taken });
                                return Poll::Ready(Some(Err(source_failed())));
                            }
                            break chunk;
                        }
                        Some(Err(e)) => {
                            self.fail(e);
                            return Poll::Ready(Some(Err(source_failed())));
                        }
                        None => {
                            self.stream = None;
                            if self.taken != self.expected_size {
                                self.fail(Error::SizeMismatch { expected: self.expected_size, actual: self.taken });
                                return Poll::Ready(Some(Err(source_failed())));
                            }
                            return Poll::Ready(None);
                        }
                    }
                }
            }
        };
        if self.recording {
            if self.recorded_len + chunk.len() <= REPLAY_LIMIT {
                self.recorded_len += chunk.len();
                self.recorded.push_back(chunk.clone());
            } else {
                self.overflowed = true;
                self.stop_recording();
            }
        }
        Poll::Ready(Some(Ok(chunk)))
    }

    fn fail(&mut self, error: Error) {
        self.stream = None;
        self.queue.clear();
        if self.error.is_none() {
            self.error = Some(error);
        }
    }
}

fn source_failed() -> std::io::Error {
    std::io::Error::other("the blob source stream failed")
}

/// The source as a request body for one streaming `PUT`.
pub(crate) struct SourceBody(pub SharedSource);

impl Stream for SourceBody {
    type Item = std::io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        UploadSource::lock(&self.0).poll_chunk(cx)
    }
}

/// Reads up to `max` bytes from the source into one buffer (for a `PATCH`); `None` at the end.
/// Only this one chunk is held in memory.
pub(crate) async fn read_chunk(source: &SharedSource, max: usize) -> Result<Option<Bytes>> {
    let mut buf = BytesMut::new();
    while buf.len() < max {
        let next = futures::future::poll_fn(|cx| UploadSource::lock(source).poll_chunk(cx)).await;
        match next {
            Some(Ok(mut chunk)) => {
                let room = max - buf.len();
                if chunk.len() > room {
                    let rest = chunk.split_off(room);
                    UploadSource::lock(source).unread(rest);
                }
                if buf.is_empty() && chunk.len() == max {
                    return Ok(Some(chunk));
                }
                buf.extend_from_slice(&chunk);
            }
            Some(Err(_)) => {
                let error = UploadSource::lock(source).take_error();
                return Err(error.unwrap_or_else(|| Error::Io(source_failed())));
            }
            None => break,
        }
    }
    Ok((!buf.is_empty()).then(|| buf.freeze()))
}

#[cfg(test)]
mod tests {
    use futures::{StreamExt as _, TryStreamExt as _, stream};

    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
        stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn verify_digest_passes_good_streams_through() {
        let expected = digest_of(b"hello world");
        let out: Vec<Bytes> =
            verify_digest(chunks(&[b"hello", b"", b" ", b"world"]), expected).try_collect().await.unwrap();
        assert_eq!(out.concat(), b"hello world");
        let empty: Vec<Bytes> = verify_digest(chunks(&[]), digest_of(b"")).try_collect().await.unwrap();
        assert!(empty.is_empty());
    }

    #[tokio::test]
    async fn verify_digest_withholds_the_last_chunk_of_a_bad_stream() {
        let expected = digest_of(b"hello world");
        let items: Vec<Result<Bytes>> = verify_digest(chunks(&[b"hello", b" ", b"WORLD"]), expected).collect().await;
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].as_ref().unwrap(), "hello");
        assert_eq!(items[1].as_ref().unwrap(), " ");
        match &items[2] {
            Err(Error::DigestMismatch { expected: e, actual }) => {
                assert_eq!(e, &digest_of(b"hello world"));
                assert_eq!(actual, &digest_of(b"hello WORLD"));
            }
            other => panic!("{other:?}"),
        }
        // A single-chunk bad stream yields no data at all.
        let items: Vec<Result<Bytes>> = verify_digest(chunks(&[b"x"]), digest_of(b"y")).collect().await;
        assert!(matches!(items.as_slice(), [Err(Error::DigestMismatch { .. })]));
    }

    #[tokio::test]
    async fn verify_digest_passes_errors_on() {
        let s = stream::iter(vec![Ok(Bytes::from_static(b"a")), Err(Error::Io(std::io::Error::other("boom")))]);
        let items: Vec<Result<Bytes>> = verify_digest(s, digest_of(b"a")).collect().await;
        assert!(matches!(items.as_slice(), [Err(Error::Io(_))]), "{items:?}");
    }

    #[tokio::test]
    async fn chunks_are_cut_to_size_and_sizes_are_checked() {
        let source = UploadSource::new(chunks(&[b"abcde", b"fgh", b"ij"]), 10);
        let mut read = Vec::new();
        while let Some(chunk) = read_chunk(&source, 4).await.unwrap() {
            read.push(chunk);
        }
        assert_eq!(read, ["abcd", "efgh", "ij"]);

        let source = UploadSource::new(chunks(&[b"abcde"]), 4);
        assert!(matches!(read_chunk(&source, 100).await, Err(Error::SizeMismatch { expected: 4, actual: 5 })));
        let source = UploadSource::new(chunks(&[b"abc"]), 4);
        assert!(matches!(read_chunk(&source, 100).await, Err(Error::SizeMismatch { expected: 4, actual: 3 })));
    }

    #[tokio::test]
    async fn a_recorded_start_is_replayed() {
        let source = UploadSource::new(chunks(&[b"ab", b"cd", b"ef"]), 6);
        UploadSource::lock(&source).start_recording();
        let mut body = SourceBody(source.clone());
        assert_eq!(body.next().await.unwrap().unwrap(), "ab");
        assert_eq!(body.next().await.unwrap().unwrap(), "cd");
        drop(body);
        assert!(UploadSource::lock(&source).rewind());
        let mut all = Vec::new();
        while let Some(chunk) = read_chunk(&source, 3).await.unwrap() {
            all.push(chunk);
        }
        assert_eq!(all, ["abc", "def"]);
    }
}
