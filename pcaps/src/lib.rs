//! # surgewatch-pcaps (placeholder)
