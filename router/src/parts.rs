//! Part files: the compressed outputs of one source, one stream per event
//! type (plus one for quarantine), rolled over at a compressed size.
//!
//! A [`PartWriter`] writes to a temporary file; [`PartWriter::finish`] closes
//! the compressed stream and returns a [`FinishedPart`] for the committer,
//! which makes it durable under its final key. A writer dropped unfinished
//! (the source failed) removes its temporary file. A part keeps a
//! compressor of its own, or (past `route.max_open_compressors`) only its
//! file, each block then a gzip member of its own ([`Keep`]).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
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
/// Blocks queued to the compressor threads at most, per thread (with one
/// block in flight per open part, this bounds the blocks in memory).
const QUEUE: usize = 8;

/// What a part keeps between its blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// A compressor over the whole part: one gzip member (zstd frame), the
    /// window carried from block to block. About 300 KB of state.
    Compressor,
    /// Only the file: each block is compressed as a member (frame) of its
    /// own, by a compressor made for it and dropped after. For the parts of
    /// a source past `route.max_open_compressors`, so that a source of a
    /// thousand types does not hold a thousand compressors.
    BlockMembers,
}

/// A part's output between blocks.
enum Stream {
    Compressing(Box<Encoder>),
    Between(CountingFile),
}

fn encoder(file: CountingFile, compression: OutputCompression, level: i32) -> io::Result<Encoder> {
    Ok(match compression {
        OutputCompression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::new(level as u32),
        )),
        OutputCompression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(file, level)?),
    })
}

impl Stream {
    /// Compresses `block` (as a member of its own for a part between
    /// members) and returns the compressed bytes written so far; an error
    /// leaves no stream.
    fn write(
        slot: &mut Option<Stream>,
        block: &[u8],
        compression: OutputCompression,
        level: i32,
    ) -> io::Result<u64> {
        match slot.take() {
            Some(Stream::Compressing(mut e)) => {
                e.write_all(block)?;
                let counted = e.counted();
                *slot = Some(Stream::Compressing(e));
                Ok(counted)
            }
            Some(Stream::Between(file)) => {
                let mut e = encoder(file, compression, level)?;
                e.write_all(block)?;
                let file = e.finish()?;
                let counted = file.written;
                *slot = Some(Stream::Between(file));
                Ok(counted)
            }
            None => Err(io::Error::other("a block after its part finished")),
        }
    }
}

/// One part as the compressor threads see it: its stream, and how far it
/// has got. Any thread may compress a part's next block, because a part
/// never has two in flight (see [`PartWriter::send_block`]).
struct PartState {
    stream: Mutex<Option<Stream>>,
    compression: OutputCompression,
    level: i32,
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
    /// A compressor thread panicked on this part's block: nothing more will
    /// be done for it.
    stopped: bool,
}

struct Job {
    part: Arc<PartState>,
    block: Vec<u8>,
}

/// Compresses the parts of one source on threads of their own, so that
/// classifying and converting lines (the routing thread) and compressing
/// them overlap on all cores instead of taking turns on one. Compression is
/// the largest share of the router's work (about half its CPU time on JSON
/// lines): with one compressor thread, the routing and decoding threads
/// waited behind it while the other core sat idle. So there are
/// [`threads`] of them, taking blocks from one queue,
/// whichever part they belong to (sharding parts between threads left one
/// thread with twice the other's work, since types differ in volume).
///
/// Each part keeps at most one block in flight and learns its compressed
/// size when it hands over the next, so its blocks are compressed in order
/// and a part rolls over at the same line on every run (deterministic keys)
/// whatever the threads' timing and number.
pub struct Compressor {
    jobs: SyncSender<Job>,
    /// Compressor threads still running: a panic ends one (after marking the
    /// part it was on), and a writer stops waiting once none is left.
    running: Arc<AtomicUsize>,
}

/// How many compressor threads a source gets: one per core, at most four
/// (a source's parts rarely keep more busy, and `router run` routes several
/// sources at once).
pub fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
}

impl Compressor {
    pub fn start() -> io::Result<Self> {
        Self::with_threads(threads())
    }

