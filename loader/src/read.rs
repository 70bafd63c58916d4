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
    f: impl FnMut(u64, RawLine<'_>) -> ControlFlow<()>,
) -> std::io::Result<u64> {
    let reader = decoder(name, raw)?;
    split_lines(
        BufReader::with_capacity(256 * 1024, reader),
        MAX_LINE_BYTES,
        f,
    )
}

/// The lines of `reader`, for [`for_each_line`]; lines over `max` bytes
/// are [`RawLine::TooLong`].
fn split_lines(
    mut reader: impl BufRead,
    max: u64,
    mut f: impl FnMut(u64, RawLine<'_>) -> ControlFlow<()>,
) -> std::io::Result<u64> {
    // A line split across two reads of the buffer is gathered here (up to
    // one byte past the limit); one inside the buffer is handed over where
    // it is, without a copy.
    let mut buf = Vec::with_capacity(4096);
    // The length of the line being gathered, which may pass `buf`'s.
    let mut len = 0u64;
    let mut line_no = 0u64;
    fn gathered(buf: &[u8], len: u64, max: u64) -> RawLine<'_> {
        if len > max {
            RawLine::TooLong(&buf[..buf.len().min(4096)])
        } else {
            RawLine::Line(buf)
        }
    }
    loop {
        let avail = reader.fill_buf()?;
        if avail.is_empty() {
            // The end; the last line may have no terminator.
            if len > 0 {
                line_no += 1;
                let _ = f(line_no, gathered(&buf, len, max));
            }
            return Ok(line_no);
        }
        let (take, end) = match memchr::memchr(b'\n', avail) {
            Some(i) => (i, Some(i + 1)),
            None => (avail.len(), None),
        };
        if let (Some(end), 0) = (end, len) {
            line_no += 1;
            let flow = f(line_no, gathered(&avail[..take], take as u64, max));
            reader.consume(end);
            if flow.is_break() {
                return Ok(line_no);
            }
            continue;
        }
        let room = (max + 1).saturating_sub(buf.len() as u64) as usize;
        buf.extend_from_slice(&avail[..take.min(room)]);
        len += take as u64;
        reader.consume(end.unwrap_or(take));
        if end.is_some() {
            line_no += 1;
            let flow = f(line_no, gathered(&buf, len, max));
            buf.clear();
            len = 0;
            if flow.is_break() {
                return Ok(line_no);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(line number, text)` of every line; a line too long is given as
    /// `TOO LONG` after checking that its head is the start of the line.
    fn lines(data: &[u8], capacity: usize, max: u64, stop_after: u64) -> Vec<(u64, String)> {
        let text: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        let mut got = Vec::new();
        let read = split_lines(BufReader::with_capacity(capacity, data), max, |n, line| {
            got.push(match line {
                RawLine::Line(b) => (n, String::from_utf8_lossy(b).into_owned()),
                RawLine::TooLong(head) => {
                    let whole = text[n as usize - 1];
                    assert!(whole.len() as u64 > max);
                    assert!(whole.starts_with(head) && !head.is_empty(), "{head:?}");
                    (n, "TOO LONG".to_string())
                }
            });
            if n == stop_after {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert_eq!(read, got.len() as u64);
        got
    }

    /// Lines inside one buffer and across any number of them, an empty
    /// line, a last line without `\n`, lines at and past the limit: the same
    /// whatever the buffer's size.
    #[test]
    fn lines_are_split_the_same_across_buffer_boundaries() {
        let data = b"first\n\nexactly10!\neleven byte\na much longer line than that\nlast";
        let want: Vec<(u64, String)> = ["first", "", "exactly10!", "TOO LONG", "TOO LONG", "last"]
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u64 + 1, s.to_string()))
            .collect();
        for capacity in [1, 2, 3, 7, 10, 11, 64, 4096] {
            assert_eq!(
                lines(data, capacity, 10, u64::MAX),
                want,
                "buffer of {capacity}"
            );
        }
        assert_eq!(
            lines(b"a\nb\n", 4, 10, u64::MAX).len(),
            2,
            "no empty last line"
        );
        assert_eq!(lines(b"", 4, 10, u64::MAX).len(), 0);
        assert_eq!(lines(b"a\nb\nc\n", 3, 10, 2).len(), 2, "stops when told");
    }
}
