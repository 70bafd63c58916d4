//! `loader verify`: do the warehouse's rows match the router's manifests?
//!
//! For every routed file the sources name, the numbers must agree: the
//! lines its manifest says it holds = the rows plus the rejects the ledger
//! says were loaded from it; and the ledger's rows and rejects = the rows in
//! its table that name it as their `_routed_file` and its rows in
//! `_logrouter_rejects`.
//! The last reading catches what the first two cannot: rows deleted or added
//! behind the loader's back. This is the last step of the recovery recipe
//! (re-route, reload, verify).

use std::collections::{BTreeMap, HashMap};

use crate::reject::REJECTS_TABLE;
use crate::schema::qualified;
use crate::source::Discovery;
use crate::warehouse::{LoadError, Warehouse, LEDGER_TABLE};

/// One file whose numbers disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub file: String,
    pub problem: String,
}

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub files: u64,
    /// Lines in the manifests of the verified files.
    pub lines: u64,
    /// Rows in the tables, and rejects, of those files.
    pub rows: u64,
    pub rejects: u64,
    pub mismatches: Vec<Mismatch>,
    /// Lines per table in the manifests of the verified files.
    pub by_table: BTreeMap<String, u64>,
}

fn number(s: &str) -> i64 {
    s.parse().unwrap_or(-1)
}

/// `versions`: each file's current version (S3 ETag or local SHA-256), to
/// tell rows of an earlier route from rows of the current one.
pub async fn verify(
    w: &mut Warehouse,
    db_schema: &str,
    discovery: &Discovery,
    versions: &HashMap<String, String>,
) -> Result<VerifyReport, LoadError> {
    let files = &discovery.files;
    let dialect = w.dialect();
    let ledger: HashMap<String, (String, i64, i64)> = w
        .query_text(&format!(
            "SELECT file, version, rows, rejects FROM {}",
            qualified(LEDGER_TABLE, dialect, db_schema)
        ))
        .await?
        .into_iter()
        .map(|r| (r[0].clone(), (r[1].clone(), number(&r[2]), number(&r[3]))))
        .collect();
    let rejected: HashMap<String, i64> = w
        .query_text(&format!(
            "SELECT file, count(*) FROM {} GROUP BY file",
            qualified(REJECTS_TABLE, dialect, db_schema)
        ))
        .await?
        .into_iter()
        .map(|r| (r[0].clone(), number(&r[1])))
        .collect();
    let mut in_tables: HashMap<String, i64> = HashMap::new();
    let mut tables: Vec<&str> = files.iter().map(|f| f.table.as_str()).collect();
    tables.sort_unstable();
    tables.dedup();
    for t in tables {
        // A table that does not exist yet has no rows: the files say so below.
        let rows = match w
            .query_text(&format!(
                "SELECT _routed_file, count(*) FROM {} GROUP BY _routed_file",
                qualified(t, dialect, db_schema)
            ))
            .await
        {
            Ok(rows) => rows,
            Err(_) => continue,
        };
        for r in rows {
            in_tables.insert(r[0].clone(), number(&r[1]));
        }
    }
    let mut report = VerifyReport::default();
    for f in files {
        report.files += 1;
        report.lines += f.lines;
        *report.by_table.entry(f.table.clone()).or_default() += f.lines;
        let want = f.lines as i64;
        let rows = in_tables.get(&f.uri).copied().unwrap_or(0);
        let rejects = rejected.get(&f.uri).copied().unwrap_or(0);
        let problem = match ledger.get(&f.uri) {
            None if rows == 0 => Some(format!("not loaded ({want} lines in its manifest): run `loader load`")),
            None => Some(format!("{rows} rows in {} but no ledger entry", f.table)),
            Some((v, _, _)) if versions.get(&f.uri).is_some_and(|now| now != v) => Some(
                "loaded from an earlier version of the file (its source was re-routed since): run `loader load` to replace its rows".to_owned(),
            ),
            Some((_, l, r)) if l + r != want => Some(format!(
                "the ledger says {l} rows + {r} rejects, its manifest {want} lines: run `loader load` to replace them"
            )),
            Some((_, l, _)) if rows != *l => Some(format!(
                "{rows} rows in {} but the ledger says {l} ({want} lines in its manifest): rows changed outside the loader",
                f.table
            )),
            Some((_, _, r)) if rejects != *r => Some(format!(
                "{rejects} rejects in {REJECTS_TABLE} but the ledger says {r}: rejects changed outside the loader"
            )),
            _ => None,
        };
        report.rows += rows.max(0) as u64;
        report.rejects += rejects.max(0) as u64;
        if let Some(problem) = problem {
            report.mismatches.push(Mismatch {
                file: f.uri.clone(),
                problem,
            });
        }
    }
    for (file, table) in w.orphans_of(db_schema, &discovery.complete).await? {
        report.mismatches.push(Mismatch {
            file,
            problem: format!(
                "rows in {table} from a file its manifest no longer names (an earlier route): run `loader load` to remove them"
            ),
        });
    }
    Ok(report)
}
