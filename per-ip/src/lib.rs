//! # surgewatch-per-ip (placeholder)
