//! The command line against memcached's parsing, checks and messages.

use super::*;

fn parse(args: &[&str]) -> Result<Config, ConfigError> {
    let mut v = vec!["slabcached"];
    v.extend_from_slice(args);
    Config::from_args(&Args::try_parse_from(v).expect("clap accepts"))
}

#[test]
fn defaults_are_memcacheds() {
    let c = parse(&[]).unwrap();
    assert_eq!(c.port, 11211);
    assert_eq!(c.memory_limit, 64 << 20);
    assert_eq!(c.max_connections, 1024);
    assert_eq!(c.threads, 4);
    assert_eq!(c.item_size_max, 1 << 20);
    assert_eq!(c.listen, vec!["127.0.0.1:11211".parse().unwrap()]);
}

#[test]
fn sizes_take_suffixes() {
    assert_eq!(parse(&["-I", "512k"]).unwrap().item_size_max, 512 * 1024);
    assert_eq!(parse(&["-I", "2m"]).unwrap().item_size_max, 2 << 20);
    // memcached 1.6.18 needs chunks no larger than the item limit (half a page by default).
    let small = parse(&["-I", "1024", "-o", "slab_chunk_max=1024"]).unwrap();
    assert_eq!(small.item_size_max, 1024);
    assert!(parse(&["-I", "1024"]).is_err());
}

