//! Object stores: reading sources and writing outputs, locally or in S3.
//!
//! Outputs are written to a temporary file first and *committed* under their
//! final key only when complete: locally by fsync + rename (+ fsync of the
//! folder), in S3 by one PUT or a multipart upload. A reader therefore never
//! sees half a part, and once [`OutputStore::commit_file`] returns the data is
//! durable, which is what lets the queue worker delete a message afterwards.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::aws::describe;
use crate::location::Location;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{uri}: not found")]
    NotFound { uri: String },
    #[error("{op} {uri}: {message}")]
    S3 {
        op: &'static str,
        uri: String,
        message: String,
    },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Where routed outputs go.
#[derive(Debug, Clone)]
pub enum OutputStore {
    Local {
        root: PathBuf,
    },
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        /// Empty, or ending in `/`.
        prefix: String,
    },
}

/// Counts temporary files so that two parts never share one.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Distinguishes processes that share a pid (one per container).
static PROCESS_NONCE: std::sync::LazyLock<u32> = std::sync::LazyLock::new(|| {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
});

/// Settings for uploads of committed files.
#[derive(Debug, Clone, Copy)]
pub struct UploadSettings {
    pub multipart_threshold: u64,
    pub chunk: u64,
}

impl OutputStore {
    pub fn local(root: PathBuf) -> Self {
        OutputStore::Local { root }
    }

    pub fn s3(client: aws_sdk_s3::Client, bucket: String, prefix: &str) -> Self {
        let mut prefix = prefix.trim_start_matches('/').to_owned();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        OutputStore::S3 {
            client,
            bucket,
            prefix,
        }
    }

    /// The destination as a URI: a local path or `s3://bucket/prefix`.
    pub fn uri(&self) -> String {
        match self {
            OutputStore::Local { root } => root.display().to_string(),
            OutputStore::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    fn uri_of(&self, key: &str) -> String {
        match self {
            OutputStore::Local { root } => root.join(key).display().to_string(),
            OutputStore::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}{key}"),
        }
    }

    /// A fresh temporary file for the output `key`: beside its final place
    /// for local output (so the commit is a rename), in `spool` for S3.
    /// The name carries the pid, a counter and the start time's nanoseconds,
    /// and writers open it with `create_new`, so two processes sharing a
    /// folder (containers are all pid 1) never share a file.
    pub fn temp_path(&self, key: &str, spool: &Path) -> PathBuf {
        let n = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let pid = format!("{}-{}", std::process::id(), *PROCESS_NONCE);
        match self {
            OutputStore::Local { root } => {
                let final_path = root.join(key);
                let name = final_path
                    .file_name()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                final_path.with_file_name(format!(".{name}.{pid}-{n}.tmp"))
            }
            OutputStore::S3 { .. } => spool.join(format!("logrouter-{pid}-{n}.part.tmp")),
        }
    }

    /// Makes the temporary file `tmp` durable under `key`, then removes it.
    pub async fn commit_file(
        &self,
        tmp: &Path,
        key: &str,
        upload: UploadSettings,
    ) -> Result<(), StoreError> {
        match self {
            OutputStore::Local { root } => {
                let dest = root.join(key);
                let tmp = tmp.to_owned();
                let root = root.clone();
                tokio::task::spawn_blocking(move || commit_local(&tmp, &dest, &root))
                    .await
                    .expect("commit task panicked")
            }
            OutputStore::S3 {
                client,
                bucket,
                prefix,
            } => {
                let full = format!("{prefix}{key}");
                let size = tokio::fs::metadata(tmp)
                    .await
                    .map_err(io_err("stat", tmp))?
                    .len();
                let result = if size >= upload.multipart_threshold {
                    upload_multipart(client, bucket, &full, tmp, size, upload.chunk).await
                } else {
                    let body = ByteStream::from_path(tmp)
                        .await
                        .map_err(|e| StoreError::S3 {
                            op: "read spool file for",
                            uri: format!("s3://{bucket}/{full}"),
                            message: e.to_string(),
                        })?;
                    client
                        .put_object()
                        .bucket(bucket)
                        .key(&full)
                        .body(body)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| StoreError::S3 {
                            op: "PutObject",
                            uri: format!("s3://{bucket}/{full}"),
                            message: describe(&e),
                        })
                };
                let _ = tokio::fs::remove_file(tmp).await;
                result
            }
        }
    }

