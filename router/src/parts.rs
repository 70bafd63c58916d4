//! Part files: the compressed outputs of one source, one stream per event
//! type (plus one for quarantine), rolled over at a compressed size.
//!
//! A [`PartWriter`] writes to a temporary file; [`PartWriter::finish`] closes
//! the compressed stream and returns a [`FinishedPart`] for the committer,
//! which makes it durable under its final key. A writer dropped unfinished
//! (the source failed) removes its temporary file.
//!
//! gzip parts are written by libdeflate, each 64 KiB block a gzip member of
//! its own: libdeflate compresses whole buffers, and its level 1 chooses
//! dynamic Huffman codes per block, which keeps parts below the bytes of
//! `gzip -1` on any data (issue #26; zlib-rs's level 1, `deflate_quick`,
//! has static codes only and wrote 1.2x `gzip -1` on nested, non-ASCII
//! events). A member restarts the 32 KiB window, which costs about 4% of
//! size against 256 KiB blocks; the blocks stay 64 KiB for the memory
//! bound below. A zstd part keeps a compressor of its own (one frame, the
//! window carried from block to block), or past
//! `route.max_open_compressors` only its file, each block then a frame of
//! its own ([`Keep`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};

use logrouter::config::{GzipEncoder, OutputCompression};
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

/// A zstd part's own compressor: one frame over the whole part.
type Encoder = zstd::stream::write::Encoder<'static, CountingFile>;

/// Uncompressed bytes gathered before a block goes to the compressor.
const BLOCK: usize = 64 * 1024;
/// What a block is allocated with: room for the line that fills it.
const BLOCK_CAPACITY: usize = BLOCK + 1024;
/// Blocks in flight (queued or being compressed) at most, across the parts
/// of a source, per compressor thread: with the block each open part is
/// gathering, this bounds the blocks in memory.
const QUEUE: usize = 16;
/// Blocks of one part in flight at most. More than one, so that the
/// routing thread does not wait on a busy type's previous block while it
/// sits in the queue behind other types' blocks (with one, on 50 types, the
/// routing thread spent a fifth of its time waiting there and the
/// compressors half of theirs idle). Twelve rather than four, and sixteen
/// blocks a thread rather than eight: one type of a CloudFront source held
/// 40% of its bytes, and with four the routing thread kept waiting on that
/// part, whose blocks only one thread at a time can compress, while the
/// other core idled (7% more wall time; JSON's 50 types were unchanged).
/// A part's compressed size, which rolls it over, lags its input by this
/// many blocks.
const PART_DEPTH: u64 = 12;

/// What a zstd part keeps between its blocks (a gzip part keeps only its
/// file, whatever it is asked: every block is a member of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// A compressor over the whole part: one zstd frame, the window carried
    /// from block to block. A few hundred KB of state.
    Compressor,
    /// Only the file: each block is compressed as a frame of its own, by
    /// the compressor thread's [`MemberWriter`]. For the parts of a source
    /// past `route.max_open_compressors`, so that a source of a thousand
    /// types does not hold a thousand compressors.
    BlockMembers,
}

/// How a part's blocks are compressed: its file's format, the encoder and
/// its level (checked at start-up: `Config::validate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// gzip by libdeflate, levels 0-12.
    Libdeflate(i32),
    /// gzip by ISA-L's igzip, levels 0-3 (the `isal` feature).
    Isal(u32),
    /// zstd, levels 1-19.
    Zstd(i32),
}

impl Encoding {
    /// The encoding `config` asks for.
    pub fn of(config: &logrouter::config::Config) -> Self {
        let level = config.compression_level();
        match config.route.output_compression {
            OutputCompression::Zstd => Encoding::Zstd(level),
            OutputCompression::Gzip => match config.gzip_encoder() {
                GzipEncoder::Libdeflate => Encoding::Libdeflate(level),
                GzipEncoder::Isal => Encoding::Isal(level.max(0) as u32),
            },
        }
    }

    /// The file format it writes.
    pub fn compression(self) -> OutputCompression {
        match self {
            Encoding::Libdeflate(_) | Encoding::Isal(_) => OutputCompression::Gzip,
            Encoding::Zstd(_) => OutputCompression::Zstd,
        }
    }
}

/// A part's output between blocks.
enum Stream {
    Compressing(Box<Encoder>),
    Between(CountingFile),
}

