//! Compression detected from the bytes, never from the name.

use std::io::{self, BufRead, BufReader, Cursor, Read};

/// How a source is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// One or more concatenated gzip members.
    Gzip,
    /// One or more concatenated zstd frames.
    Zstd,
    Plain,
}

impl Compression {
    /// Recognises gzip and zstd magic numbers; refuses formats we could
    /// mistake for text (bzip2, xz, zip) with a message naming them.
    pub fn detect(prefix: &[u8]) -> Result<Self, String> {
        Ok(match prefix {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            [b'B', b'Z', b'h', ..] => return Err(unsupported("bzip2")),
            [0xfd, b'7', b'z', b'X', ..] => return Err(unsupported("xz")),
            [b'P', b'K', 3, 4, ..] => return Err(unsupported("zip")),
            _ => Compression::Plain,
        })
    }
}

fn unsupported(name: &str) -> String {
    format!("the object is {name}-compressed; only gzip, zstd and plain JSON lines are supported (recompress it with gzip)")
}

const READ_BUF: usize = 256 * 1024;

/// Wraps a raw reader in the decoder its first bytes call for.
pub fn decoder(
    mut raw: Box<dyn Read + Send>,
) -> io::Result<(Compression, Box<dyn BufRead + Send>)> {
    let mut prefix = [0u8; 4];
    let mut n = 0;
    while n < prefix.len() {
        match raw.read(&mut prefix[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let compression = Compression::detect(&prefix[..n]).map_err(io::Error::other)?;
    let whole = Cursor::new(prefix[..n].to_vec()).chain(raw);
    let reader: Box<dyn BufRead + Send> = match compression {
        Compression::Gzip => Box::new(BufReader::with_capacity(
            READ_BUF,
            flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(64 * 1024, whole)),
        )),
        Compression::Zstd => Box::new(BufReader::with_capacity(
            READ_BUF,
            zstd::stream::read::Decoder::new(whole)?,
        )),
        Compression::Plain => Box::new(BufReader::with_capacity(READ_BUF, whole)),
    };
    Ok((compression, reader))
}

/// Decodes on a thread of its own, handing 256 KiB blocks to the line loop
/// through a channel of four, so decompression overlaps parsing and
/// recompression (two cores: about a third more throughput on one source).
/// Memory stays bounded: at most six blocks exist at once. The line loop
/// hands read blocks back for the next ones: a fresh zeroed block each time
/// was 8% of the decode thread's instructions (callgrind, 20 MB of
/// CloudFront logs), besides the page faults of memory taken and given back.
pub fn read_ahead(mut inner: Box<dyn BufRead + Send>) -> Box<dyn BufRead + Send> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(4);
    // A block comes back only after one was sent, and one is made only
    // when none came back: never more than six at once.
    let (back, returned) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
    std::thread::Builder::new()
        .name("decode".into())
        .spawn(move || loop {
            let mut block = returned.try_recv().unwrap_or_default();
            block.resize(READ_BUF, 0);
            let mut filled = 0;
            let result = loop {
                match inner.read(&mut block[filled..]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        filled += n;
                        if filled == block.len() {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            block.truncate(filled);
            let end = filled < READ_BUF;
            if filled > 0 && tx.send(Ok(block)).is_err() {
                return;
            }
            match result {
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
                Ok(()) if end => {
                    // An empty block marks the end; a channel closed without
                    // it means the thread died (a panic), never a clean end.
                    let _ = tx.send(Ok(Vec::new()));
                    return;
                }
                Ok(()) => {}
            }
        })
        .expect("spawn decode thread");
    Box::new(ReadAhead {
        rx,
        back,
        block: Vec::new(),
        pos: 0,
        ended: false,
    })
}

struct ReadAhead {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    /// Read blocks, back to the decode thread (dropped if it has two).
    back: std::sync::mpsc::SyncSender<Vec<u8>>,
    block: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ReadAhead {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.block.len() && !self.ended {
            match self.rx.recv() {
                Err(_) => return Err(io::Error::other("the decode thread stopped unexpectedly")),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(block)) => {
                    self.ended = block.is_empty();
                    let read = std::mem::replace(&mut self.block, block);
                    if read.capacity() > 0 {
                        let _ = self.back.try_send(read);
                    }
                    self.pos = 0;
                }
            }
        }
        Ok(&self.block[self.pos..])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.block.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(prefix: &[u8], expected: Result<Compression, &str>) {
        match (Compression::detect(prefix), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{prefix:?}"),
            (Err(msg), Err(name)) => assert!(msg.contains(name), "{msg}"),
            (got, want) => panic!("{prefix:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn detection_by_magic_bytes() {
        check(&[0x1f, 0x8b, 8, 0], Ok(Compression::Gzip));
        check(&[0x28, 0xb5, 0x2f, 0xfd], Ok(Compression::Zstd));
        check(b"{\"a\"", Ok(Compression::Plain));
        check(b"", Ok(Compression::Plain));
        check(&[0x1f], Ok(Compression::Plain));
        check(b"BZh9", Err("bzip2"));
        check(&[0xfd, b'7', b'z', b'X'], Err("xz"));
        check(&[b'P', b'K', 3, 4], Err("zip"));
    }

    #[test]
    fn decoder_reads_what_it_detected() {
        let gz = {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(b"hello\n").unwrap();
            e.finish().unwrap()
        };
        for (input, want) in [
            (gz, Compression::Gzip),
            (
                zstd::encode_all(&b"hello\n"[..], 1).unwrap(),
                Compression::Zstd,
            ),
            (b"hello\n".to_vec(), Compression::Plain),
        ] {
            let (c, mut r) = decoder(Box::new(std::io::Cursor::new(input))).unwrap();
            assert_eq!(c, want);
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            assert_eq!(s, "hello\n");
        }
    }

    #[test]
    fn read_ahead_passes_bytes_and_errors_through_in_order() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut r = read_ahead(Box::new(BufReader::new(std::io::Cursor::new(data.clone()))));
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);

        struct FailAfter(usize);
        impl Read for FailAfter {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("boom"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(b'x');
                self.0 -= n;
                Ok(n)
            }
        }
        let mut r = read_ahead(Box::new(BufReader::new(FailAfter(600_000))));
        let mut got = 0;
        let err = loop {
            match r.fill_buf() {
                Ok([]) => panic!("error swallowed"),
                Ok(b) => {
                    let n = b.len();
                    got += n;
                    r.consume(n);
                }
                Err(e) => break e,
            }
        };
        assert_eq!(got, 600_000, "every byte before the error arrives");
        assert_eq!(err.to_string(), "boom");
    }
}
