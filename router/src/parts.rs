//! Part files: the compressed outputs of one source, one stream per event
//! type (plus one for quarantine), rolled over at a compressed size.
//!
//! A [`PartWriter`] writes to a temporary file; [`PartWriter::finish`] closes
//! the compressed stream and returns a [`FinishedPart`] for the committer,
//! which makes it durable under its final key. A writer dropped unfinished
//! (the source failed) removes its temporary file.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use logrouter::config::OutputCompression;
use logrouter::manifest::PartOutput;

/// A closed part waiting to be committed under `output.key`. Dropping it
/// removes its temporary file if the commit did not move it away (a failed
/// or abandoned upload), so failed attempts do not fill the spool.
#[derive(Debug)]
pub struct FinishedPart {
    pub temp: PathBuf,
    pub output: PartOutput,
}

impl Drop for FinishedPart {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// Counts the compressed bytes that reach the file.
struct CountingFile {
    inner: BufWriter<File>,
    written: u64,
}

impl Write for CountingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Encoder {
    Gzip(flate2::write::GzEncoder<CountingFile>),
    Zstd(zstd::stream::write::Encoder<'static, CountingFile>),
}

impl Encoder {
    fn counted(&self) -> u64 {
        match self {
            Encoder::Gzip(e) => e.get_ref().written,
            Encoder::Zstd(e) => e.get_ref().written,
        }
    }

    fn finish(self) -> io::Result<CountingFile> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl Write for Encoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// Writes one part file.
pub struct PartWriter {
    /// Lines are gathered here so the compressor sees large blocks.
    encoder: Option<BufWriter<Encoder>>,
    temp: PathBuf,
    output: PartOutput,
}

impl PartWriter {
    pub fn create(
        temp: PathBuf,
        key: String,
        compression: OutputCompression,
        level: i32,
    ) -> io::Result<Self> {
        if let Some(dir) = temp.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // create_new: never share a temporary file with another process.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        let file = CountingFile {
            inner: BufWriter::with_capacity(64 * 1024, file),
            written: 0,
        };
        let encoder = match compression {
            OutputCompression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::new(level as u32),
            )),
            OutputCompression::Zstd => {
                Encoder::Zstd(zstd::stream::write::Encoder::new(file, level)?)
            }
        };
        Ok(Self {
            encoder: Some(BufWriter::with_capacity(64 * 1024, encoder)),
            temp,
            output: PartOutput {
                key,
                ..Default::default()
            },
        })
    }

    fn encoder(&mut self) -> &mut BufWriter<Encoder> {
        self.encoder.as_mut().expect("part already finished")
    }

    /// Appends one line (without terminator) and a `\n`.
    pub fn write_line(&mut self, line: &[u8], line_no: u64) -> io::Result<()> {
        let enc = self.encoder();
        enc.write_all(line)?;
        enc.write_all(b"\n")?;
        self.count_line(line.len() as u64 + 1, line_no);
        Ok(())
    }

    /// Direct access for records written in pieces (a streamed long line);
    /// call [`PartWriter::count_line`] once the record is complete.
    pub fn writer(&mut self) -> &mut impl Write {
        self.encoder()
    }

    pub fn count_line(&mut self, bytes: u64, line_no: u64) {
        let o = &mut self.output;
        if o.lines == 0 {
            o.first_line = line_no;
        }
        o.lines += 1;
        o.last_line = line_no;
        o.uncompressed_bytes += bytes;
    }

    /// Compressed bytes written so far (lags the input by the buffers).
    pub fn compressed_len(&self) -> u64 {
        self.encoder.as_ref().map_or(0, |e| e.get_ref().counted())
    }

    pub fn finish(mut self) -> io::Result<FinishedPart> {
        let encoder = self.encoder.take().expect("part finished twice");
        let encoder = encoder.into_inner().map_err(|e| e.into_error())?;
        let mut file = encoder.finish()?;
        file.inner.flush()?;
        self.output.bytes = file.written;
        Ok(FinishedPart {
            temp: std::mem::take(&mut self.temp),
            output: std::mem::take(&mut self.output),
        })
        // (`self` is dropped here with no encoder: its Drop removes nothing.)
    }
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        if self.encoder.is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}