/// What a compressor thread writes a block with as a gzip member (zstd
/// frame) of its own, kept from block to block. Making a compressor for
/// every block cost a few hundred KB of allocation and clearing each time,
/// and with it came the memory churn [`InFlight`] describes.
#[derive(Default)]
struct MemberWriter {
    gzip: Option<(i32, libdeflater::Compressor)>,
    #[cfg(feature = "isal")]
    isal: Option<crate::isal::IsalGzip>,
    zstd: Option<(i32, zstd::bulk::Compressor<'static>)>,
    out: Vec<u8>,
}

impl MemberWriter {
    /// Writes `block` to `file` as one whole member (frame). The gzip
    /// header (libdeflate's and igzip's alike): no name, mtime 0, OS
    /// unknown.
    fn write(
        &mut self,
        file: &mut CountingFile,
        block: &[u8],
        encoding: Encoding,
    ) -> io::Result<()> {
        self.out.clear();
        match encoding {
            Encoding::Libdeflate(level) => {
                let deflate = match &mut self.gzip {
                    Some((l, d)) if *l == level => d,
                    slot => {
                        let lvl = libdeflater::CompressionLvl::new(level)
                            .map_err(|e| io::Error::other(format!("gzip level {level}: {e:?}")))?;
                        &mut slot.insert((level, libdeflater::Compressor::new(lvl))).1
                    }
                };
                self.out.resize(deflate.gzip_compress_bound(block.len()), 0);
                let n = deflate
                    .gzip_compress(block, &mut self.out)
                    .map_err(|e| io::Error::other(format!("gzip: {e}")))?;
                self.out.truncate(n);
            }
            #[cfg(feature = "isal")]
            Encoding::Isal(level) => {
                let igzip = match &mut self.isal {
                    Some(c) if c.level() == level => c,
                    slot => {
                        slot.insert(crate::isal::IsalGzip::new(level).map_err(io::Error::other)?)
                    }
                };
                self.out
                    .resize(crate::isal::IsalGzip::bound(block.len()), 0);
                let n = igzip.gzip(block, &mut self.out).map_err(io::Error::other)?;
                self.out.truncate(n);
            }
            #[cfg(not(feature = "isal"))]
            Encoding::Isal(_) => {
                // The configuration refuses it at start-up (GzipEncoder::is_built).
                return Err(io::Error::other(
                    "this router was built without ISA-L (the `isal` feature)",
                ));
            }
            Encoding::Zstd(level) => {
                let zstd = match &mut self.zstd {
                    Some((l, z)) if *l == level => z,
                    slot => &mut slot.insert((level, zstd::bulk::Compressor::new(level)?)).1,
                };
                self.out
                    .reserve(zstd::zstd_safe::compress_bound(block.len()));
                zstd.compress_to_buffer(block, &mut self.out)?;
            }
        }
        file.write_all(&self.out)
    }
}

impl Stream {
    /// Compresses `block` (as a member of its own for a part between
    /// members) and returns the compressed bytes written so far; an error
    /// leaves no stream.
    fn write(
        slot: &mut Option<Stream>,
        block: &[u8],
        encoding: Encoding,
        member: &mut MemberWriter,
    ) -> io::Result<u64> {
        match slot.take() {
            Some(Stream::Compressing(mut e)) => {
                e.write_all(block)?;
                let counted = e.get_ref().written;
                *slot = Some(Stream::Compressing(e));
                Ok(counted)
            }
            Some(Stream::Between(mut file)) => {
                member.write(&mut file, block, encoding)?;
                let counted = file.written;
                *slot = Some(Stream::Between(file));
                Ok(counted)
            }
            None => Err(io::Error::other("a block after its part finished")),
        }
    }
}

/// One part as the compressor threads see it: its stream, its blocks
/// waiting, and how far it has got. Any thread may compress a part's
/// blocks, but only one at a time and in order: a part is in the job queue
/// at most once, and the thread that takes it compresses its waiting blocks
/// until none is left (see [`compress`]).
struct PartState {
    stream: Mutex<Option<Stream>>,
    encoding: Encoding,
    progress: Mutex<Progress>,
    changed: Condvar,
}

#[derive(Default)]
struct Progress {
    /// Blocks sent and not yet taken by a compressor thread, oldest first.
    waiting: VecDeque<Vec<u8>>,
    /// The part is in the job queue, or a thread is compressing its blocks.
    scheduled: bool,
    /// Blocks compressed so far.
    done: u64,
    /// (blocks done, compressed bytes written after them), for the blocks
    /// done that the writer has not yet asked about (at most
    /// [`PART_DEPTH`] + 1).
    sizes: VecDeque<(u64, u64)>,
    error: Option<io::Error>,
    /// A compressor thread panicked on this part's block: nothing more will
    /// be done for it.
    stopped: bool,
}

/// A part with blocks waiting.
type Job = Arc<PartState>;

/// The blocks in flight across a source's parts, bounded by [`QUEUE`] per
/// compressor thread, and the compressed ones kept for reuse.
///
/// Reusing blocks is about memory more than speed: when every block was
/// allocated by the routing thread and freed by a compressor thread,
/// glibc's arenas and its sliding mmap threshold left a thousand-type
/// source anywhere between 130 and 345 MB (issue #13's test), depending on
/// the threads' timing.
struct InFlight {
    state: Mutex<Blocks>,
    freed: Condvar,
    max: usize,
}

#[derive(Default)]
struct Blocks {
    in_flight: usize,
    /// Compressed blocks, emptied, at most `max`.
    spare: Vec<Vec<u8>>,
}

impl InFlight {
    /// Waits for room for one more block in flight, and returns an empty
    /// block to gather the next one in; fails once no compressor thread is
    /// left to make room.
    fn take(&self, running: &AtomicUsize) -> io::Result<Vec<u8>> {
        let mut b = lock(&self.state);
        while b.in_flight >= self.max {
            if running.load(Ordering::SeqCst) == 0 {
                return Err(stopped());
            }
            b = self
                .freed
                .wait_timeout(b, std::time::Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        b.in_flight += 1;
        Ok(b.spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BLOCK_CAPACITY)))
    }

