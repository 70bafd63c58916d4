//! Finding the next byte a text escaper must act on, 16 bytes at a time.
//!
//! Both binaries copy text into another syntax on their hottest path: the
//! router writes access-log values as JSON strings, the loader writes cells
//! as PostgreSQL COPY text. Almost no byte needs escaping, so each copies in
//! runs between the bytes that do, and finding those bytes is most of the
//! work. SSE2 is part of every x86_64 CPU, so this needs no run-time
//! detection; elsewhere it falls back to a plain loop.

/// The bytes an escaper stops at: every byte below `below`, and each of
/// `bytes` (repeat one to name fewer than four). Bytes of 0x80 and over are
/// never below it, so UTF-8 text passes in runs.
#[derive(Debug, Clone, Copy)]
pub struct Stops {
    below: u8,
    /// The same set as a table, for runs shorter than 16 bytes (most
    /// access-log values: five compares a byte showed in profiles) and
    /// where SSE2 is not there.
    table: [bool; 256],
    /// Each of the four bytes, and `below - 1`, in all 16 lanes: the
    /// compare operands of a block, loaded rather than built each time.
    lanes: [[u8; 16]; 5],
}

/// What JSON escapes in a string: control characters, `"` and `\`.
pub const JSON_STRING: Stops = Stops::new(0x20, [b'"', b'\\', b'"', b'\\']);

/// What PostgreSQL's COPY text format escapes: `\`, tab, newline and
/// carriage return.
pub const COPY_TEXT: Stops = Stops::new(0, [b'\\', b'\t', b'\n', b'\r']);

impl Stops {
    pub const fn new(below: u8, bytes: [u8; 4]) -> Self {
        let mut table = [false; 256];
        let mut c = 0;
        while c < below as usize {
            table[c] = true;
            c += 1;
        }
        let mut k = 0;
        while k < 4 {
            table[bytes[k] as usize] = true;
            k += 1;
        }
        let mut lanes = [[0; 16]; 5];
        let mut k = 0;
        while k < 4 {
            lanes[k] = [bytes[k]; 16];
            k += 1;
        }
        lanes[4] = [below.wrapping_sub(1); 16];
        Self {
            below,
            table,
            lanes,
        }
    }

    #[cfg(test)]
    fn stops_at(&self, c: u8) -> bool {
        c < self.below || self.lanes[..4].iter().any(|lane| lane[0] == c)
    }

    /// Every offset of `b` to stop at, in order: one pass over a whole
    /// record, for a writer whose stops are also its separators (a
    /// CloudFront line's tabs are control characters), instead of a
    /// [`Stops::find`] per run.
    pub fn positions<'b>(&'b self, b: &'b [u8]) -> Positions<'b> {
        let mut p = Positions {
            stops: self,
            b,
            base: 0,
            mask: 0,
        };
        p.mask = p.block_mask();
        p
    }

    /// The stops among the 16 bytes of `b` at `at` (or the bytes left
    /// there, when fewer), as bits.
    #[inline(always)]
    fn mask_at(&self, b: &[u8], at: usize) -> u32 {
        #[cfg(target_arch = "x86_64")]
        {
            let lanes = Lanes::of(self);
            if at + 16 <= b.len() {
                return lanes.hits(b, at);
            }
            if b.len() >= 16 {
                // The last partial block: the final 16 bytes, those before
                // `at` shifted out.
                let last = b.len() - 16;
                return lanes.hits(b, last) >> (at - last);
            }
        }
        b[at.min(b.len())..]
            .iter()
            .take(16)
            .enumerate()
            .filter(|(_, &c)| self.table[c as usize])
            .fold(0, |m, (k, _)| m | 1 << k)
    }

    /// The offset of the first byte of `b` to stop at, or `b.len()`.
    pub fn find(&self, b: &[u8]) -> usize {
        let mut i = 0;
        #[cfg(target_arch = "x86_64")]
        {
            let lanes = Lanes::of(self);
            while i + 16 <= b.len() {
                let mask = lanes.hits(b, i);
                if mask != 0 {
                    return i + mask.trailing_zeros() as usize;
                }
                i += 16;
            }
            // The last partial block: one load of the final 16 bytes, the
            // ones already checked shifted out.
            if i < b.len() && b.len() >= 16 {
                let last = b.len() - 16;
                let mask = lanes.hits(b, last) >> (i - last);
                return if mask != 0 {
                    i + mask.trailing_zeros() as usize
                } else {
                    b.len()
                };
            }
        }
        i + b[i..]
            .iter()
            .position(|&c| self.table[c as usize])
            .unwrap_or(b.len() - i)
    }
}

/// A [`Stops`]' compare operands in registers, for one scan.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Lanes {
    bytes: [std::arch::x86_64::__m128i; 4],
    ceiling: std::arch::x86_64::__m128i,
    below: bool,
}