    /// Writes a small object (a manifest) durably and atomically.
    pub async fn put_small(&self, key: &str, data: Vec<u8>) -> Result<(), StoreError> {
        match self {
            OutputStore::Local { root } => {
                let dest = root.join(key);
                let tmp = self.temp_path(key, Path::new(""));
                let root = root.clone();
                tokio::task::spawn_blocking(move || {
                    if let Some(dir) = tmp.parent() {
                        std::fs::create_dir_all(dir).map_err(io_err("create folder", dir))?;
                    }
                    std::fs::write(&tmp, &data).map_err(io_err("write", &tmp))?;
                    commit_local(&tmp, &dest, &root)
                })
                .await
                .expect("write task panicked")
            }
            OutputStore::S3 {
                client,
                bucket,
                prefix,
            } => client
                .put_object()
                .bucket(bucket)
                .key(format!("{prefix}{key}"))
                .content_type("application/json")
                .body(ByteStream::from(data))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| StoreError::S3 {
                    op: "PutObject",
                    uri: self.uri_of(key),
                    message: describe(&e),
                }),
        }
    }

    /// Reads a small object (a manifest); `None` when it does not exist.
    pub async fn get_small(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            OutputStore::Local { root } => {
                let path = root.join(key);
                match tokio::fs::read(&path).await {
                    Ok(d) => Ok(Some(d)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io_err("read", &path)(e)),
                }
            }
            OutputStore::S3 {
                client,
                bucket,
                prefix,
            } => {
                let resp = client
                    .get_object()
                    .bucket(bucket)
                    .key(format!("{prefix}{key}"))
                    .send()
                    .await;
                match resp {
                    Ok(r) => {
                        let data = r.body.collect().await.map_err(|e| StoreError::S3 {
                            op: "GetObject",
                            uri: self.uri_of(key),
                            message: e.to_string(),
                        })?;
                        Ok(Some(data.to_vec()))
                    }
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
                    Err(e) => Err(StoreError::S3 {
                        op: "GetObject",
                        uri: self.uri_of(key),
                        message: describe(&e),
                    }),
                }
            }
        }
    }

    /// Deletes an output; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            OutputStore::Local { root } => {
                let path = root.join(key);
                match tokio::fs::remove_file(&path).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(io_err("delete", &path)(e)),
                }
            }
            OutputStore::S3 {
                client,
                bucket,
                prefix,
            } => client
                .delete_object()
                .bucket(bucket)
                .key(format!("{prefix}{key}"))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| StoreError::S3 {
                    op: "DeleteObject",
                    uri: self.uri_of(key),
                    message: describe(&e),
                }),
        }
    }
}

/// fsync the file, rename it into place, then fsync every folder from the
/// file's up to the output root (folders may have been created for it), so
/// the file survives a power cut before its manifest is written.
fn commit_local(tmp: &Path, dest: &Path, root: &Path) -> Result<(), StoreError> {
    let result = std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_err("fsync", tmp))
        .and_then(|()| std::fs::rename(tmp, dest).map_err(io_err("rename into place", dest)));
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
        return result;
    }
    let mut dir = dest.parent();
    while let Some(d) = dir {
        std::fs::File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(io_err("fsync folder", d))?;
        if d == root || !d.starts_with(root) {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

async fn upload_multipart(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    file: &Path,
    size: u64,
    chunk: u64,
) -> Result<(), StoreError> {
    let uri = format!("s3://{bucket}/{key}");
    let s3_err = |op, e: String| StoreError::S3 {
        op,
        uri: uri.clone(),
        message: e,
    };
    let created = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| s3_err("CreateMultipartUpload", describe(&e)))?;
    let upload_id = created
        .upload_id()
        .ok_or_else(|| s3_err("CreateMultipartUpload", "no upload id in the answer".into()))?
        .to_owned();
    let result = async {
        let mut parts = Vec::new();
        let mut offset = 0u64;
        let mut number = 1i32;
        while offset < size {
            let len = chunk.min(size - offset);
            let body = ByteStream::read_from()
                .path(file)
                .offset(offset)
                .length(Length::Exact(len))
                .build()
                .await
                .map_err(|e| s3_err("read spool file for", e.to_string()))?;
            let done = client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(body)
                .send()
                .await
                .map_err(|e| s3_err("UploadPart", describe(&e)))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(done.e_tag().map(str::to_owned))
                    .build(),
            );
            offset += len;
            number += 1;
        }
        client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| s3_err("CompleteMultipartUpload", describe(&e)))?;
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await;
    }
    result
}

/// What is known of a source before its first byte is read.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceInfo {
    /// `s3://bucket/key`, the absolute local path, or `-`.
    pub uri: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    pub etag: Option<String>,
    pub size: Option<u64>,
    pub last_modified: Option<DateTime<Utc>>,
}

