//! Header views (placeholder until the parser lands).
