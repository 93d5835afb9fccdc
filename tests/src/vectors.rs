//! Shared test vectors (filled in below).