    /// `blocks` blocks left flight: compressed (and `block`, the one just
    /// compressed, kept for reuse unless a long line grew it far past a
    /// block), or never to be (their thread panicked, or their part did).
    fn release(&self, blocks: usize, block: Option<Vec<u8>>) {
        let mut b = lock(&self.state);
        b.in_flight = b.in_flight.saturating_sub(blocks);
        if let Some(block) = block {
            self.keep(&mut b, block);
        }
        drop(b);
        self.freed.notify_all();
    }

    /// A block taken and not needed after all, kept for reuse.
    fn reuse(&self, block: Vec<u8>) {
        self.keep(&mut lock(&self.state), block);
    }

    fn keep(&self, b: &mut Blocks, mut block: Vec<u8>) {
        if b.spare.len() < self.max && block.capacity() <= 2 * BLOCK_CAPACITY {
            block.clear();
            b.spare.push(block);
        }
    }
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
/// Each part keeps at most [`PART_DEPTH`] blocks in flight, compressed in
/// order, and learns its compressed size after block n when it hands over
/// block n + [`PART_DEPTH`], so a part rolls over at the same line on every
/// run (deterministic keys) whatever the threads' timing and number.
pub struct Compressor {
    jobs: Sender<Job>,
    in_flight: Arc<InFlight>,
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
        // Unbounded, but never longer than the parts with blocks waiting,
        // which `in_flight` bounds.
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let in_flight = Arc::new(InFlight {
            state: Mutex::new(Blocks::default()),
            freed: Condvar::new(),
            max: QUEUE * n,
        });
        let running = Arc::new(AtomicUsize::new(0));
        for i in 0..n {
            running.fetch_add(1, Ordering::SeqCst);
            // Counted down when the thread ends, or here if it never starts
            // (the closure that holds it is dropped with the failed spawn).
            let counted = Running(running.clone());
            let rx = rx.clone();
            let in_flight = in_flight.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("compress-{i}"))
                .spawn(move || compress(&rx, &in_flight, counted));
            if let Err(e) = spawned {
                if i == 0 {
                    return Err(e);
                }
                break;
            }
        }
        Ok(Self {
            jobs,
            in_flight,
            running,
        })
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
/// writer is told instead of waiting for a block that never completes, and
/// the room its blocks took is given back.
struct OnPart<'a> {
    part: &'a PartState,
    in_flight: &'a InFlight,
}

impl Drop for OnPart<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut p = lock(&self.part.progress);
            p.stopped = true;
            // The block being compressed, and those still waiting.
            let blocks = 1 + p.waiting.len();
            p.waiting.clear();
            drop(p);
            self.part.changed.notify_all();
            self.in_flight.release(blocks, None);
        }
    }
}

/// How much nicer the compressor threads are than the thread that starts
/// them (nice values go up to 19).
const COMPRESSOR_NICE_STEP: i32 = 10;

