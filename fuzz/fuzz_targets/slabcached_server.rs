//! Whole-server target: the input is a script of byte streams on several connections, run
//! through read → decode → execute → encode → write against a tiny cache by
//! `slabcached::fuzzing::run`, which checks that nothing panics, buffers and item memory
//! stay within their bounds, the read budget is given back and the cache stays consistent.
#![no_main]
#![deny(unsafe_code)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    slabcached::fuzzing::run(data);
});
