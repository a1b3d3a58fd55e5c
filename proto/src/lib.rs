//! placeholder: owned by the text-protocol work; see module files.
#![forbid(unsafe_code)]
