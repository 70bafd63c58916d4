//! `loader migrate`: applies `migrations/<dialect>/NNNN_name.sql` in order.
//!
//! Each applied file is recorded with a SHA-256 of its text. A recorded
//! migration whose file changed (or disappeared) is an error: the warehouse
//! was built by the old text, so editing an applied migration would make
//! two warehouses with "the same" migrations differ. The way out is always
//! a new migration. Migration SQL names tables without a schema; on
//! PostgreSQL and Redshift it runs with the configured schema as
//! `search_path`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::schema::Dialect;
use crate::warehouse::{LoadError, Warehouse};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: i64,
    /// File name without `.sql`.
    pub name: String,
    pub path: PathBuf,
    pub sql: String,
    pub checksum: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{0}")]
    Files(String),
    #[error("{file}: applied as migration {version} with checksum {applied}, but the file now has {now}: an applied migration must not change; restore it and put the change in a new migration")]
    Changed {
        file: String,
        version: i64,
        applied: String,
        now: String,
    },
    #[error(
        "migration {version} ({name}) was applied but its file is gone from {dir}: restore it"
    )]
    Missing {
        version: i64,
        name: String,
        dir: String,
    },
    #[error(transparent)]
    Warehouse(#[from] LoadError),
}

/// The folder of a dialect's migrations.
pub fn dialect_dir(root: &Path, dialect: Dialect) -> PathBuf {
    root.join(dialect.to_string())
}

/// Reads the migrations of `dir`, sorted by version. Names must be
/// `NNNN_description.sql` with distinct numbers.
pub fn read_dir(dir: &Path) -> Result<Vec<Migration>, MigrateError> {
    let fail = |m: String| MigrateError::Files(m);
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(fail(format!("{}: {e}", dir.display()))),
    };
    let mut out: Vec<Migration> = Vec::new();
    for e in entries {
        let e = e.map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        let path = e.path();
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(name) = file.strip_suffix(".sql") else {
            continue;
        };
        let version = name
            .split_once('_')
            .and_then(|(n, _)| n.parse::<i64>().ok())
            .ok_or_else(|| {
                fail(format!(
                    "{}: a migration is named NNNN_description.sql (e.g. 0002_add_video_quality.sql)",
                    path.display()
                ))
            })?;
        let sql =
            std::fs::read_to_string(&path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
        let checksum = checksum(&sql);
        out.push(Migration {
            version,
            name: name.to_owned(),
            path,
            sql,
            checksum,
        });
    }
    out.sort_by_key(|m| m.version);
    for w in out.windows(2) {
        if w[0].version == w[1].version {
            return Err(fail(format!(
                "{} and {} have the same number: renumber the newer one",
                w[0].path.display(),
                w[1].path.display()
            )));
        }
    }
    Ok(out)
}

pub fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What `migrate` did.
#[derive(Debug, Default)]
pub struct MigrateReport {
    pub already: usize,
    pub applied: Vec<String>,
}

/// Checks applied migrations against the files, then applies the pending
/// ones in order, each in its own transaction with its record.
pub async fn migrate(w: &mut Warehouse, root: &Path) -> Result<MigrateReport, MigrateError> {
    let dir = dialect_dir(root, w.dialect());
    let files = read_dir(&dir)?;
    let applied = w.applied_migrations().await?;
    let mut report = MigrateReport::default();
    for (version, name, sum) in &applied {
        match files.iter().find(|m| m.version == *version) {
            None => {
                return Err(MigrateError::Missing {
                    version: *version,
                    name: name.clone(),
                    dir: dir.display().to_string(),
                })
            }
            Some(m) if m.checksum != *sum => {
                return Err(MigrateError::Changed {
                    file: m.path.display().to_string(),
                    version: *version,
                    applied: sum.clone(),
                    now: m.checksum.clone(),
                })
            }
            Some(_) => report.already += 1,
        }
    }
    let last = applied.iter().map(|(v, _, _)| *v).max().unwrap_or(i64::MIN);
    let pending: Vec<&Migration> = files
        .iter()
        .filter(|m| !applied.iter().any(|(v, _, _)| *v == m.version))
        .collect();
    if let Some(m) = pending.iter().find(|m| m.version < last) {
        return Err(MigrateError::Files(format!(
            "{}: numbered before migration {last}, which is already applied: renumber it after {last}",
            m.path.display()
        )));
    }
    for m in pending {
        w.apply_migration(m.version, &m.name, &m.checksum, &m.sql)
            .await?;
        tracing::info!(migration = %m.name, "applied");
        report.applied.push(m.name.clone());
    }
    Ok(report)
}
