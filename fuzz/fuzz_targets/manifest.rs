//! `logrouter::manifest::Manifest` as the loader reads it (serde_json
//! from the stored bytes, then `check_counts`): never a panic, and a
//! manifest whose counts pass round-trips through its own serialisation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logrouter::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = serde_json::from_slice::<Manifest>(data) else {
        return;
    };
    let checked = m.check_counts();
    let _ = m.output_keys().count();
    if let Some(d) = &m.damage {
        let _ = d.describe();
    }
    if let Some(f) = &m.filter {
        assert!(f.tag().starts_with("replay-"));
    }
    if checked.is_ok() {
        let l = m.lines;
        // What check_counts promises, in arithmetic that cannot overflow.
        assert_eq!(
            l.read as u128,
            l.routed as u128 + l.quarantined as u128 + l.blank as u128 + l.filtered as u128,
            "check_counts passed {l:?}"
        );
        let by_type: u128 = m.types.values().map(|t| t.lines as u128).sum();
        assert_eq!(by_type, l.routed as u128, "check_counts passed {m:?}");
        let text = serde_json::to_vec(&m).expect("a manifest serialises");
        let back: Manifest = serde_json::from_slice(&text).expect("a written manifest reads back");
        assert_eq!(back, m);
    }
});
