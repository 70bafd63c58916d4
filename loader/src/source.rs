//! What to load: routed files found through the router's manifests.
//!
//! The loader never lists type folders to find work. A part is trusted only
//! once a manifest names it (the manifest is the router's commit marker), and
//! the manifest says how many lines each part holds, which the loader checks
//! its row counts against. Listing only `ROOT/_manifests/` also keeps out
//! selective replays (`ROOT/_replays/…`, loaded only when a replay's own root
//! is named), quarantine (`_rejected/`) and the hidden temp files of a router
//! that was killed mid-write.

use std::io::Read;
use std::path::{Path, PathBuf};

use logrouter::aws::{describe, AwsClients};
use logrouter::layout::{MANIFESTS_DIR, REPLAYS_DIR};
use logrouter::location::Location;
use logrouter::manifest::Manifest;
use logrouter::normalize::validate_name;
use logrouter::store::open_source;
use sha2::{Digest, Sha256};

/// One routed file to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedFile {
    /// `s3://bucket/key` or an absolute local path: the ledger's key and the
    /// rows' `_routed_file`.
    pub uri: String,
    pub location: Location,
    /// The table (normalised event type).
    pub table: String,
    /// Lines the manifest says the file holds.
    pub lines: u64,
    /// The manifest naming it.
    pub manifest: String,
    /// When that manifest's route ran: a load never replaces the rows of a
    /// newer route with those of an older one.
    pub routed_at: String,
}

/// What the sources name.
#[derive(Debug, Default)]
pub struct Discovery {
    pub files: Vec<RoutedFile>,
    /// Manifests named whole (not through one of their files): every file
    /// each names. Rows of other files recorded under these manifests
    /// belong to an earlier route and are removed by the load.
    pub complete: Vec<(String, Vec<String>)>,
    /// Manifests that could not be read; the others are still loaded.
    pub errors: Vec<String>,
}

/// A failure to find or read what to load.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Message(String),
    /// A routed file could not be opened or read.
    #[error("{file}: reading failed: {message}")]
    Read { file: String, message: String },
}

fn err(m: impl Into<String>) -> SourceError {
    SourceError::Message(m.into())
}

/// A manifest found under a root, with the root its keys are relative to.
struct FoundManifest {
    root: Location,
    location: Location,
}

/// Finds every routed file the given sources name: router output roots
/// (local folders or `s3://bucket/prefix`), single manifests, or single
/// routed files (found through their manifest).
pub async fn discover(
    sources: &[Location],
    s3: Option<&aws_sdk_s3::Client>,
) -> Result<Discovery, SourceError> {
    let mut d = Discovery::default();
    for source in sources {
        let mut found = find_manifests(source, s3).await?;
        if found.is_empty() {
            return Err(err(format!(
                "{source}: no manifests under it (is it the router's output root? a mistyped prefix lists nothing)"
            )));
        }
        found.sort_by_key(|m| m.location.to_string());
        let only = single_file(source);
        for m in found {
            // One unreadable manifest is reported; the others still load.
            let files = match read_manifest(&m.location, s3).await {
                Ok(manifest) => files_of(&manifest, &m.root, &m.location),
                Err(e) => Err(e),
            };
            let files = match files {
                Ok(f) => f,
                Err(e) => {
                    d.errors.push(e.to_string());
                    continue;
                }
            };
            if only.is_none() {
                d.complete.push((
                    m.location.to_string(),
                    files.iter().map(|f| f.uri.clone()).collect(),
                ));
            }
            d.files.extend(
                files
                    .into_iter()
                    .filter(|f| only.as_ref().is_none_or(|o| *o == f.location)),
            );
        }
        if let Some(only) = only {
            if !d.files.iter().any(|f| f.location == only) && d.errors.is_empty() {
                return Err(err(format!(
                    "{source}: its manifest does not name it (it is not a routed file, or the router is still writing its source)"
                )));
            }
        }
    }
    Ok(d)
}

