//! Throughput of the text decoder and encoders on typical traffic, without a benchmark
//! framework (the crate takes no dependencies beyond proptest): each case runs for about
//! half a second and reports nanoseconds per operation. Run with
//! `cargo bench -p slabcached-proto`; pass a substring to run only matching cases.

#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use proto::text::{decode, write_value, Decoded, Reply};
use proto::Limits;

/// Runs `op` repeatedly for about `budget` and prints the mean time per call.
fn bench(name: &str, filter: &Option<String>, mut op: impl FnMut()) {
    if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
        return;
    }
    let budget = Duration::from_millis(500);
    // Warm caches and branch predictors, and size the batch so timer reads are noise.
    let mut batch = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..batch {
            op();
        }
        if start.elapsed() > Duration::from_millis(10) {
            break;
        }
        batch *= 2;
    }
    let mut calls = 0u64;
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..batch {
            op();
        }
        calls += batch;
    }
    let ns = start.elapsed().as_nanos() as f64 / calls as f64;
    println!("{name:<36} {ns:>9.1} ns/op");
}

/// Decodes every request in `input` once, as a server's read loop would.
fn decode_all(input: &[u8], limits: &Limits) -> usize {
    let mut at = 0;
    let mut n = 0;
    while at < input.len() {
        match decode(black_box(&input[at..]), limits) {
            Decoded::Request { consumed, .. } | Decoded::Error { consumed, .. } => {
                at += consumed;
                n += 1;
            }
            Decoded::Meta(_) | Decoded::Incomplete => break,
        }
    }
    n
}

fn main() {
    // `cargo bench` passes `--bench`; anything else is a name filter.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let limits = Limits::default();

    let get = b"get user:1234567890:profile\r\n";
    bench("decode get (1 key)", &filter, || {
        black_box(decode(black_box(get), &limits));
    });

    let mut multiget = b"get".to_vec();
    for i in 0..100 {
        multiget.extend_from_slice(format!(" user:{i:010}:profile").as_bytes());
    }
    multiget.extend_from_slice(b"\r\n");
    bench("decode get (100 keys) + iterate", &filter, || {
        if let Decoded::Request {
            request: proto::text::Request::Get { keys, .. },
            ..
        } = decode(black_box(&multiget), &limits)
        {
            black_box(keys.map(|k| k.len()).sum::<usize>());
        }
    });

    let mut set = b"set user:1234567890:profile 0 3600 100\r\n".to_vec();
    set.extend_from_slice(&[b'v'; 100]);
    set.extend_from_slice(b"\r\n");
    bench("decode set (100 B value)", &filter, || {
        black_box(decode(black_box(&set), &limits));
    });

    let mut big = b"set blob 0 0 65536\r\n".to_vec();
    big.extend_from_slice(&vec![b'x'; 65536]);
    big.extend_from_slice(b"\r\n");
    bench("decode set (64 KiB value)", &filter, || {
        black_box(decode(black_box(&big), &limits));
    });

    let partial = &big[..big.len() / 2];
    bench("decode set, data block incomplete", &filter, || {
        black_box(decode(black_box(partial), &limits));
    });

    let mut pipeline = Vec::new();
    for i in 0..50 {
        pipeline.extend_from_slice(format!("get key:{i}\r\n").as_bytes());
        pipeline.extend_from_slice(format!("set key:{i} 0 0 5 noreply\r\nhello\r\n").as_bytes());
        pipeline.extend_from_slice(format!("incr counter:{i} 1\r\n").as_bytes());
        pipeline.extend_from_slice(b"delete gone noreply\r\n");
    }
    bench("decode pipeline (200 requests)", &filter, || {
        black_box(decode_all(&pipeline, &limits));
    });

    let value = [b'v'; 100];
    let mut out = Vec::with_capacity(4096);
    bench("write_value (100 B, with cas)", &filter, || {
        out.clear();
        write_value(&mut out, b"user:1234567890:profile", 42, &value, Some(1 << 40));
        black_box(&out);
    });
    bench("Reply::Number encode", &filter, || {
        out.clear();
        Reply::Number(black_box(18_446_744_073_709_551_615)).encode(&mut out);
        black_box(&out);
    });
}
