//! Decoder and encoder tests.