#[test]
fn invalid_values_are_refused() {
    for bad in [
        &["-c", "0"][..],
        &["-t", "0"],
        &["-I", "1000"],
        &["-B", "http"],
        &["-l", "fooble.invalid."],
        &["-f", "1"],
        &["-n", "0"],
        &["-R", "0"],
        &["-o", "nonsense"],
        &["-p", "70000"],
        &["-m", "2", "-I", "2m"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn item_size_max_is_checked_the_same_whichever_flag_set_it() {
    for args in [
        &["-m", "2", "-I", "2m"][..],
        &["-m", "2", "-o", "item_size_max=2m"],
    ] {
        let e = parse(args).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Cannot set item size limit higher than 1/2 of memory max."
        );
        assert_eq!(e.exit_code(), 64);
    }
    for args in [
        &["-m", "4096", "-I", "2g"][..],
        &["-m", "4096", "-o", "item_size_max=2g"],
    ] {
        let e = parse(args).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Cannot set item size limit higher than a gigabyte."
        );
    }
    // memcached reads every flag before it checks: a later -m makes an earlier -I fit.
    assert_eq!(
        parse(&["-I", "64m", "-m", "256"]).unwrap().item_size_max,
        64 << 20
    );
}

#[test]
fn the_memory_cap_is_the_engines() {
    let largest = slabcache::MAX_MEMORY_LIMIT >> 20;
    assert!(parse(&["-m", &largest.to_string()]).is_ok());
    let e = parse(&["-m", &(largest + 1).to_string()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("Memory limit too large: at most {largest} megabytes")
    );
    // Past the 32 GiB that 8-byte units of 32-bit links address: the engine's unit grows.
    assert!(parse(&["-m", "1048576"]).is_ok());
}

#[test]
fn repeated_flags_keep_the_last_and_listen_accumulates() {
    let c = parse(&["-m", "32", "-m", "48", "-l", "127.0.0.1", "-l", "::1"]).unwrap();
    assert_eq!(c.memory_limit, 48 << 20);
    assert_eq!(c.listen.len(), 2);
}

#[test]
fn listen_lists_and_extended_options() {
    let c = parse(&["-l", "127.0.0.1,::1", "-p", "5000", "-o", "modern,idle_timeout=5"]).unwrap();
    assert_eq!(c.listen.len(), 2);
    assert_eq!(c.idle_timeout, 5);
    assert!(parse(&["-U", "0"]).is_ok());
}

fn refusal(args: &[&str]) -> ConfigError {
    parse(args).expect_err("accepted")
}

#[test]
fn slab_and_lru_defaults_are_memcacheds() {
    let c = parse(&[]).unwrap();
    assert!(c.slab_reassign && c.lru_maintainer);
    assert_eq!(c.slab_chunk_max, 524_288);
    assert_eq!(c.slab_automove_window, 30);
    assert_eq!(c.tunables, Tunables::default());
    assert_eq!(parse(&["-I", "2m"]).unwrap().slab_chunk_max, 524_288);
}

#[test]
fn slab_and_lru_options() {
    let c = parse(&[
        "-o",
        "no_slab_reassign,slab_automove=2,slab_automove_ratio=0.5,slab_automove_window=-1",
        "-o",
        "no_lru_crawler,lru_crawler_sleep=0,lru_crawler_tocrawl=4294967297,slab_chunk_max=16384",
        "-o",
        "hot_lru_pct=10,warm_lru_pct=12x,hot_max_factor=nan,warm_max_factor=1e1,temporary_ttl=9",
    ])
    .unwrap();
    assert!(!c.slab_reassign);
    assert_eq!(c.slab_automove_window, u32::MAX);
    assert_eq!(c.slab_chunk_max, 16384);
    let t = &c.tunables;
    assert_eq!((t.slab_automove, t.slab_automove_ratio), (2, 0.5));
    assert_eq!(
        (t.lru_crawler, t.lru_crawler_sleep, t.lru_crawler_tocrawl),
        (false, 0, 1)
    );
    assert_eq!((t.hot_lru_pct, t.warm_lru_pct, t.warm_max_factor), (10, 12, 10.0));
    assert!(t.hot_max_factor.is_nan());
    assert_eq!((t.temp_lru, t.temporary_ttl), (true, 9));
    assert_eq!(parse(&["-o", "slab_automove"]).unwrap().tunables.slab_automove, 1);
    assert_eq!(
        parse(&["-o", "slab_automove=abc"])
            .unwrap()
            .tunables
            .slab_automove,
        0
    );
    let modern_off = parse(&["-o", "no_modern"]).unwrap();
    assert!(!modern_off.slab_reassign && !modern_off.lru_maintainer && !modern_off.tunables.lru_crawler);
    assert_eq!(modern_off.slab_chunk_max, 1 << 20);
    assert!(
        !parse(&["-o", "no_lru_maintainer"])
            .unwrap()
            .tunables
            .lru_segmented
    );
}

#[test]
fn slab_and_lru_refusals_say_what_memcached_says() {
    for (args, text, code) in [
        (
            &["-o", "slab_automove=3"][..],
            "slab_automove must be between 0 and 2",
            1,
        ),
        (
            &["-o", "slab_automove_ratio=1.5"],
            "slab_automove_ratio must be > 0 and < 1",
            1,
        ),
        (
            &["-o", "slab_automove_ratio"],
            "Missing slab_automove_ratio argument",
            1,
        ),
        (
            &["-o", "slab_automove_window=2"],
            "slab_automove_window must be > 2",
            1,
        ),
        (
            &["-o", "lru_crawler_sleep=-1"],
            "LRU crawler sleep must be between 0 and 1 second",
            1,
        ),
        (&["-o", "lru_crawler_sleep"], "Missing lru_crawler_sleep value", 1),
        (
            &["-o", "lru_crawler_tocrawl=x"],
            "lru_crawler_tocrawl takes a numeric 32bit value",
            1,
        ),
        (&["-o", "hot_lru_pct=80"], "hot_lru_pct must be > 1 and < 80", 1),
        (&["-o", "hot_lru_pct"], "Missing hot_lru_pct argument", 1),
        (&["-o", "hot_max_factor=0"], "hot_max_factor must be > 0", 1),
        (
            &["-o", "slab_chunk_max=x"],
            "could not parse argument to slab_chunk_max",
            1,
        ),
        (&["-o", "lru_segmented"], "Illegal suboption \"lru_segmented\"", 1),
        (&["-o", "temp_lru"], "Illegal suboption \"temp_lru\"", 1),
        (
            &["-I", "100k"],
            "slab_chunk_max (bytes: 524288) cannot be larger than -I (item_size_max 102400)",
            64,
        ),
        (
            &["-I", "1000k"],
            "-I (item_size_max: 1024000) must be evenly divisible by slab_chunk_max (bytes: 524288)",
            64,
        ),
        (
            &["-o", "slab_chunk_max=1000"],
            "-I (item_size_max: 1048576) must be evenly divisible by slab_chunk_max (bytes: 1000)",
            64,
        ),
        (
            &["-I", "2m", "-o", "slab_chunk_max=2097152"],
            "slab_chunk_max (bytes: 2097152) must divide evenly into 1048576 (slab_page_size)",
            64,
        ),
        (
            &["-o", "hot_lru_pct=50,warm_lru_pct=40"],
            "hot_lru_pct + warm_lru_pct cannot be more than 80% combined",
            64,
        ),
        (
            &["-o", "temporary_ttl=5,no_lru_maintainer"],
            "temporary_ttl requires lru_maintainer to be enabled",
            64,
        ),
    ] {
        let e = refusal(args);
        assert_eq!((e.to_string().as_str(), e.exit_code()), (text, code), "{args:?}");
    }
}

#[test]
fn tls_options_take_memcacheds_names_and_values() {
    let c = parse(&[
        "-Z",
        "-l",
        "127.0.0.1,notls:127.0.0.1:5001",
        "-o",
        "ssl_chain_cert=/c.pem,ssl_key=/k.pem,ssl_ca_cert=/ca.pem,ssl_verify_mode=3",
        "-o",
        "ssl_wbuf_size=64,ssl_session_cache,ssl_min_version=tlsv1.3,ssl_keyformat=2",
    ])
    .unwrap();
    let t = &c.tls;
    assert!(t.enabled && t.session_cache);
    assert_eq!(t.chain_cert.as_deref(), Some(std::path::Path::new("/c.pem")));
    assert_eq!((t.verify_mode, t.verify_flags()), (3, 7));
    assert_eq!((t.wbuf_size, t.min_version, t.keyformat), (65536, 3, 2));
    assert_eq!(c.listen.len(), 2);
    assert_eq!(c.notls_listen, vec!["127.0.0.1:5001".parse().unwrap()]);
    // Below TLS 1.2 is taken and served as 1.2, the oldest rustls has.
    let old = parse(&["-Z", "-o", "ssl_chain_cert=/c,ssl_min_version=0"]).unwrap();
    assert_eq!(old.tls.min_version, 0);
    assert_eq!(
        TlsOptions::version_name(old.tls.effective_min_version()),
        "tlsv1.2"
    );
    assert_eq!(parse(&[]).unwrap().tls, TlsOptions::default());
}

#[test]
fn tls_refusals_say_what_memcached_says() {
    for (args, text, code) in [
        (
            &["-l", "notls:127.0.0.1:5001"][..],
            "'notls' option is valid only when SSL is enabled",
            1,
        ),
        (
            &["-Z", "-o", "ssl_chain_cert=/c,ssl_verify_mode=4"],
            "Invalid ssl_verify_mode. Use help to see valid options.",
            1,
        ),
        (
            &["-Z", "-o", "ssl_chain_cert=/c,ssl_verify_mode=x"],
            "could not parse argument to ssl_verify_mode",
            1,
        ),
        (
            &["-Z", "-o", "ssl_chain_cert=/c,ssl_min_version=4"],
            "Invalid ssl_min_version. Use help to see valid options.",
            1,
        ),
        (&["-Z", "-o", "ssl_key"], "Missing ssl_key argument", 1),
        (
            &["-Z", "-s", "/tmp/x.sock", "-o", "ssl_chain_cert=/c"],
            "ERROR: You cannot enable SSL without a TCP port.",
            64,
        ),
    ] {
        let e = refusal(args);
        assert_eq!((e.to_string().as_str(), e.exit_code()), (text, code), "{args:?}");
    }
}

#[test]
fn c_number_prefixes() {
    assert_eq!(c_atoi("12abc"), 12);
    assert_eq!(c_atoi(" -7"), -7);
    assert_eq!(c_atoi("x"), 0);
    assert_eq!(c_atoi("4294967297"), 1);
    assert_eq!(c_atof("0.25x"), 0.25);
    assert_eq!(c_atof("x"), 0.0);
}

#[test]
fn ports_follow_memcacheds_rules() {
    // -U alone moves TCP to the same port; -1 asks the kernel for one (bound as port 0).
    let udp_only = parse(&["-U", "11300"]).unwrap();
    assert_eq!((udp_only.port, udp_only.udp_port), (11300, 11300));
    assert_eq!(udp_only.listen, vec!["127.0.0.1:11300".parse().unwrap()]);
    let ephemeral = parse(&["-p", "-1", "-U", "-1"]).unwrap();
    assert_eq!((ephemeral.port, ephemeral.udp_port), (-1, -1));
    assert_eq!(bind_port(ephemeral.port), 0);
    assert_eq!(ephemeral.listen, vec!["127.0.0.1:0".parse().unwrap()]);
    assert_eq!(parse(&["-p", "0", "-U", "11301"]).unwrap().port, 0);
    assert!(parse(&["-p", "70000"]).is_err());
    assert!(parse(&["-p", "-2"]).is_err());
}

#[test]
fn extstore_options_are_accepted_without_effect() {
    // A memcached command line with flash storage starts; the items stay in memory.
    let c = parse(&[
        "-o",
        "ext_page_size=8,ext_path=/tmp/nowhere:64m,ext_item_size=512,ext_threads=2,ext_io_depth=1",
        "-o",
        "ext_wbuf_size=4,ext_item_age=60,ext_low_ttl=10,ext_recache_rate=2000,ext_compact_under=10",
        "-o",
        "ext_drop_under=5,ext_max_sleep=100,ext_max_frag=0.8,ext_drop_unread",
    ]);
    assert!(c.is_ok());
    assert!(parse(&["-o", "ext_bogus=1"]).is_err());
}