/// The routed files a manifest names, under `root`. Its contents are data:
/// every type must be a valid table name and every key must stay inside
/// the root, in its type's folder.
pub fn files_of(
    manifest: &Manifest,
    root: &Location,
    at: &Location,
) -> Result<Vec<RoutedFile>, SourceError> {
    let mut out = Vec::new();
    let bad = |what: String| {
        err(format!("{at}: {what}; the manifest was not written by the router, or was damaged: route its source again"))
    };
    for (table, t) in &manifest.types {
        validate_name(table).map_err(|e| bad(format!("type {table:?} {}", e.rule)))?;
        for p in &t.parts {
            // A replay's keys start with `_replays/<tag>/`: relative to the
            // parent of the replay's own folder, which is the root named.
            let key = p.key.as_str();
            let (root, rel) = match key
                .strip_prefix(&format!("{REPLAYS_DIR}/"))
                .and_then(|r| r.split_once('/'))
            {
                Some((tag, rel)) => (
                    strip_root_suffix(root, &format!("{REPLAYS_DIR}/{tag}"))
                        .unwrap_or_else(|| root.clone()),
                    rel,
                ),
                None => (root.clone(), key),
            };
            let confined = !key.starts_with('/')
                && key
                    .split('/')
                    .all(|s| !s.is_empty() && s != "." && s != "..")
                && rel.split('/').next() == Some(table.as_str())
                && is_routed_file(key);
            if !confined {
                return Err(bad(format!(
                    "part key {key:?} of type {table} is not <type>/…/<name>.part-NNNNN.json.gz inside its root"
                )));
            }
            let location = join(&root, key);
            out.push(RoutedFile {
                uri: location.to_string(),
                location,
                table: table.clone(),
                lines: p.lines,
                manifest: at.to_string(),
                routed_at: manifest
                    .routed_at
                    .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                    .to_string(),
            });
        }
    }
    Ok(out)
}

/// `root` without its trailing `suffix` folder(s), if it ends with them.
fn strip_root_suffix(root: &Location, suffix: &str) -> Option<Location> {
    match root {
        Location::Local(p) => {
            let text = p.to_string_lossy();
            text.strip_suffix(suffix)
                .map(|r| Location::Local(PathBuf::from(r.trim_end_matches('/'))))
        }
        Location::S3 { bucket, key } => key.strip_suffix(suffix).map(|r| Location::S3 {
            bucket: bucket.clone(),
            key: r.trim_end_matches('/').to_owned(),
        }),
        Location::Stdin => None,
    }
}

fn join(root: &Location, key: &str) -> Location {
    match root {
        Location::Local(p) => Location::Local(p.join(key)),
        Location::S3 {
            bucket,
            key: prefix,
        } => Location::S3 {
            bucket: bucket.clone(),
            key: if prefix.is_empty() {
                key.to_owned()
            } else {
                format!("{}/{key}", prefix.trim_end_matches('/'))
            },
        },
        Location::Stdin => Location::Stdin,
    }
}

fn is_routed_file(name: &str) -> bool {
    name.ends_with(".json.gz") || name.ends_with(".json.zst")
}

/// The source itself when it names one routed file.
fn single_file(source: &Location) -> Option<Location> {
    let name = match source {
        Location::Local(p) => p.to_string_lossy().into_owned(),
        Location::S3 { key, .. } => key.clone(),
        Location::Stdin => return None,
    };
    is_routed_file(&name).then(|| match source {
        Location::Local(p) => Location::Local(canonical(p)),
        other => other.clone(),
    })
}

/// For a routed file `ROOT/<type>/<partition>/<slug>.part-NNNNN.json.gz`
/// (partition `dt=…/hour=…` or `undated`): ROOT and its manifest's key
/// `_manifests/<partition>/<slug>.json`.
pub fn manifest_of(path: &str) -> Option<(String, String)> {
    let segs: Vec<&str> = path.split('/').collect();
    let file = *segs.last()?;
    let slug = file.split_once(".part-")?.0;
    let n = segs.len();
    let partition_len =
        if n >= 3 && segs[n - 2].starts_with("hour=") && segs[n - 3].starts_with("dt=") {
            2
        } else if n >= 2 && segs[n - 2] == "undated" {
            1
        } else {
            return None;
        };
    // ROOT/<type>/<partition…>/<file>
    let type_at = n.checked_sub(partition_len + 2)?;
    let root = segs[..type_at].join("/");
    let partition = segs[n - 1 - partition_len..n - 1].join("/");
    Some((root, format!("{MANIFESTS_DIR}/{partition}/{slug}.json")))
}

