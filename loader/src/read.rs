//! Reading a routed file: decompress, split into lines, never hold more than
//! one bounded line. Shared by loading (`warehouse::for_each_row`) and
//! schema inference, so both see the same lines with the same numbers.

use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;

use crate::source::decoder;

/// Lines longer than this are not held in memory: they are rejected as
/// `line_too_long` (the router quarantines lines over
/// `route.max_line_bytes`, 4 MiB by default, so it never writes one).
pub const MAX_LINE_BYTES: u64 = 64 * 1024 * 1024;

/// One line as read, without its `\n`.
pub enum RawLine<'a> {
    Line(&'a [u8]),
    /// Longer than [`MAX_LINE_BYTES`]: its first bytes only (the rest was
    /// skipped).
    TooLong(&'a [u8]),
}

/// Calls `f` with each line of the routed file `name` (its stored bytes in
/// `raw`, decompressed by its extension) and its 1-based number, until the
/// end or until `f` breaks; returns the number of lines read. Reading blocks:
/// call it on a blocking thread.
pub fn for_each_line(
    name: &str,
    raw: Box<dyn Read + Send>,
    mut f: impl FnMut(u64, RawLine<'_>) -> ControlFlow<()>,
) -> std::io::Result<u64> {
    let reader = decoder(name, raw)?;
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let mut buf = Vec::with_capacity(4096);
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(line_no);
        }
        line_no += 1;
        let line = if buf.last() == Some(&b'\n') {
            buf.pop();
            RawLine::Line(&buf)
        } else if buf.len() as u64 > MAX_LINE_BYTES {
            // Skip the rest of the line without holding it.
            reader.skip_until(b'\n')?;
            RawLine::TooLong(&buf[..4096])
        } else {
            // The last line, without a terminator.
            RawLine::Line(&buf)
        };
        if f(line_no, line).is_break() {
            return Ok(line_no);
        }
    }
}
