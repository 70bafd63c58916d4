//! The one-line summary of a routed source, for people: `router route`
//! prints it (`cli`), `router run` and `router lambda` log it for each
//! object (`service`). Its own module so that neither of those two depends
//! on the other.

use std::collections::BTreeMap;

use logrouter::manifest::Manifest;

use crate::lines::FirstError;

/// One line per source for people: counts, types, reasons, the manifest.
pub fn summary_line(
    m: &Manifest,
    manifest_key: &str,
    first_errors: &BTreeMap<String, FirstError>,
) -> String {
    let l = m.lines;
    let mut s = format!(
        "{}: {} lines: {} routed to {} types, {} quarantined, {} blank",
        m.source.object.uri,
        l.read,
        l.routed,
        m.types.len(),
        l.quarantined,
        l.blank
    );
    if l.filtered > 0 {
        s.push_str(&format!(
            ", {} filtered out by the replay filter",
            l.filtered
        ));
    }
    if !m.quarantine.by_reason.is_empty() {
        let reasons: Vec<String> = m
            .quarantine
            .by_reason
            .iter()
            .map(|(r, n)| match first_errors.get(r) {
                Some(f) => format!("{r} {n} (first at line {}: {})", f.line, f.error),
                None => format!("{r} {n}"),
            })
            .collect();
        s.push_str(&format!(" [{}]", reasons.join("; ")));
    }
    if let Some(d) = &m.damage {
        s.push_str(&format!(
            "; DAMAGED at byte {} of the object (line {}): {}; lines before it were routed",
            d.raw_offset, d.line, d.error
        ));
    }
    s.push_str(&format!("; manifest {manifest_key}"));
    s
}