async fn find_manifests(
    source: &Location,
    s3: Option<&aws_sdk_s3::Client>,
) -> Result<Vec<FoundManifest>, SourceError> {
    match source {
        Location::Stdin => Err(err("the loader reads routed files, not standard input")),
        Location::Local(path) => {
            // Canonical: the same file named through `..` or a symlink is the
            // same ledger entry.
            let path = canonical(path);
            let text = path.to_string_lossy().into_owned();
            if is_routed_file(&text) {
                let (root, key) = manifest_of(&text).ok_or_else(|| {
                    err(format!("{text}: not a routed file name (expected ROOT/<type>/dt=…/hour=…/<name>.part-NNNNN.json.gz)"))
                })?;
                let location = Location::Local(Path::new(&root).join(&key));
                return Ok(vec![FoundManifest {
                    root: Location::Local(root.into()),
                    location,
                }]);
            }
            if let Some(root) = manifest_root(&text) {
                return Ok(vec![FoundManifest {
                    root: Location::Local(root.into()),
                    location: Location::Local(path),
                }]);
            }
            if !path.is_dir() {
                return Err(err(format!("{text}: no such folder (name a router output root, a manifest or a routed file)")));
            }
            let dir = path.join(MANIFESTS_DIR);
            if !dir.is_dir() {
                return Err(err(format!(
                    "{text}: has no {MANIFESTS_DIR}/ folder: name the router's output root (the folder given to `router --out`)"
                )));
            }
            let mut found = Vec::new();
            walk(&dir, &mut |p| {
                found.push(FoundManifest {
                    root: Location::Local(path.clone()),
                    location: Location::Local(p),
                })
            })
            .map_err(|e| err(format!("{}: {e}", dir.display())))?;
            Ok(found)
        }
        Location::S3 { bucket, key } => {
            let s3 = s3.expect("an S3 client for S3 sources");
            let s3_loc = |k: String| Location::S3 {
                bucket: bucket.clone(),
                key: k,
            };
            if is_routed_file(key) {
                let (root, mkey) = manifest_of(key)
                    .ok_or_else(|| err(format!("{source}: not a routed file name")))?;
                let full = if root.is_empty() {
                    mkey
                } else {
                    format!("{root}/{mkey}")
                };
                return Ok(vec![FoundManifest {
                    root: s3_loc(root),
                    location: s3_loc(full),
                }]);
            }
            if let Some(root) = manifest_root(key) {
                return Ok(vec![FoundManifest {
                    root: s3_loc(root),
                    location: source.clone(),
                }]);
            }
            let root = key.trim_end_matches('/').to_owned();
            let prefix = if root.is_empty() {
                format!("{MANIFESTS_DIR}/")
            } else {
                format!("{root}/{MANIFESTS_DIR}/")
            };
            let mut pages = s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(&prefix)
                .into_paginator()
                .send();
            let mut found = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    err(format!("listing s3://{bucket}/{prefix}: {}", describe(&e)))
                })?;
                for o in page.contents() {
                    let Some(k) = o.key() else { continue };
                    if k.ends_with(".json") && !hidden(k) {
                        found.push(FoundManifest {
                            root: s3_loc(root.clone()),
                            location: s3_loc(k.to_owned()),
                        });
                    }
                }
            }
            Ok(found)
        }
    }
}

/// `ROOT` of `ROOT/_manifests/…/x.json` (`_manifests` as a whole path
/// segment: `team_manifests/` is not one).
pub fn manifest_root(path: &str) -> Option<String> {
    if !path.ends_with(".json") {
        return None;
    }
    let segs: Vec<&str> = path.split('/').collect();
    let at = segs.iter().position(|s| *s == MANIFESTS_DIR)?;
    Some(segs[..at].join("/"))
}

/// An absolute path with symlinks and `..` resolved (as given when it does
/// not exist: the error comes later, naming it).
fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

fn hidden(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|n| n.starts_with('.'))
}

fn walk(dir: &Path, found: &mut dyn FnMut(PathBuf)) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type()?.is_dir() {
            walk(&p, found)?;
        } else if name.ends_with(".json") && !name.starts_with('.') {
            found(p);
        }
    }
    Ok(())
}