/// Lowers this compressor thread's priority (its nice value, per thread on
/// Linux) below the routing thread's. Every line goes through the routing
/// thread one after another, while blocks can be compressed by any thread
/// at any time: with the scheduler's equal shares, four busy threads on two
/// cores left the routing thread, which the others wait on, half a core
/// (issue #26). Behind it, the compressors still get all the CPU the
/// routing and decoding threads leave, and when they fall behind, the
/// routing thread waits for room in the queue ([`InFlight`]), so they catch
/// up. With ISA-L this made a route of 256 MB of analytics events 11%
/// faster on two cores (median of five pairs); GitHub-like events, where
/// compression is half the work, were unchanged. Failing to lower it
/// (which any thread may do) only leaves the old shares.
fn yield_to_routing() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take and return plain integers; they
    // change only this thread's nice value.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        // A new thread starts at its creator's nice value.
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        libc::setpriority(
            libc::PRIO_PROCESS,
            tid,
            (now + COMPRESSOR_NICE_STEP).min(19),
        );
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn compress(jobs: &Mutex<Receiver<Job>>, in_flight: &InFlight, _running: Running) {
    yield_to_routing();
    let mut member = MemberWriter::default();
    loop {
        // Held only while waiting for a job, not while compressing one.
        let job = lock(jobs).recv();
        let Ok(part) = job else {
            return; // every writer and the compressor are gone
        };
        // This thread alone compresses the part's blocks until none waits.
        loop {
            let mut p = lock(&part.progress);
            let Some(block) = p.waiting.pop_front() else {
                p.scheduled = false;
                break;
            };
            let failed = p.error.is_some();
            drop(p);
            let on = OnPart {
                part: &part,
                in_flight,
            };
            #[cfg(test)]
            if block.starts_with(tests::PANIC) {
                panic!("a compressor thread fails (test)");
            }
            let written = if failed {
                Ok(None)
            } else {
                let mut stream = lock(&part.stream);
                Stream::write(&mut stream, &block, part.encoding, &mut member).map(Some)
            };
            std::mem::forget(on);
            let mut p = lock(&part.progress);
            p.done += 1;
            let done = p.done;
            match written {
                Ok(Some(counted)) => p.sizes.push_back((done, counted)),
                Ok(None) => {}
                Err(e) => {
                    p.error.get_or_insert(e);
                }
            }
            drop(p);
            part.changed.notify_all();
            in_flight.release(1, Some(block));
        }
    }
}

fn stopped() -> io::Error {
    io::Error::other("the compressor threads stopped")
}

/// Writes one part file: lines are gathered into blocks here and
/// compressed by the source's [`Compressor`].
pub struct PartWriter {
    jobs: Sender<Job>,
    in_flight: Arc<InFlight>,
    running: Arc<AtomicUsize>,
    state: Arc<PartState>,
    /// Lines gathered for the next block.
    block: Vec<u8>,
    /// Each block is a member (frame) of its own.
    members: bool,
    /// Blocks handed to the compressor.
    sent: u64,
    /// The last block is handed over: no line may follow.
    last_sent: bool,
    /// Compressed bytes after all blocks but the last [`PART_DEPTH`] sent.
    compressed: u64,
    temp: PathBuf,
    output: PartOutput,
}

impl PartWriter {
    pub fn create(
        compressor: &mut Compressor,
        temp: PathBuf,
        key: String,
        encoding: Encoding,
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
        // A member is written whole, in one piece: a part between members
        // holds no buffer of its own.
        let zstd_level = match encoding {
            Encoding::Zstd(level) if keep == Keep::Compressor => Some(level),
            _ => None,
        };
        let members = zstd_level.is_none();
        let file = CountingFile {
            inner: BufWriter::with_capacity(if members { 0 } else { 64 * 1024 }, file),
            written: 0,
        };
        let stream = match zstd_level {
            None => Stream::Between(file),
            Some(level) => Stream::Compressing(Box::new(Encoder::new(file, level)?)),
        };
        Ok(Self {
            jobs: compressor.jobs.clone(),
            in_flight: compressor.in_flight.clone(),
            running: compressor.running.clone(),
            state: Arc::new(PartState {
                stream: Mutex::new(Some(stream)),
                encoding,
                progress: Mutex::new(Progress::default()),
                changed: Condvar::new(),
            }),
            block: Self::first_block(keep),
            members,
            sent: 0,
            last_sent: false,
            compressed: 0,
            temp,
            output: PartOutput {
                key,
                ..Default::default()
            },
        })
    }

