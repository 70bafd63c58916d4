//! Part files: the compressed outputs of one source, one stream per event
//! type (plus one for quarantine), rolled over at a compressed size.
//!
//! A [`PartWriter`] writes to a temporary file; [`PartWriter::finish`] closes
//! the compressed stream and returns a [`FinishedPart`] for the committer,
//! which makes it durable under its final key. A writer dropped unfinished
//! (the source failed) removes its temporary file.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

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

/// Uncompressed bytes gathered before a block goes to the compressor.
const BLOCK: usize = 64 * 1024;
/// Blocks queued to the compressor thread at most (with one block being
/// filled per open part, this bounds the blocks in flight).
const QUEUE: usize = 8;

/// The compressor thread's view of one part.
struct PartState {
    progress: Mutex<Progress>,
    changed: Condvar,
}

#[derive(Default)]
struct Progress {
    /// Blocks compressed so far.
    done: u64,
    /// Compressed bytes written after those blocks.
    compressed: u64,
    error: Option<io::Error>,
    /// The compressor thread is gone (it panicked): nothing more will be done.
    stopped: bool,
}

enum Job {
    Open {
        id: u64,
        encoder: Box<Encoder>,
        state: Arc<PartState>,
    },
    Data {
        id: u64,
        block: Vec<u8>,
    },
    Finish {
        id: u64,
        reply: std::sync::mpsc::Sender<io::Result<u64>>,
    },
    Abort {
        id: u64,
    },
}

/// Compresses the parts of one source on a thread of its own, so that
/// classifying and converting lines (the routing thread) and compressing
/// them overlap on two cores instead of taking turns on one. Each part
/// keeps at most one block in flight and learns its compressed size when it
/// hands over the next, so a part rolls over at the same line on every run
/// (deterministic keys) whatever the threads' timing.
pub struct Compressor {
    jobs: SyncSender<Job>,
    next: u64,
    /// Cleared when the thread ends (after a panic), so that a writer whose
    /// jobs it never received does not wait for it.
    alive: Arc<AtomicBool>,
}

impl Compressor {
    pub fn start() -> io::Result<Self> {
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(QUEUE);
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        std::thread::Builder::new()
            .name("compress".into())
            .spawn(move || compress(rx, flag))?;
        Ok(Self {
            jobs,
            next: 0,
            alive,
        })
    }
}

/// The parts the compressor thread holds; if the thread ends (a panic),
/// their writers are told instead of waiting forever (and `alive` tells
/// the writers of parts it had not heard of yet).
struct Held(
    HashMap<u64, (Box<Encoder>, Arc<PartState>)>,
    Arc<AtomicBool>,
);

impl Drop for Held {
    fn drop(&mut self) {
        self.1.store(false, Ordering::SeqCst);
        for (_, state) in self.0.values() {
            lock(state).stopped = true;
            state.changed.notify_all();
        }
    }
}

fn lock(state: &PartState) -> std::sync::MutexGuard<'_, Progress> {
    state.progress.lock().unwrap_or_else(|e| e.into_inner())
}

fn compress(jobs: Receiver<Job>, alive: Arc<AtomicBool>) {
    let mut held = Held(HashMap::new(), alive);
    for job in jobs {
        match job {
            Job::Open { id, encoder, state } => {
                held.0.insert(id, (encoder, state));
            }
            Job::Data { id, block } => {
                if let Some((encoder, state)) = held.0.get_mut(&id) {
                    let failed = lock(state).error.is_some();
                    let written = if failed {
                        Ok(())
                    } else {
                        encoder.write_all(&block)
                    };
                    let mut p = lock(state);
                    p.done += 1;
                    p.compressed = encoder.counted();
                    if let Err(e) = written {
                        p.error.get_or_insert(e);
                    }
                    drop(p);
                    state.changed.notify_all();
                }
            }
            Job::Finish { id, reply } => {
                let result = match held.0.remove(&id) {
                    None => Err(io::Error::other("a part finished twice")),
                    Some((encoder, state)) => match lock(&state).error.take() {
                        Some(e) => Err(e),
                        None => encoder.finish().and_then(|mut file| {
                            file.inner.flush()?;
                            Ok(file.written)
                        }),
                    },
                };
                let _ = reply.send(result);
            }
            Job::Abort { id } => {
                held.0.remove(&id);
            }
        }
    }
}

fn stopped() -> io::Error {
    io::Error::other("the compressor thread stopped")
}

/// Writes one part file: lines are gathered into blocks here and
/// compressed by the source's [`Compressor`].
pub struct PartWriter {
    id: u64,
    jobs: SyncSender<Job>,
    alive: Arc<AtomicBool>,
    state: Arc<PartState>,
    /// Lines gathered for the next block.
    block: Vec<u8>,
    /// Blocks handed to the compressor.
    sent: u64,
    /// Compressed bytes after all blocks but the last one sent.
    compressed: u64,
    finished: bool,
    temp: PathBuf,
    output: PartOutput,
}

impl PartWriter {
    pub fn create(
        compressor: &mut Compressor,
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
        let id = compressor.next;
        compressor.next += 1;
        let state = Arc::new(PartState {
            progress: Mutex::new(Progress::default()),
            changed: Condvar::new(),
        });
        let writer = Self {
            id,
            jobs: compressor.jobs.clone(),
            alive: compressor.alive.clone(),
            state: state.clone(),
            block: Vec::with_capacity(BLOCK + 1024),
            sent: 0,
            compressed: 0,
            finished: false,
            temp,
            output: PartOutput {
                key,
                ..Default::default()
            },
        };
        writer
            .jobs
            .send(Job::Open {
                id,
                encoder: Box::new(encoder),
                state,
            })
            .map_err(|_| stopped())?;
        Ok(writer)
    }