/// Reads and checks one manifest.
pub async fn read_manifest(
    at: &Location,
    s3: Option<&aws_sdk_s3::Client>,
) -> Result<Manifest, SourceError> {
    let bytes = match at {
        Location::Local(p) => std::fs::read(p).map_err(|e| {
            err(format!(
                "{}: {e} (is the router still writing it, or was it withdrawn by a re-route?)",
                p.display()
            ))
        })?,
        Location::S3 { bucket, key } => {
            let s3 = s3.expect("an S3 client for S3 sources");
            let out = s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| err(format!("{at}: {}", describe(&e))))?;
            out.body
                .collect()
                .await
                .map_err(|e| err(format!("{at}: {e}")))?
                .into_bytes()
                .to_vec()
        }
        Location::Stdin => return Err(err("no manifest on standard input")),
    };
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| err(format!("{at}: not a router manifest: {e}")))?;
    m.check_counts().map_err(|e| {
        err(format!(
            "{at}: counts do not add up ({e}); re-route its source"
        ))
    })?;
    Ok(m)
}

/// A decompressing reader of a routed file's stored bytes, by its extension.
pub fn decoder(name: &str, raw: Box<dyn Read + Send>) -> std::io::Result<Box<dyn Read + Send>> {
    if name.ends_with(".zst") {
        Ok(Box::new(zstd::stream::read::Decoder::new(raw)?))
    } else {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(
            std::io::BufReader::with_capacity(256 * 1024, raw),
        )))
    }
}

/// A file opened for loading: its version and its stored bytes.
pub struct OpenedFile {
    /// The S3 ETag, or a SHA-256 of a local file's bytes: a new version
    /// (a re-route) replaces the rows of the old one.
    pub version: String,
    /// The stored (compressed) bytes. Reading blocks: it must happen on a
    /// blocking thread, decompression included (a gzip decoder reads its
    /// header as soon as it is made).
    pub raw: Box<dyn Read + Send>,
}

/// Opens a routed file: its version (S3 ETag; for a local file its SHA-256
/// when `hash`, else empty) and its stored bytes.
pub async fn open_file(
    clients: &AwsClients,
    file: &RoutedFile,
    hash: bool,
) -> Result<OpenedFile, SourceError> {
    let read_err = |message: String| SourceError::Read {
        file: file.uri.clone(),
        message,
    };
    match &file.location {
        Location::Local(path) => {
            // Hash and read through the same open file: a file replaced
            // by a re-route in between is still the version hashed.
            let path = path.clone();
            let (version, f) = tokio::task::spawn_blocking(move || {
                use std::io::Seek;
                let mut f = std::fs::File::open(&path)?;
                let version = if hash {
                    let v = sha256_of(&mut f)?;
                    f.rewind()?;
                    v
                } else {
                    String::new()
                };
                Ok::<_, std::io::Error>((version, f))
            })
            .await
            .map_err(|e| read_err(e.to_string()))?
            .map_err(|e| read_err(e.to_string()))?;
            Ok(OpenedFile {
                version,
                raw: Box::new(f),
            })
        }
        loc @ Location::S3 { .. } => {
            let s3 = clients.s3().await;
            let src = open_source(loc, Some(&s3), None)
                .await
                .map_err(|e| read_err(e.to_string()))?;
            let version = src
                .info
                .etag
                .clone()
                .ok_or_else(|| read_err("S3 returned no ETag".into()))?;
            Ok(OpenedFile {
                version,
                raw: src.reader,
            })
        }
        Location::Stdin => Err(read_err("not a file".into())),
    }
}

pub(crate) fn sha256_of(f: &mut std::fs::File) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{:x}", h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_of_routed_files() {
        assert_eq!(
            manifest_of("/o/video_play/dt=2015-01-01/hour=15/a-0123.part-00001.json.gz"),
            Some((
                "/o".into(),
                "_manifests/dt=2015-01-01/hour=15/a-0123.json".into()
            ))
        );
        assert_eq!(
            manifest_of("p/q/click/undated/a-0123.part-00000.json.zst"),
            Some(("p/q".into(), "_manifests/undated/a-0123.json".into()))
        );
        assert_eq!(
            manifest_of("click/undated/a-0123.part-00000.json.gz"),
            Some(("".into(), "_manifests/undated/a-0123.json".into()))
        );
        assert_eq!(manifest_of("/o/click/a.part-00000.json.gz"), None);
        assert_eq!(manifest_of("/o/click/undated/a.json.gz"), None);
        assert_eq!(
            manifest_root("p/_manifests/dt=2015-01-01/hour=15/a.json"),
            Some("p".into())
        );
        assert_eq!(manifest_root("_manifests/undated/a.json"), Some("".into()));
        assert_eq!(manifest_root("p/x_manifests/a.json"), None);
    }
}
