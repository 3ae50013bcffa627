//! # surgewatch-tuning (placeholder)