/// An open source: its metadata and a blocking reader of its raw bytes.
pub struct OpenSource {
    pub info: SourceInfo,
    pub reader: Box<dyn Read + Send>,
    /// Raw (compressed) bytes handed to the reader so far.
    pub raw_bytes: Arc<AtomicU64>,
}

/// Marks an error of the transport (S3 connection), as opposed to damage in
/// the bytes themselves: a transport error makes the source fail and be
/// retried; damage is recorded in the manifest.
#[derive(Debug, thiserror::Error)]
#[error("reading the source failed: {0}")]
pub struct TransportError(pub String);

impl TransportError {
    pub fn is(e: &io::Error) -> bool {
        e.get_ref()
            .is_some_and(|inner| inner.is::<TransportError>())
    }
}

/// Opens a source for streaming. Must be called inside a tokio runtime.
/// `progress`, when given, also counts every raw byte read (shared by all
/// sources of a backfill, for its progress report).
pub async fn open_source(
    loc: &Location,
    s3: Option<&aws_sdk_s3::Client>,
    progress: Option<Arc<AtomicU64>>,
) -> Result<OpenSource, StoreError> {
    let raw_bytes = Arc::new(AtomicU64::new(0));
    match loc {
        Location::Stdin => Ok(OpenSource {
            info: SourceInfo {
                uri: "-".into(),
                ..Default::default()
            },
            reader: Box::new(Counting::new(
                io::stdin(),
                raw_bytes.clone(),
                progress.clone(),
            )),
            raw_bytes,
        }),
        Location::Local(path) => {
            let abs = std::path::absolute(path).map_err(io_err("resolve", path))?;
            let file = std::fs::File::open(&abs).map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    StoreError::NotFound {
                        uri: abs.display().to_string(),
                    }
                } else {
                    io_err("open", &abs)(e)
                }
            })?;
            let meta = file.metadata().map_err(io_err("stat", &abs))?;
            if meta.is_dir() {
                return Err(StoreError::Io {
                    op: "open",
                    path: abs,
                    source: io::Error::other("is a folder, not a log file"),
                });
            }
            Ok(OpenSource {
                info: SourceInfo {
                    uri: abs.display().to_string(),
                    bucket: None,
                    key: None,
                    etag: None,
                    size: Some(meta.len()),
                    last_modified: meta.modified().ok().map(DateTime::<Utc>::from),
                },
                reader: Box::new(Counting::new(file, raw_bytes.clone(), progress.clone())),
                raw_bytes,
            })
        }
        Location::S3 { bucket, key } => {
            let client = s3.expect("S3 client for an s3:// source");
            let uri = format!("s3://{bucket}/{key}");
            let resp = client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| {
                    if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                        StoreError::NotFound { uri: uri.clone() }
                    } else {
                        StoreError::S3 {
                            op: "GetObject",
                            uri: uri.clone(),
                            message: describe(&e),
                        }
                    }
                })?;
            let info = SourceInfo {
                uri,
                bucket: Some(bucket.clone()),
                key: Some(key.clone()),
                etag: resp.e_tag().map(|e| e.trim_matches('"').to_owned()),
                size: resp.content_length().map(|n| n as u64),
                last_modified: resp
                    .last_modified()
                    .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos())),
            };
            // The body is pumped into a small bounded channel by a task, so
            // at most a few chunks are in memory however large the object.
            let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
            let mut body = resp.body;
            tokio::spawn(async move {
                loop {
                    let item = match body.next().await {
                        None => break,
                        Some(Ok(b)) => Ok(b),
                        Some(Err(e)) => Err(io::Error::other(TransportError(e.to_string()))),
                    };
                    let stop = item.is_err();
                    if tx.send(item).await.is_err() || stop {
                        break;
                    }
                }
            });
            Ok(OpenSource {
                info,
                reader: Box::new(Counting::new(
                    ChannelReader {
                        rx,
                        current: Bytes::new(),
                    },
                    raw_bytes.clone(),
                    progress,
                )),
                raw_bytes,
            })
        }
    }
}

/// Blocking `Read` over chunks arriving on a channel from an async task.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Counts bytes read, so damage can be reported at a raw offset (and,
/// optionally, progress shown).
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
    progress: Option<Arc<AtomicU64>>,
}

impl<R> Counting<R> {
    fn new(inner: R, count: Arc<AtomicU64>, progress: Option<Arc<AtomicU64>>) -> Self {
        Self {
            inner,
            count,
            progress,
        }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(p) = &self.progress {
            p.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
}
