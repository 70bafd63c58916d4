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
}
