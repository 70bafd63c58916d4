//! A differential oracle for `logrouter::json::check_json` and
//! `logrouter::pointer::JsonPointer::lookup` against serde_json's `Value`:
//! `check_json` accepts exactly what `serde_json::from_slice::<Value>`
//! accepts (json.rs's contract: the same messages, `TooDeep` exactly for
//! serde_json's recursion limit, `MAX_JSON_DEPTH`), the lookup validates
//! the line the same way, and on a valid line it finds what
//! `Value::pointer` finds.
//!
//! Input: `POINTER\nJSON`. Without a `\n` the whole input is the JSON text
//! and the pointer is `/event_type`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logrouter::json::{check_json, JsonProblem, MAX_JSON_DEPTH};
use logrouter::pointer::{JsonPointer, Lookup};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let (pointer_text, json) = match memchr::memchr(b'\n', data) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"/event_type"[..], data),
    };
    let (Ok(pointer_text), Ok(text)) =
        (std::str::from_utf8(pointer_text), std::str::from_utf8(json))
    else {
        return;
    };

    let ours = check_json(text);
    let theirs = serde_json::from_slice::<Value>(json);
    match (&ours, &theirs) {
        (Ok(()), Ok(_)) => {}
        (Err(p), Err(e)) => {
            assert_eq!(p.message(), e.to_string(), "messages differ on {text:?}");
            let deep = e.to_string().starts_with("recursion limit exceeded");
            assert_eq!(
                matches!(p, JsonProblem::TooDeep(_)),
                deep,
                "TooDeep is serde_json's recursion limit ({MAX_JSON_DEPTH}): {p:?}"
            );
        }
        _ => panic!("check_json {ours:?} but Value {theirs:?} on {text:?}"),
    }

    let Ok(pointer) = JsonPointer::parse(pointer_text) else {
        assert!(!pointer_text.starts_with('/') || pointer_text.contains('~'));
        return;
    };
    assert_eq!(pointer.as_str(), pointer_text);
    assert_eq!(pointer.segments().len(), pointer_text.matches('/').count());
    let lookup = pointer.lookup(text);
    match (&lookup, &ours) {
        (Lookup::InvalidJson(m), Err(JsonProblem::Invalid(n)))
        | (Lookup::TooDeep(m), Err(JsonProblem::TooDeep(n))) => {
            assert_eq!(m, n, "lookup and check_json differ on {text:?}")
        }
        (Lookup::InvalidJson(_) | Lookup::TooDeep(_), _) | (_, Err(_)) => {
            panic!("lookup {lookup:?} but check_json {ours:?} on {text:?}")
        }
        _ => {}
    }
    let Ok(value) = &theirs else { return };
    let at = value.pointer(pointer_text);
    let agrees = match &lookup {
        Lookup::Found(s) => at == Some(&Value::String(s.to_string())),
        Lookup::Missing => matches!(at, None | Some(Value::Null)),
        Lookup::NotAString(_) => at.is_some_and(|v| !v.is_string() && !v.is_null()),
        // Value keeps the last of duplicate members; the router refuses.
        Lookup::Duplicate => true,
        Lookup::NotAnObject(_) => !value.is_object(),
        Lookup::InvalidJson(_) | Lookup::TooDeep(_) => false,
    };
    assert!(
        agrees,
        "lookup {lookup:?} but Value::pointer({pointer_text:?}) = {at:?} on {text:?}"
    );
});
