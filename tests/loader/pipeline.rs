//! End to end (filled below).
