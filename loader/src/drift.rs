//! Schema drift: fields present in the data that the table's schema does not
//! have.
//!
//! Producers add fields every week. The loader cannot store a field its
//! table has no column for, but it must not drop it silently either: each
//! load counts, per field path, the lines that carry a non-null value the
//! schema does not describe, reports them in its summary, logs and metrics,
//! and `loader schema infer --update` proposes them as new optional
//! properties. Fields inside a JSON column (arrays, objects without
//! `properties`) are stored whole, so they are never drift.

use std::collections::BTreeMap;

/// Distinct unknown paths counted per file; further ones are counted
/// together under [`OTHER`], so hostile data cannot grow this map.
pub const MAX_DRIFT_PATHS: usize = 100;
/// Where paths beyond [`MAX_DRIFT_PATHS`] are counted.
pub const OTHER: &str = "(other fields)";

/// The longest path kept (longer ones are cut, with `…`), so a hostile key
/// of megabytes is not held.
pub const MAX_PATH_CHARS: usize = 256;

/// `path`, cut to [`MAX_PATH_CHARS`].
pub fn bounded_path(path: &str) -> String {
    if path.len() <= MAX_PATH_CHARS {
        return path.to_owned();
    }
    let mut out: String = path.chars().take(MAX_PATH_CHARS).collect();
    out.push('…');
    out
}

/// Lines per unknown field path (`/user/locale`), for one file or summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    pub fields: BTreeMap<String, u64>,
}

impl Drift {
    /// Counts one line's field at `path` (`/user/locale`).
    pub fn count(&mut self, path: &str) {
        if let Some(n) = self.fields.get_mut(path) {
            *n += 1;
        } else if self.named() < MAX_DRIFT_PATHS {
            self.fields.insert(path.to_owned(), 1);
        } else {
            *self.fields.entry(OTHER.to_owned()).or_default() += 1;
        }
    }

    /// Adds another file's counts (as bounded as one file's).
    pub fn add(&mut self, other: &Drift) {
        for (path, n) in &other.fields {
            if let Some(m) = self.fields.get_mut(path) {
                *m += n;
            } else if path == OTHER || self.named() < MAX_DRIFT_PATHS {
                self.fields.insert(path.clone(), *n);
            } else {
                *self.fields.entry(OTHER.to_owned()).or_default() += n;
            }
        }
    }

    /// Paths counted by name (not under [`OTHER`]).
    fn named(&self) -> usize {
        self.fields.len() - usize::from(self.fields.contains_key(OTHER))
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// `/a (3 lines), /b/c (1 line)`.
    pub fn describe(&self) -> String {
        self.fields
            .iter()
            .map(|(p, n)| format!("{p} ({n} line{})", if *n == 1 { "" } else { "s" }))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_counted_and_bounded() {
        let mut d = Drift::default();
        d.count("/a");
        d.count("/a");
        d.count("/b/c");
        assert_eq!(d.describe(), "/a (2 lines), /b/c (1 line)");
        for i in 0..(MAX_DRIFT_PATHS + 50) {
            d.count(&format!("/f{i}"));
        }
        assert_eq!(d.fields.len(), MAX_DRIFT_PATHS + 1);
        assert_eq!(d.fields[OTHER], 52);
        let mut e = Drift::default();
        e.add(&d);
        assert_eq!(e, d);
    }
}