    /// Waits until the first `blocks` blocks sent are compressed, and
    /// returns the compressed size right after them (or the part's first
    /// error). `blocks` never goes down from one call to the next.
    fn wait_compressed(&self, blocks: u64) -> io::Result<u64> {
        let mut p = lock(&self.state.progress);
        while p.done < blocks && !p.stopped && p.error.is_none() {
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
        // A thread panicked on this part: its later blocks would never be
        // taken, so none is sent.
        if p.done < blocks || p.stopped {
            return Err(stopped());
        }
        if blocks == 0 {
            return Ok(0);
        }
        while p.sizes.front().is_some_and(|&(done, _)| done < blocks) {
            p.sizes.pop_front();
        }
        match p.sizes.front() {
            Some(&(done, compressed)) if done == blocks => Ok(compressed),
            _ => Err(io::Error::other("a part's compressed size was lost")),
        }
    }

    /// Hands the gathered block over once the block [`PART_DEPTH`] before
    /// it is compressed (so `compressed_len` is the same on every run), and
    /// once the source has room for it.
    fn send_block(&mut self) -> io::Result<()> {
        debug_assert!(!self.last_sent, "a line after the part's last block");
        self.compressed = self.wait_compressed((self.sent + 1).saturating_sub(PART_DEPTH))?;
        // After its first block a part is busy, whatever it keeps: its next
        // blocks are whole ones, reused.
        let next = self.in_flight.take(&self.running)?;
        let block = std::mem::replace(&mut self.block, next);
        let mut p = lock(&self.state.progress);
        if p.stopped {
            drop(p);
            self.in_flight.release(1, None);
            return Err(stopped());
        }
        p.waiting.push_back(block);
        let schedule = !std::mem::replace(&mut p.scheduled, true);
        drop(p);
        if schedule && self.jobs.send(self.state.clone()).is_err() {
            return Err(stopped());
        }
        self.sent += 1;
        Ok(())
    }

    /// A part's first block: a part that keeps its compressor is written to
    /// often (it is one of the first types of its source), so its block is
    /// allocated whole at once; one between members grows its block as
    /// lines come, since it may get only a few.
    fn first_block(keep: Keep) -> Vec<u8> {
        match keep {
            Keep::Compressor => Vec::with_capacity(BLOCK_CAPACITY),
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

    /// Compressed bytes written so far (lags the input by up to
    /// [`PART_DEPTH`] + 1 blocks).
    pub fn compressed_len(&self) -> u64 {
        self.compressed
    }

    /// Hands the last block over to the compressor threads, so that the
    /// parts a source closes together compress their last blocks at once
    /// (see [`PartWriter::finish`]). No line may follow.
    pub fn send_last(&mut self) -> io::Result<()> {
        // A part of no member yet still gets one: an empty file is no gzip.
        let no_member = self.members && self.sent == 0;
        if !self.last_sent && (!self.block.is_empty() || no_member) {
            self.send_block()?;
            self.in_flight.reuse(std::mem::take(&mut self.block));
        }
        self.last_sent = true;
        Ok(())
    }

    /// Sends the last block (unless [`PartWriter::send_last`] did), waits
    /// until every block is compressed, and closes the stream.
    pub fn finish(mut self) -> io::Result<FinishedPart> {
        self.send_last()?;
        self.wait_compressed(self.sent)?;
        let stream = lock(&self.state.stream).take();
        let mut file = match stream {
            None => return Err(io::Error::other("a part finished twice")),
            Some(Stream::Compressing(e)) => e.finish()?,
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
                Encoding::of(&logrouter::config::Config::default()),
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
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&part.temp).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text.lines().count(), 20_000);
        assert!(text
            .lines()
            .enumerate()
            .all(|(i, l)| l.starts_with(&format!("{{\"i\":{i},"))));
        assert_eq!(text.len() as u64, part.output.uncompressed_bytes);
    }

    /// A member written with a reused compressor holds the block, byte for
    /// byte what a fresh one writes, block after block and level after
    /// level, with `GzEncoder`'s header.
    #[test]
    fn a_reused_member_compressor_writes_whole_members() {
        let dir = tempfile::tempdir().unwrap();
        let mut member = MemberWriter::default();
        let text: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("{{\"i\":{i}}}\n").into_bytes())
            .collect();
        for (level, block) in [
            (1, &text[..]),
            (1, &text[..70_000]),
            (6, &text[..]),
            (1, &[][..]),
        ] {
            let mut file = CountingFile {
                inner: BufWriter::new(File::create(dir.path().join("m")).unwrap()),
                written: 0,
            };
            member
                .write(&mut file, block, Encoding::Libdeflate(level))
                .unwrap();
            file.flush().unwrap();
            let mut e =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level as u32));
            e.write_all(block).unwrap();
            let zlib = e.finish().unwrap();
            let mut c =
                libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).unwrap());
            let mut fresh = vec![0; c.gzip_compress_bound(block.len())];
            let n = c.gzip_compress(block, &mut fresh).unwrap();
            fresh.truncate(n);
            let written = std::fs::read(dir.path().join("m")).unwrap();
            assert_eq!(written[..10], zlib[..10], "the same header");
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&written[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, block, "level {level}");
            assert_eq!(file.written, written.len() as u64);
            assert_eq!(written, fresh, "level {level}");
        }
        for level in [3, 3, 1] {
            let mut file = CountingFile {
                inner: BufWriter::new(File::create(dir.path().join("z")).unwrap()),
                written: 0,
            };
            member
                .write(&mut file, &text, Encoding::Zstd(level))
                .unwrap();
            file.flush().unwrap();
            let back = zstd::decode_all(File::open(dir.path().join("z")).unwrap()).unwrap();
            assert_eq!(back, text);
        }
    }

    /// A block that makes its compressor thread panic.
    pub(super) const PANIC: &[u8] = b"\0panic";

    /// A compressor thread that panics fails the part it was on, never
    /// hangs its writer or the others: with another thread left, other
    /// parts finish whole; with none, every writer gets an error.
    #[test]
    fn a_panicking_compressor_thread_fails_its_part_and_hangs_nothing() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let dir = tempfile::tempdir().unwrap();
            let mut results = Vec::new();
            for threads in [2, 1] {
                let mut compressor = Compressor::with_threads(threads).unwrap();
                let mut part = |name: &str| {
                    PartWriter::create(
                        &mut compressor,
                        dir.path().join(format!("{name}-{threads}")),
                        name.into(),
                        Encoding::Libdeflate(1),
                        Keep::Compressor,
                    )
                    .unwrap()
                };
                let (mut bad, mut good) = (part("bad"), part("good"));
                let mut poison = PANIC.to_vec();
                poison.resize(BLOCK, b'x');
                let line = vec![b'y'; 1000];
                let mut bad_failed = bad.write_line(&poison, 1).is_err();
                let mut good_failed = false;
                for i in 0..2_000 {
                    bad_failed |= bad.write_line(&line, i + 2).is_err();
                    good_failed |= good.write_line(&line, i + 1).is_err();
                }
                bad_failed |= bad.finish().is_err();
                let good = good.finish();
                good_failed |= good.is_err();
                let lines = good.map(|p| p.output.lines).unwrap_or(0);
                results.push((threads, bad_failed, good_failed, lines));
            }
            done.send(results).unwrap();
        });
        let results = finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("a writer hung after a compressor thread panicked");
        assert_eq!(
            results[0],
            (2, true, false, 2_000),
            "another thread is left"
        );
        assert_eq!(
            (results[1].0, results[1].1, results[1].2),
            (1, true, true),
            "no thread is left"
        );
    }

    /// The compressor threads run below the routing thread (10 nicer), and
    /// the thread that started them keeps its priority.
    #[cfg(target_os = "linux")]
    #[test]
    fn compressor_threads_yield_to_the_routing_thread() {
        let nice_of = |task: &std::path::Path| -> i64 {
            let stat = std::fs::read_to_string(task.join("stat")).unwrap_or_default();
            // After the name's closing parenthesis: state is field 3, nice 19.
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            rest.split_whitespace()
                .nth(16)
                .and_then(|n| n.parse().ok())
                .unwrap_or(i64::MIN)
        };
        let own = nice_of(std::path::Path::new("/proc/thread-self"));
        let want = (own + i64::from(COMPRESSOR_NICE_STEP)).min(19);
        let _compressor = Compressor::with_threads(2).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let niced = loop {
            let mut niced = Vec::new();
            for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
                let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
                if comm.starts_with("compress-") {
                    niced.push(nice_of(&task.path()));
                }
            }
            if niced.len() >= 2 && niced.iter().all(|n| *n == want)
                || std::time::Instant::now() > deadline
            {
                break niced;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert!(niced.len() >= 2, "{niced:?}");
        assert!(niced.iter().all(|n| *n == want), "{niced:?} (want {want})");
        assert_eq!(nice_of(std::path::Path::new("/proc/thread-self")), own);
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
            Encoding::Libdeflate(1),
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