#[cfg(target_arch = "x86_64")]
impl Lanes {
    #[inline(always)]
    fn of(stops: &Stops) -> Self {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of x86_64; each lane is 16 bytes.
        let lane = |k: usize| unsafe { _mm_loadu_si128(stops.lanes[k].as_ptr() as *const __m128i) };
        Self {
            bytes: [lane(0), lane(1), lane(2), lane(3)],
            ceiling: lane(4),
            below: stops.below > 0,
        }
    }

    /// The stops among the 16 bytes of `b` at `at`, as bits.
    #[inline(always)]
    fn hits(&self, b: &[u8], at: usize) -> u32 {
        use std::arch::x86_64::*;
        assert!(at + 16 <= b.len());
        // SAFETY: SSE2 is part of x86_64; the 16 bytes at `at` lie inside
        // `b` (asserted above: every caller has checked it already, so the
        // check folds away).
        unsafe {
            let v = _mm_loadu_si128(b.as_ptr().add(at) as *const __m128i);
            let [x, y, z, w] = self.bytes;
            let mut hit = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, x), _mm_cmpeq_epi8(v, y)),
                _mm_or_si128(_mm_cmpeq_epi8(v, z), _mm_cmpeq_epi8(v, w)),
            );
            if self.below {
                // Unsigned v < below exactly when min(v, below - 1) == v.
                hit = _mm_or_si128(hit, _mm_cmpeq_epi8(_mm_min_epu8(v, self.ceiling), v));
            }
            _mm_movemask_epi8(hit) as u32
        }
    }
}

/// The iterator of [`Stops::positions`].
pub struct Positions<'b> {
    stops: &'b Stops,
    b: &'b [u8],
    /// The offset of the block `mask` covers.
    base: usize,
    /// Its stops not yet returned.
    mask: u64,
}

impl Positions<'_> {
    /// The stops among the (up to) 64 bytes at `base`, as bits: four
    /// blocks at once, so the iterator refills once per 64 bytes.
    fn block_mask(&self) -> u64 {
        let (b, at) = (self.b, self.base);
        #[cfg(target_arch = "x86_64")]
        if at + 64 <= b.len() {
            let lanes = Lanes::of(self.stops);
            return (0..4).fold(0, |mask, k| {
                mask | u64::from(lanes.hits(b, at + 16 * k)) << (16 * k)
            });
        }
        let mut mask = 0;
        let mut k = at;
        while k < b.len() && k < at + 64 {
            mask |= u64::from(self.stops.mask_at(b, k) & 0xffff) << (k - at);
            k += 16;
        }
        mask
    }
}

impl Iterator for Positions<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            self.base += 64;
            if self.base >= self.b.len() {
                return None;
            }
            self.mask = self.block_mask();
        }
        let at = self.base + self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value at every offset of a run longer than two blocks,
    /// against the plain definition.
    #[test]
    fn finds_what_the_plain_loop_finds() {
        for stops in [JSON_STRING, COPY_TEXT, Stops::new(0x10, *b"abcd")] {
            for c in 0..=255u8 {
                for at in [0, 1, 7, 15, 16, 17, 31, 32, 40] {
                    let mut b = vec![b'~'; 41];
                    b[at] = c;
                    // Every length, every start: the partial last block
                    // and the short runs of the table.
                    for from in 0..=at {
                        for len in from..=41 {
                            let run = &b[from..len];
                            let plain = run.iter().position(|&x| stops.stops_at(x));
                            assert_eq!(stops.find(run), plain.unwrap_or(run.len()));
                        }
                    }
                    // Every stop of every prefix, in one pass.
                    for len in 0..=41 {
                        let run = &b[..len];
                        let plain: Vec<usize> =
                            (0..len).filter(|&k| stops.stops_at(run[k])).collect();
                        let got: Vec<usize> = stops.positions(run).collect();
                        assert_eq!(got, plain, "{c:#x} at {at}, {len} bytes");
                    }
                    let plain = b.iter().position(|&x| stops.stops_at(x)).unwrap_or(b.len());
                    assert_eq!(stops.find(&b), plain, "{c:#x} at {at}");
                    assert_eq!(stops.find(&b[..at]), at, "before {at}");
                }
            }
        }
        // Many stops a block, in every block and across the last one.
        for every in 1..7 {
            for len in 0..80 {
                let b: Vec<u8> = (0..len)
                    .map(|k| {
                        if k % every == 0 {
                            b"\t\"\\\x01"[k % 4]
                        } else {
                            b'a'
                        }
                    })
                    .collect();
                let plain: Vec<usize> = (0..len).step_by(every).collect();
                assert_eq!(JSON_STRING.positions(&b).collect::<Vec<_>>(), plain);
            }
        }
        let utf8 = "é ☃ 𝄞 \u{7f} and more than sixteen bytes".as_bytes();
        assert_eq!(JSON_STRING.positions(utf8).count(), 0);
        assert_eq!(JSON_STRING.find(utf8), utf8.len());
        assert_eq!(COPY_TEXT.find(b"\x01\x1f\"x"), 4);
    }
}