    pub fn with_threads(n: usize) -> io::Result<Self> {
        let n = n.max(1);
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(QUEUE * n);
        let rx = Arc::new(Mutex::new(rx));
        let running = Arc::new(AtomicUsize::new(0));
        for i in 0..n {
            running.fetch_add(1, Ordering::SeqCst);
            // Counted down when the thread ends, or here if it never starts
            // (the closure that holds it is dropped with the failed spawn).
            let counted = Running(running.clone());
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("compress-{i}"))
                .spawn(move || compress(&rx, counted));
            if let Err(e) = spawned {
                if i == 0 {
                    return Err(e);
                }
                break;
            }
        }
        Ok(Self { jobs, running })
    }
}

/// One running compressor thread: counted down when the thread ends, by
/// return or by panic.
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The part a compressor thread is working on: if the thread panics, its
/// writer is told instead of waiting for a block that never completes.
struct OnPart<'a>(&'a PartState);

impl Drop for OnPart<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(&self.0.progress).stopped = true;
            self.0.changed.notify_all();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn compress(jobs: &Mutex<Receiver<Job>>, _running: Running) {
    loop {
        // Held only while waiting for a job, not while compressing one.
        let job = lock(jobs).recv();
        let Ok(Job { part, block }) = job else {
            return; // every writer and the compressor are gone
        };
        let _on = OnPart(&part);
        let failed = lock(&part.progress).error.is_some();
        let written = if failed {
            Ok(None)
        } else {
            let mut stream = lock(&part.stream);
            Stream::write(&mut stream, &block, part.compression, part.level).map(Some)
        };
        let mut p = lock(&part.progress);
        p.done += 1;
        match written {
            Ok(Some(counted)) => p.compressed = counted,
            Ok(None) => {}
            Err(e) => {
                p.error.get_or_insert(e);
            }
        }
        drop(p);
        part.changed.notify_all();
    }
}

fn stopped() -> io::Error {
    io::Error::other("the compressor threads stopped")
}

