//! Blob contents on disk, content-addressed: `<root>/blobs/sha256/<first 2 hex>/<hex>`.
//!
//! An upload is written to `<root>/uploads/<id>`, hashed while it streams in, and moved into place only
//! once its digest is verified: synced, renamed (atomic within one file system), and its directory synced.
//! A crash leaves at most an upload file behind, never a partial blob under a digest.

use std::{
    collections::HashMap,
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use image_core::Digest;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

/// The blob files of the registry, and the uploads being written.
#[derive(Debug)]
pub struct BlobStore {
    root: PathBuf,
    /// The hash of each upload's bytes so far, while this process keeps receiving it: `(size, state)`.
    /// An upload resumed after a restart is hashed from its file when it finishes.
    hashes: Mutex<HashMap<String, (u64, Sha256)>>,
    /// One writer per upload at a time.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Why an append stopped.
#[derive(Debug)]
pub enum AppendError {
    /// The client's body failed (it went away); what was written is not counted.
    Body(String),
    Io(io::Error),
}

impl BlobStore {
    /// Opens (creating when missing, mode 0700) the directories under `root`.
    pub fn open(root: &Path) -> io::Result<BlobStore> {
        for dir in [root.to_path_buf(), root.join("blobs").join("sha256"), root.join("uploads")] {
            create_private_dir(&dir)?;
        }
        Ok(BlobStore { root: root.to_path_buf(), hashes: Mutex::default(), locks: Mutex::default() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob's file is, once it is in place.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join("blobs").join("sha256").join(&hex[..2]).join(hex)
    }

    fn upload_path(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    /// The lock that one writer of upload `id` holds; taken only for an upload known to be in progress (the
    /// entry goes when the upload ends).
    pub fn upload_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(id.to_owned()).or_default().clone()
    }

    fn forget(&self, id: &str) {
        self.hashes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id);
        self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id);
    }

    /// Creates the empty file of a new upload.
    pub async fn create_upload(&self, id: &str) -> io::Result<()> {
        tokio::fs::File::create(self.upload_path(id)).await?;
        self.hashes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id.to_owned(), (0, Sha256::new()));
        Ok(())
    }

    /// Writes `body` after the first `offset` bytes of the upload (dropping whatever a failed earlier write
    /// left beyond them) and returns the new size. The caller holds the upload's lock.
    pub async fn append<S, E>(&self, id: &str, offset: u64, body: S) -> Result<u64, AppendError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let mut file =
            tokio::fs::OpenOptions::new().write(true).open(self.upload_path(id)).await.map_err(AppendError::Io)?;
        file.set_len(offset).await.map_err(AppendError::Io)?;
        file.seek(io::SeekFrom::Start(offset)).await.map_err(AppendError::Io)?;
        // A request body arrives in chunks of a few KiB; each write to a file is a trip to the blocking pool,
        // so they are gathered into writes of up to WRITE_BUFFER bytes.
        let mut file = tokio::io::BufWriter::with_capacity(WRITE_BUFFER, file);
        let taken = self.hashes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id);
        let mut hasher = match taken {
            Some((size, hasher)) if size == offset => Some(hasher),
            _ if offset == 0 => Some(Sha256::new()),
            _ => None,
        };
        let mut size = offset;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| AppendError::Body(e.to_string()))?;
            file.write_all(&chunk).await.map_err(AppendError::Io)?;
            if let Some(hasher) = &mut hasher {
                hasher.update(&chunk);
            }
            size += chunk.len() as u64;
        }
        file.flush().await.map_err(AppendError::Io)?;
        if let Some(hasher) = hasher {
            self.hashes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id.to_owned(), (size, hasher));
        }
        Ok(size)
    }

    /// The digest of the upload's first `size` bytes: from the hash kept while they streamed in, or read
    /// back from the file.
    pub async fn upload_digest(&self, id: &str, size: u64) -> io::Result<Digest> {
        let kept = self.hashes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(id).cloned();
        if let Some((kept_size, hasher)) = kept
            && kept_size == size
        {
            return Ok(Digest::from_sha256_bytes(hasher.finalize().into()));
        }
        let mut file = tokio::fs::File::open(self.upload_path(id)).await?.take(size);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(Digest::from_sha256_bytes(hasher.finalize().into()))
    }

    /// Moves a verified upload into place as the blob `digest`: truncated to `size`, synced, renamed and
    /// its directory synced. A blob already in place stays, and the upload goes.
    pub async fn commit(&self, id: &str, size: u64, digest: &Digest) -> io::Result<()> {
        let from = self.upload_path(id);
        let to = self.blob_path(digest);
        let dir = to.parent().map(Path::to_path_buf).unwrap_or_else(|| self.root.clone());
        let file = tokio::fs::OpenOptions::new().write(true).open(&from).await?;
        file.set_len(size).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::create_dir_all(&dir).await?;
        if tokio::fs::try_exists(&to).await? {
            tokio::fs::remove_file(&from).await?;
        } else {
            tokio::fs::rename(&from, &to).await?;
            sync_dir(&dir).await?;
        }
        self.forget(id);
        Ok(())
    }

    /// Deletes an upload's file (a missing one is fine).
    pub async fn remove_upload(&self, id: &str) -> io::Result<()> {
        self.forget(id);
        match tokio::fs::remove_file(self.upload_path(id)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Opens the blob's file at `offset`.
    pub async fn open_blob(&self, digest: &Digest, offset: u64) -> io::Result<tokio::fs::File> {
        let mut file = tokio::fs::File::open(self.blob_path(digest)).await?;
        if offset > 0 {
            file.seek(io::SeekFrom::Start(offset)).await?;
        }
        Ok(file)
    }
}

/// Bytes gathered before one write to an upload's file.
const WRITE_BUFFER: usize = 1 << 20;
/// Bytes read from a blob's file at once when serving it.
const READ_CHUNK: usize = 1 << 20;

/// `len` bytes of `file` as a stream of chunks of at most [`READ_CHUNK`] bytes.
pub fn file_stream(file: tokio::fs::File, len: u64) -> impl Stream<Item = io::Result<Bytes>> + Send {
    futures::stream::unfold((file.take(len), false), |(mut file, done)| async move {
        if done {
            return None;
        }
        let mut buf = vec![0u8; READ_CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), (file, false)))
            }
            Err(e) => Some((Err(e), (file, true))),
        }
    })
}

async fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all()).await.map_err(io::Error::other)?
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> {
        futures::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn an_upload_becomes_a_blob_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        blobs.create_upload("u1").await.unwrap();
        let size = blobs.append("u1", 0, chunks(&[b"hello ", b"world"])).await.unwrap();
        assert_eq!(size, 11);
        let digest = blobs.upload_digest("u1", size).await.unwrap();
        assert_eq!(digest, Digest::from_sha256_bytes(Sha256::digest(b"hello world").into()));
        assert!(!blobs.blob_path(&digest).exists(), "visible before commit");
        blobs.commit("u1", size, &digest).await.unwrap();
        assert_eq!(std::fs::read(blobs.blob_path(&digest)).unwrap(), b"hello world");
        assert!(!dir.path().join("uploads/u1").exists());
    }

    #[tokio::test]
    async fn a_failed_chunk_is_dropped_and_the_hash_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        blobs.create_upload("u2").await.unwrap();
        let size = blobs.append("u2", 0, chunks(&[b"abc"])).await.unwrap();
        // A chunk whose body fails half-way: its bytes are on disk but not counted.
        let failing = futures::stream::iter(vec![Ok(Bytes::from_static(b"XYZ")), Err("client went away")]);
        assert!(matches!(blobs.append("u2", size, failing).await, Err(AppendError::Body(_))));
        // The next chunk starts at the counted size, and the in-memory hash is gone: the digest is read back.
        let size = blobs.append("u2", size, chunks(&[b"def"])).await.unwrap();
        assert_eq!(size, 6);
        let digest = blobs.upload_digest("u2", size).await.unwrap();
        assert_eq!(digest, Digest::from_sha256_bytes(Sha256::digest(b"abcdef").into()));
    }
}
