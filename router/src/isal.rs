//! gzip members written by ISA-L's igzip (the `isal` feature; issue #26).
//!
//! Compression is the largest share of the router's CPU time, and on two
//! cores it decides how far the router gets past the `zcat | gzip -1` pipe.
//! igzip's stateless deflate, in assembly for SSE, AVX2 and AVX-512 chosen
//! at run time, at levels 1-2 compressed bench/router's 64 KiB blocks 2.6x (analytics
//! events) and 1.7x (GitHub-like events) faster than libdeflate's level 1,
//! for 2-6% more bytes, still below `gzip -1`'s. Like libdeflate it
//! compresses a whole buffer at once, which is how parts are written: each
//! block one gzip member.
//!
//! This is the one place the router calls C through raw pointers: the
//! stream is re-initialised for every block, its buffers are owned here,
//! and a block or output over `u32::MAX` bytes is refused before the call.

use isal_sys::igzip_lib as ffi;

/// One compressor thread's igzip state, reused block after block: the
/// stream (82 KB) and the level's hash tables (`level_buf`), allocated
/// once.
pub struct IsalGzip {
    stream: Box<std::mem::MaybeUninit<ffi::isal_zstream>>,
    level_buf: Vec<u8>,
    level: u32,
}

impl IsalGzip {
    /// A compressor at `level` (0-3). Each level takes a buffer of its
    /// own; the default size is ISA-L's (its hash tables for inputs of any
    /// size).
    pub fn new(level: u32) -> Result<Self, String> {
        let size = match level {
            0 => ffi::ISAL_DEF_LVL0_DEFAULT,
            1 => ffi::ISAL_DEF_LVL1_DEFAULT,
            2 => ffi::ISAL_DEF_LVL2_DEFAULT,
            3 => ffi::ISAL_DEF_LVL3_DEFAULT,
            _ => return Err(format!("ISA-L has gzip levels 0-3, not {level}")),
        };
        Ok(Self {
            stream: Box::new_uninit(),
            level_buf: vec![0; size as usize],
            level,
        })
    }

    pub fn level(&self) -> u32 {
        self.level
    }

    /// Room enough for `len` bytes as one gzip member, however
    /// incompressible: igzip falls back to stored blocks (5 bytes of header
    /// every 64 KiB at most) when its codes would not fit, and fails only
    /// if even those do not.
    pub fn bound(len: usize) -> usize {
        len + len / 1024 * 8 + 1024
    }

    /// Compresses `input` into `out` as one whole gzip member (header
    /// without name, mtime 0, OS unknown; CRC-32 and size after) and
    /// returns its length.
    pub fn gzip(&mut self, input: &[u8], out: &mut [u8]) -> Result<usize, String> {
        let (Ok(avail_in), Ok(avail_out)) = (u32::try_from(input.len()), u32::try_from(out.len()))
        else {
            return Err(format!(
                "a block of {} bytes is over igzip's 4 GiB",
                input.len()
            ));
        };
        let s = self.stream.as_mut_ptr();
        // SAFETY: `s` points to an isal_zstream owned by this value, which
        // isal_deflate_stateless_init fills in (every field) before the
        // fields are set; the pointers given to it (the input, the output
        // and level_buf, with their true lengths) outlive the call, and
        // ISA-L keeps none of them after it returns.
        let rc = unsafe {
            ffi::isal_deflate_stateless_init(s);
            (*s).level = self.level;
            (*s).level_buf = self.level_buf.as_mut_ptr();
            (*s).level_buf_size = self.level_buf.len() as u32;
            (*s).gzip_flag = ffi::IGZIP_GZIP as u16;
            (*s).end_of_stream = 1;
            (*s).flush = ffi::NO_FLUSH as u16;
            (*s).next_in = input.as_ptr().cast_mut();
            (*s).avail_in = avail_in;
            (*s).next_out = out.as_mut_ptr();
            (*s).avail_out = avail_out;
            ffi::isal_deflate_stateless(s)
        };
        // SAFETY: initialised by isal_deflate_stateless_init above.
        let (total_out, left_in) = unsafe { ((*s).total_out, (*s).avail_in) };
        if rc != ffi::COMP_OK as i32 || left_in != 0 {
            return Err(format!(
                "igzip failed on a block of {} bytes (code {rc}, {left_in} bytes left)",
                input.len()
            ));
        }
        Ok(total_out as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(member: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(member)
            .read_to_end(&mut back)
            .expect("a valid gzip member");
        back
    }

    /// Text, nothing, and bytes no code shortens (stored blocks) come back
    /// as they were, at every level, from one compressor reused.
    #[test]
    fn members_decode_to_their_blocks() {
        let text: Vec<u8> = (0..3000)
            .flat_map(|i| format!("{{\"event_type\":\"t{}\",\"n\":{i}}}\n", i % 7).into_bytes())
            .collect();
        // Past a block: a block holds at least one line, up to
        // route.max_line_bytes (4 MiB).
        let mut noise = vec![0u8; (1 << 20) + 17];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for b in &mut noise {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        for level in 0..=3 {
            let mut c = IsalGzip::new(level).unwrap();
            for block in [&text[..], &[][..], &noise[..], &text[..10]] {
                let mut out = vec![0; IsalGzip::bound(block.len())];
                let n = c.gzip(block, &mut out).unwrap();
                assert_eq!(gunzip(&out[..n]), block, "level {level}");
                // The same block again: the same bytes (parts roll over
                // at compressed sizes, so the keys depend on it).
                let mut again = vec![0; out.len()];
                let m = c.gzip(block, &mut again).unwrap();
                assert_eq!(out[..n], again[..m], "level {level}");
            }
            if level > 0 {
                let mut out = vec![0; IsalGzip::bound(text.len())];
                let n = c.gzip(&text, &mut out).unwrap();
                assert!(n < text.len() / 4, "level {level}: {n} bytes");
            }
        }
    }

    #[test]
    fn a_full_output_is_an_error_not_a_cut_member() {
        let mut c = IsalGzip::new(1).unwrap();
        let mut out = vec![0; 20];
        let e = c.gzip(&[b'a'; 4096], &mut out).unwrap_err();
        assert!(e.contains("igzip failed"), "{e}");
        assert!(IsalGzip::new(4).is_err());
    }
}
