//! # surgewatch-export (placeholder)