    /// Hands the gathered block over once the previous one is compressed
    /// (so `compressed_len` is the same on every run).
    fn send_block(&mut self) -> io::Result<()> {
        {
            let mut p = lock(&self.state);
            while p.done < self.sent && !p.stopped && p.error.is_none() {
                if !self.alive.load(Ordering::SeqCst) {
                    break;
                }
                p = self
                    .state
                    .changed
                    .wait_timeout(p, std::time::Duration::from_millis(100))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            // The error stays recorded: the compressor skips this part's
            // later blocks and its finish reports it too.
            if let Some(e) = &p.error {
                return Err(io::Error::new(e.kind(), e.to_string()));
            }
            if p.done < self.sent {
                return Err(stopped());
            }
            self.compressed = p.compressed;
        }
        let block = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK + 1024));
        self.jobs
            .send(Job::Data { id: self.id, block })
            .map_err(|_| stopped())?;
        self.sent += 1;
        Ok(())
    }

    /// Appends one line (without terminator) and a `\n`.
    pub fn write_line(&mut self, line: &[u8], line_no: u64) -> io::Result<()> {
        self.block.extend_from_slice(line);
        self.block.push(b'\n');
        self.count_line(line.len() as u64 + 1, line_no);
        if self.block.len() >= BLOCK {
            self.send_block()?;
        }
        Ok(())
    }

    /// Direct access for records written in pieces (a streamed long line);
    /// call [`PartWriter::count_line`] once the record is complete.
    pub fn writer(&mut self) -> &mut impl Write {
        self
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

    /// Compressed bytes written so far (lags the input by up to two blocks).
    pub fn compressed_len(&self) -> u64 {
        self.compressed
    }

    pub fn finish(mut self) -> io::Result<FinishedPart> {
        if !self.block.is_empty() {
            let block = std::mem::take(&mut self.block);
            self.jobs
                .send(Job::Data { id: self.id, block })
                .map_err(|_| stopped())?;
        }
        let (reply, result) = std::sync::mpsc::channel();
        self.jobs
            .send(Job::Finish { id: self.id, reply })
            .map_err(|_| stopped())?;
        self.finished = true;
        let written = result.recv().map_err(|_| stopped())??;
        self.output.bytes = written;
        Ok(FinishedPart {
            temp: std::mem::take(&mut self.temp),
            output: std::mem::take(&mut self.output),
        })
        // (`self` is dropped here with its temporary path taken: its Drop
        // removes nothing. After a failure above, Drop removes the file.)
    }
}

impl Write for PartWriter {
    /// A full block is handed over before `buf` is taken, so an error
    /// consumes nothing of `buf` (as `Write` requires).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.block.len() >= BLOCK {
            self.send_block()?;
        }
        self.block.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.jobs.send(Job::Abort { id: self.id });
        }
        if !self.temp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Writes `lines` lines to one part among `others` interleaved parts and
    /// returns the compressed length seen after each line, and the part.
    fn write(dir: &std::path::Path, lines: u64, others: usize) -> (Vec<u64>, FinishedPart) {
        let mut compressor = Compressor::start().unwrap();
        let mut part = |name: &str| {
            PartWriter::create(
                &mut compressor,
                dir.join(name),
                name.into(),
                OutputCompression::Gzip,
                1,
            )
            .unwrap()
        };
        let mut main = part("main");
        let mut rest: Vec<PartWriter> = (0..others).map(|i| part(&format!("o{i}"))).collect();
        let mut seen = Vec::new();
        for i in 0..lines {
            let line = format!(
                "{{\"i\":{i},\"pad\":\"{}\"}}",
                "x".repeat((i % 97) as usize)
            );
            main.write_line(line.as_bytes(), i + 1).unwrap();
            for o in &mut rest {
                o.write_line(line.as_bytes(), i + 1).unwrap();
            }
            seen.push(main.compressed_len());
        }
        for o in rest {
            o.finish().unwrap();
        }
        (seen, main.finish().unwrap())
    }

    /// The compressed length a part reports after each line (what rolls it
    /// over) is the same on every run, whatever the compressor thread's
    /// timing, and the part holds every line in order.
    #[test]
    fn compressed_length_is_deterministic_and_the_part_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let (first, part) = write(&a, 20_000, 0);
        let (second, other) = write(&b, 20_000, 3);
        assert_eq!(first, second);
        assert!(first.last().copied().unwrap() > 0, "blocks were compressed");
        assert_eq!(part.output.lines, 20_000);
        assert_eq!(part.output.bytes, other.output.bytes);
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&part.temp).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text.lines().count(), 20_000);
        assert!(text
            .lines()
            .enumerate()
            .all(|(i, l)| l.starts_with(&format!("{{\"i\":{i},"))));
        assert_eq!(text.len() as u64, part.output.uncompressed_bytes);
    }

    /// A writer dropped unfinished removes its temporary file.
    #[test]
    fn an_unfinished_part_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut compressor = Compressor::start().unwrap();
        let temp = dir.path().join("t");
        let mut w = PartWriter::create(
            &mut compressor,
            temp.clone(),
            "k".into(),
            OutputCompression::Gzip,
            1,
        )
        .unwrap();
        for i in 0..10_000u64 {
            w.write_line(b"some line of text that is long enough", i + 1)
                .unwrap();
        }
        drop(w);
        assert!(!temp.exists());
    }
}
