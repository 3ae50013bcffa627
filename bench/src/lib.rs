//! # surgewatch-bench (placeholder)
