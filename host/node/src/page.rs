//! The live page each node serves at `/` on its status address.

/// The page.
pub const PAGE: &str = include_str!("page.html");
