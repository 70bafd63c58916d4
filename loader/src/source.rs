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

use logrouter::aws::describe;
use logrouter::layout::MANIFESTS_DIR;
use logrouter::location::Location;
use logrouter::manifest::Manifest;

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
}

/// A failure to find or read what to load.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Message(String),
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
) -> Result<Vec<RoutedFile>, SourceError> {
    let mut files = Vec::new();
    for source in sources {
        let mut found = find_manifests(source, s3).await?;
        found.sort_by_key(|m| m.location.to_string());
        let only = single_file(source);
        for m in found {
            let manifest = read_manifest(&m.location, s3).await?;
            for f in files_of(&manifest, &m.root, &m.location) {
                if only.as_ref().is_none_or(|o| *o == f.location) {
                    files.push(f);
                }
            }
        }
        if let Some(only) = only {
            if !files.iter().any(|f| f.location == only) {
                return Err(err(format!(
                    "{source}: its manifest does not name it (it is not a routed file, or the router is still writing its source)"
                )));
            }
        }
    }
    Ok(files)
}

/// The routed files a manifest names, under `root`.
pub fn files_of(manifest: &Manifest, root: &Location, at: &Location) -> Vec<RoutedFile> {
    let mut out = Vec::new();
    for (table, t) in &manifest.types {
        for p in &t.parts {
            let location = join(root, &p.key);
            out.push(RoutedFile {
                uri: location.to_string(),
                location,
                table: table.clone(),
                lines: p.lines,
                manifest: at.to_string(),
            });
        }
    }
    out
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
        Location::Local(p) => Location::Local(std::path::absolute(p).unwrap_or(p.clone())),
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
            let path =
                std::path::absolute(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
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

/// `ROOT` of `ROOT/_manifests/…/x.json`.
fn manifest_root(path: &str) -> Option<String> {
    if !path.ends_with(".json") {
        return None;
    }
    let at = path.find(&format!("{MANIFESTS_DIR}/"))?;
    (at == 0 || path[..at].ends_with('/')).then(|| path[..at].trim_end_matches('/').to_owned())
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