/// Writes one part file: lines are gathered into blocks here and
/// compressed by the source's [`Compressor`].
pub struct PartWriter {
    jobs: SyncSender<Job>,
    running: Arc<AtomicUsize>,
    state: Arc<PartState>,
    /// Lines gathered for the next block.
    block: Vec<u8>,
    keep: Keep,
    /// Blocks handed to the compressor.
    sent: u64,
    /// Compressed bytes after all blocks but the last one sent.
    compressed: u64,
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
        keep: Keep,
    ) -> io::Result<Self> {
        if let Some(dir) = temp.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // create_new: never share a temporary file with another process.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        // A member's compressor writes in 32 KiB pieces already: a part
        // between members holds no buffer of its own.
        let buffer = match keep {
            Keep::Compressor => 64 * 1024,
            Keep::BlockMembers => 0,
        };
        let file = CountingFile {
            inner: BufWriter::with_capacity(buffer, file),
            written: 0,
        };
        let stream = match keep {
            Keep::Compressor => Stream::Compressing(Box::new(encoder(file, compression, level)?)),
            Keep::BlockMembers => Stream::Between(file),
        };
        Ok(Self {
            jobs: compressor.jobs.clone(),
            running: compressor.running.clone(),
            state: Arc::new(PartState {
                stream: Mutex::new(Some(stream)),
                compression,
                level,
                progress: Mutex::new(Progress::default()),
                changed: Condvar::new(),
            }),
            block: Self::new_block(keep),
            keep,
            sent: 0,
            compressed: 0,
            temp,
            output: PartOutput {
                key,
                ..Default::default()
            },
        })
    }

    /// Waits until every block sent is compressed, and returns the
    /// compressed size after them (or the part's first error).
    fn wait_compressed(&self) -> io::Result<u64> {
        let mut p = lock(&self.state.progress);
        while p.done < self.sent && !p.stopped && p.error.is_none() {
            if self.running.load(Ordering::SeqCst) == 0 {
                break;
            }
            p = self
                .state
                .changed
                .wait_timeout(p, std::time::Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        // The error stays recorded: the compressor skips this part's later
        // blocks and its finish reports it too.
        if let Some(e) = &p.error {
            return Err(io::Error::new(e.kind(), e.to_string()));
        }
        if p.done < self.sent {
            return Err(stopped());
        }
        Ok(p.compressed)
    }

    /// Hands the gathered block over once the previous one is compressed
    /// (so `compressed_len` is the same on every run, and a part's blocks
    /// are compressed in order whichever thread takes them).
    fn send_block(&mut self) -> io::Result<()> {
        self.compressed = self.wait_compressed()?;
        let block = std::mem::replace(&mut self.block, Self::new_block(self.keep));
        self.jobs
            .send(Job {
                part: self.state.clone(),
                block,
            })
            .map_err(|_| stopped())?;
        self.sent += 1;
        Ok(())
    }

    /// A part that keeps its compressor is written to often (it is one of
    /// the first types of its source): its block is allocated whole once;
    /// one between members grows its block as lines come.
    fn new_block(keep: Keep) -> Vec<u8> {
        match keep {
            Keep::Compressor => Vec::with_capacity(BLOCK + 1024),
            Keep::BlockMembers => Vec::new(),
        }
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

    /// Compresses the last block here, on the calling thread, after the
    /// blocks in flight, and closes the stream.
    pub fn finish(mut self) -> io::Result<FinishedPart> {
        self.wait_compressed()?;
        let stream = lock(&self.state.stream).take();
        let block = std::mem::take(&mut self.block);
        let mut file = match stream {
            None => return Err(io::Error::other("a part finished twice")),
            Some(Stream::Compressing(mut e)) => {
                e.write_all(&block)?;
                e.finish()?
            }
            // A part of no member yet still gets one: an empty file is no gzip.
            Some(Stream::Between(file)) if !block.is_empty() || self.sent == 0 => {
                let mut e = encoder(file, self.state.compression, self.state.level)?;
                e.write_all(&block)?;
                e.finish()?
            }
            Some(Stream::Between(file)) => file,
        };
        file.inner.flush()?;
        self.output.bytes = file.written;
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
    /// An unfinished part (the source failed) leaves no file: its encoder
    /// goes with the last block in flight, its temporary file here.
    fn drop(&mut self) {
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
    fn write(
        dir: &std::path::Path,
        lines: u64,
        others: usize,
        threads: usize,
        keep: Keep,
    ) -> (Vec<u64>, FinishedPart) {
        let mut compressor = Compressor::with_threads(threads).unwrap();
        let mut part = |name: &str| {
            PartWriter::create(
                &mut compressor,
                dir.join(name),
                name.into(),
                OutputCompression::Gzip,
                1,
                keep,
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
    /// timing and however many threads compress, and the part holds every
    /// line in order.
    #[test]
    fn compressed_length_is_deterministic_and_the_part_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let (first, part) = write(&a, 20_000, 0, 1, Keep::Compressor);
        let (second, other) = write(&b, 20_000, 3, 3, Keep::Compressor);
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
            Keep::BlockMembers,
        )
        .unwrap();
        for i in 0..10_000u64 {
            w.write_line(b"some line of text that is long enough", i + 1)
                .unwrap();
        }
        drop(w);
        assert!(!temp.exists());
    }

    /// A part past `route.max_open_compressors` is one gzip member per
    /// block: the same lines, a deterministic size, and not much larger
    /// than one member.
    #[test]
    fn block_members_hold_the_same_lines() {
        let dir = tempfile::tempdir().unwrap();
        let read = |part: &FinishedPart| {
            let mut text = String::new();
            flate2::read::MultiGzDecoder::new(std::fs::File::open(&part.temp).unwrap())
                .read_to_string(&mut text)
                .unwrap();
            text
        };
        let mut parts = Vec::new();
        for (name, keep, threads) in [
            ("one", Keep::Compressor, 1),
            ("members", Keep::BlockMembers, 1),
            ("members-again", Keep::BlockMembers, 3),
        ] {
            let d = dir.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            parts.push(write(&d, 20_000, 2, threads, keep));
        }
        let (one, members, again) = (&parts[0], &parts[1], &parts[2]);
        assert_eq!(read(&one.1), read(&members.1));
        assert_eq!(members.0, again.0, "sizes do not depend on the threads");
        assert_eq!(members.1.output.bytes, again.1.output.bytes);
        let (a, b) = (one.1.output.bytes as f64, members.1.output.bytes as f64);
        assert!(b < a * 1.25, "one member {a} bytes, block members {b}");
        // A part of one short line is still a valid gzip file.
        let d = dir.path().join("short");
        std::fs::create_dir_all(&d).unwrap();
        let (_, short) = write(&d, 1, 0, 1, Keep::BlockMembers);
        assert_eq!(read(&short), "{\"i\":0,\"pad\":\"\"}\n");
    }
}
