//! Unit tests of the cluster node list: node entries, the body format, cluster files (comments,
//! version lines, errors, reloads), command-line sources, `config set`/`config delete`
//! of the cluster key, the separate keyspace for other keys, and readers seeing whole
//! snapshots while the file changes.

use super::*;

fn node(host: &str, ip: &str, port: u16) -> Node {
    Node {
        host: host.to_string(),
        ip: ip.parse().unwrap(),
        port,
    }
}

/// A cluster file in a fresh temporary directory, removed on drop.
struct TempFile {
    dir: PathBuf,
    path: PathBuf,
}

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let dir = std::env::temp_dir().join(format!("slabcached-cluster-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nodes");
        std::fs::write(&path, text).unwrap();
        TempFile { dir, path }
    }

    fn write(&self, text: &str) {
        std::fs::write(&self.path, text).unwrap();
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn file_cluster(file: &TempFile, config_set: bool) -> Cluster {
    Cluster::new(
        Some(file.path.clone()),
        read_file(&file.path).unwrap(),
        config_set,
    )
}

#[test]
fn body_format_and_count() {
    let c = Cluster::single("localhost", Ipv4Addr::LOCALHOST, 11211);
    assert_eq!(c.body(), b"1\nlocalhost|127.0.0.1|11211\n");
    let config = ClusterConfig {
        version: 12,
        nodes: vec![
            node("a.example", "10.0.0.1", 11211),
            node("b.example", "10.0.0.2", 11212),
        ],
    };
    let body = config.body();
    assert_eq!(body, b"12\na.example|10.0.0.1|11211 b.example|10.0.0.2|11212\n");
    // The count in the CONFIG line is the body's length: the version line, the node line
    // and its closing LF.
    let expected = "12\n".len() + "a.example|10.0.0.1|11211 b.example|10.0.0.2|11212".len() + 1;
    assert_eq!(body.len(), expected);
    assert_eq!(
        c.config_get(b"cluster"),
        Some((0, b"1\nlocalhost|127.0.0.1|11211\n".to_vec()))
    );
    assert_eq!(c.config_get(b"other"), None);
}

#[test]
fn node_entries() {
    assert_eq!(
        parse_node("h1|10.1.2.3|11211", false),
        Ok(node("h1", "10.1.2.3", 11211))
    );
    assert_eq!(
        parse_node("10.1.2.3:11212", false),
        Ok(node("10.1.2.3", "10.1.2.3", 11212))
    );
    assert_eq!(
        parse_node("localhost:11213", true),
        Ok(node("localhost", "127.0.0.1", 11213))
    );
    assert_eq!(
        parse_node("localhost||11213", true),
        Ok(node("localhost", "127.0.0.1", 11213))
    );
    assert_eq!(parse_node("localhost:11213", false), Err(NodeError::IpRequired));
    assert_eq!(parse_node("h1", true), Err(NodeError::Syntax));
    assert_eq!(parse_node("h1|10.0.0.1", true), Err(NodeError::Syntax));
    assert_eq!(parse_node("h1:", true), Err(NodeError::Port));
    assert_eq!(parse_node("h1|10.0.0.1|1|2", true), Err(NodeError::Syntax));
    assert_eq!(parse_node("|10.0.0.1|11211", true), Err(NodeError::Host));
    assert_eq!(parse_node("h 1|10.0.0.1|11211", true), Err(NodeError::Host));
    assert_eq!(parse_node("[::1]:11211", true), Err(NodeError::Host));
    assert_eq!(parse_node("h1|::1|11211", true), Err(NodeError::Ip));
    assert_eq!(parse_node("h1|10.0.0|11211", true), Err(NodeError::Ip));
    assert_eq!(parse_node("h1|10.0.0.256|11211", true), Err(NodeError::Ip));
    for port in ["0", "65536", "+80", "-1", "", "80a"] {
        assert_eq!(
            parse_node(&format!("h1|10.0.0.1|{port}"), true),
            Err(NodeError::Port),
            "{port}"
        );
    }
    // (A failed lookup gives NodeError::Resolve; not exercised here: tests make no DNS queries.)
}

#[test]
fn file_comments_blank_lines_version_and_order() {
    let text = "# three nodes\n\
                \n\
                version 7   # pinned\n\
                c|10.0.0.3|11211\n\
                \t a|10.0.0.1|11212  \n\
                127.0.0.1:11213\r\n\
                a|10.0.0.1|11211\n";
    let list = parse_file_text(text, "f").unwrap();
    assert_eq!(list.version, Some(7));
    // Sorted by hostname, then port.
    assert_eq!(
        list.nodes,
        vec![
            node("127.0.0.1", "127.0.0.1", 11213),
            node("a", "10.0.0.1", 11211),
            node("a", "10.0.0.1", 11212),
            node("c", "10.0.0.3", 11211),
        ]
    );
    let err = parse_file_text("a|10.0.0.1|1\na|x|1\n", "f").unwrap_err();
    assert!(err.to_string().starts_with("f:2: "), "{err}");
}

#[test]
fn file_errors() {
    let err = |text: &str| parse_file_text(text, "f").unwrap_err();
    assert!(matches!(err(""), ClusterError::Empty { .. }));
    assert!(matches!(
        err("# only a comment\n\nversion 3\n"),
        ClusterError::Empty { .. }
    ));
    assert!(matches!(
        err("a|10.0.0.1|1\nb|10.0.0.2|oops\n"),
        ClusterError::Entry { ref origin, error: NodeError::Port, .. } if origin == "f:2"
    ));
    assert!(matches!(
        err("a|10.0.0.1|1 b|10.0.0.2|2\n"),
        ClusterError::Entry {
            error: NodeError::Syntax,
            ..
        }
    ));
    assert!(matches!(
        err("version 0\na|10.0.0.1|1\n"),
        ClusterError::BadVersion { .. }
    ));
    assert!(matches!(
        err("version\na|10.0.0.1|1\n"),
        ClusterError::BadVersion { .. }
    ));
    assert!(matches!(
        err("version 1 2\na|10.0.0.1|1\n"),
        ClusterError::BadVersion { .. }
    ));
    assert!(matches!(
        err("version 9223372036854775808\na|10.0.0.1|1\n"),
        ClusterError::BadVersion { .. }
    ));
    assert!(matches!(
        err("version 1\nversion 2\na|10.0.0.1|1\n"),
        ClusterError::VersionTwice { .. }
    ));
    // Same host and port, or same ip and port: one server listed twice.
    assert!(matches!(
        err("a|10.0.0.1|1\na|10.0.0.2|1\n"),
        ClusterError::Duplicate { .. }
    ));
    assert!(matches!(
        err("a|10.0.0.1|1\nb|10.0.0.1|1\n"),
        ClusterError::Duplicate { .. }
    ));
    assert!(parse_file_text("a|10.0.0.1|1\na|10.0.0.1|2\n", "f").is_ok());
    let missing = read_file(Path::new("/nonexistent/slabcached/cluster")).unwrap_err();
    assert!(matches!(missing, ClusterError::Read { .. }));
}

#[test]
fn reload_bumps_version_only_on_change() {
    let file = TempFile::new("bump", "a|10.0.0.1|1\nb|10.0.0.2|2\n");
    let c = file_cluster(&file, false);
    assert_eq!(c.version(), 1);
    assert_eq!(c.try_reload().unwrap(), ReloadOutcome::Unchanged { version: 1 });
    // Same nodes in another order and with comments: unchanged.
    file.write("# reordered\nb|10.0.0.2|2\na|10.0.0.1|1\n");
    assert_eq!(c.try_reload().unwrap(), ReloadOutcome::Unchanged { version: 1 });
    file.write("a|10.0.0.1|1\nb|10.0.0.2|2\nc|10.0.0.3|3\n");
    assert_eq!(c.try_reload().unwrap(), ReloadOutcome::Updated { from: 1, to: 2 });
    assert_eq!(c.body(), b"2\na|10.0.0.1|1 b|10.0.0.2|2 c|10.0.0.3|3\n");
    file.write("a|10.0.0.1|1\n");
    assert_eq!(c.try_reload().unwrap(), ReloadOutcome::Updated { from: 2, to: 3 });
    assert_eq!(c.body(), b"3\na|10.0.0.1|1\n");
}

#[test]
fn invalid_file_keeps_the_old_list() {
    let file = TempFile::new("invalid", "a|10.0.0.1|1\n");
    let c = file_cluster(&file, false);
    let before = c.body();
    for bad in [
        "a|10.0.0.1|1\nb|not-an-ip|2\n",
        "",
        "version 1\nversion 2\na|10.0.0.1|1\n",
    ] {
        file.write(bad);
        assert!(c.try_reload().is_err(), "{bad:?}");
        c.reload(); // logs, does not panic
        assert_eq!(c.body(), before);
    }
    std::fs::remove_file(&file.path).unwrap();
    assert!(matches!(c.try_reload(), Err(ClusterError::Read { .. })));
    assert_eq!(c.body(), before);
    // A good file again is taken, at the next version.
    file.write("b|10.0.0.2|2\n");
    assert_eq!(c.try_reload().unwrap(), ReloadOutcome::Updated { from: 1, to: 2 });
}

#[test]
fn version_line_rules() {
    let file = TempFile::new("version", "version 5\na|10.0.0.1|1\n");
    let c = file_cluster(&file, false);
    assert_eq!(c.version(), 5);
    // A higher version line with the same list is adopted (nodes converge on it).
    file.write("version 6\na|10.0.0.1|1\n");
    assert_eq!(c.try_reload().unwrap(), ReloadOutcome::Updated { from: 5, to: 6 });
    // A lower one with the same list changes nothing: the version never goes down.
    file.write("version 2\na|10.0.0.1|1\n");
    assert_eq!(c.try_reload().unwrap(), ReloadOutcome::Unchanged { version: 6 });
    // A changed list whose version line was not raised is refused.
    file.write("version 6\na|10.0.0.1|1\nb|10.0.0.2|2\n");
    assert!(matches!(
        c.try_reload(),
        Err(ClusterError::VersionNotRaised { file: 6, current: 6 })
    ));
    assert_eq!(c.config().nodes.len(), 1);
    file.write("version 9\na|10.0.0.1|1\nb|10.0.0.2|2\n");
    assert_eq!(c.try_reload().unwrap(), ReloadOutcome::Updated { from: 6, to: 9 });
    // Without a version line, a change bumps by one.
    file.write("a|10.0.0.1|1\n");
    assert_eq!(
        c.try_reload().unwrap(),
        ReloadOutcome::Updated { from: 9, to: 10 }
    );
}

#[test]
fn no_file_reload_is_a_no_op() {
    let c = Cluster::single("localhost", Ipv4Addr::LOCALHOST, 1);
    assert_eq!(c.try_reload().unwrap(), ReloadOutcome::NoFile);
    assert_eq!(c.version(), 1);
}

#[test]
fn config_set_disabled_by_default() {
    let c = Cluster::single("localhost", Ipv4Addr::LOCALHOST, 1);
    assert_eq!(
        c.config_set(b"cluster", 0, b"2\na|10.0.0.1|1\n"),
        Err(ConfigChangeError::Disabled)
    );
    assert_eq!(c.config_set(b"k", 0, b"v"), Err(ConfigChangeError::Disabled));
    assert_eq!(c.config_delete(b"cluster"), Err(ConfigChangeError::Disabled));
    assert_eq!(c.config_delete(b"k"), Err(ConfigChangeError::Disabled));
    assert_eq!(c.version(), 1);
}

#[test]
fn config_set_and_delete_cluster() {
    let file = TempFile::new("set", "a|10.0.0.1|1\n");
    let c = file_cluster(&file, true);
    assert_eq!(c.config_delete(b"cluster"), Err(ConfigChangeError::NotFound));
    // Not above the served version, bad flags, bad bodies: refused, nothing changes.
    for (flags, body) in [
        (0, &b"1\nb|10.0.0.2|2\n"[..]),
        (1, b"2\nb|10.0.0.2|2\n"),
        (0, b"2\n"),
        (0, b"2\n\n"),
        (0, b"x\nb|10.0.0.2|2\n"),
        (0, b"2\nb|10.0.0.2|2\nextra\n"),
        (0, b"2\nlocalhost:2\n"),
        (0, b"2\nb|10.0.0.2|2 b|10.0.0.2|2\n"),
        (0, b"2\nb|10.0.0.2|\xff\n"),
    ] {
        assert_eq!(
            c.config_set(b"cluster", flags, body),
            Err(ConfigChangeError::Invalid),
            "{body:?}"
        );
    }
    assert_eq!(c.body(), b"1\na|10.0.0.1|1\n");
    // Re-sending the served body is accepted.
    assert_eq!(c.config_set(b"cluster", 0, b"1\na|10.0.0.1|1\n"), Ok(()));
    assert_eq!(c.config_delete(b"cluster"), Err(ConfigChangeError::NotFound));
    // A higher version is served as given, sorted, final newline optional, CRLF accepted.
    assert_eq!(
        c.config_set(b"cluster", 0, b"4\r\nz|10.0.0.9|9  b|10.0.0.2|2"),
        Ok(())
    );
    assert_eq!(c.body(), b"4\nb|10.0.0.2|2 z|10.0.0.9|9\n");
    // Delete goes back to the configured list, one version up.
    assert_eq!(c.config_delete(b"cluster"), Ok(()));
    assert_eq!(c.body(), b"5\na|10.0.0.1|1\n");
    assert_eq!(c.config_delete(b"cluster"), Err(ConfigChangeError::NotFound));
    // A SIGHUP makes the file authoritative again over a set list.
    assert_eq!(c.config_set(b"cluster", 0, b"8\nb|10.0.0.2|2\n"), Ok(()));
    assert_eq!(c.try_reload().unwrap(), ReloadOutcome::Updated { from: 8, to: 9 });
    assert_eq!(c.body(), b"9\na|10.0.0.1|1\n");
    assert_eq!(c.config_delete(b"cluster"), Err(ConfigChangeError::NotFound));
}

#[test]
fn other_keys_live_apart_and_are_bounded() {
    let c = Cluster::new(
        None,
        NodeList {
            version: None,
            nodes: vec![node("a", "10.0.0.1", 1)],
        },
        true,
    );
    assert_eq!(c.config_set(b"note", 42, b"hello"), Ok(()));
    assert_eq!(c.config_get(b"note"), Some((42, b"hello".to_vec())));
    assert_eq!(c.config_set(b"note", 7, b""), Ok(()));
    assert_eq!(c.config_get(b"note"), Some((7, Vec::new())));
    assert_eq!(c.config_delete(b"note"), Ok(()));
    assert_eq!(c.config_get(b"note"), None);
    assert_eq!(c.config_delete(b"note"), Err(ConfigChangeError::NotFound));
    assert_eq!(
        c.config_set(b"big", 0, &vec![b'x'; MAX_OTHER_VALUE + 1]),
        Err(ConfigChangeError::Invalid)
    );
    for i in 0..MAX_OTHER_KEYS {
        assert_eq!(c.config_set(format!("k{i}").as_bytes(), 0, b"v"), Ok(()));
    }
    assert_eq!(
        c.config_set(b"one-too-many", 0, b"v"),
        Err(ConfigChangeError::Invalid)
    );
    // Replacing an existing key is still allowed at the limit.
    assert_eq!(c.config_set(b"k0", 0, b"w"), Ok(()));
    assert_eq!(c.version(), 1);
}

#[test]
fn sources_from_the_command_line() {
    let args = |extra: &[&str]| {
        let mut argv = vec!["slabcached", "-p", "11299"];
        argv.extend_from_slice(extra);
        let args = <crate::config::Args as clap::Parser>::try_parse_from(argv).unwrap();
        Config::from_args(&args).unwrap()
    };
    let alone = Cluster::from_config(&args(&[]), 11299).unwrap();
    assert_eq!(alone.body(), b"1\nlocalhost|127.0.0.1|11299\n");
    let nodes = Cluster::from_config(
        &args(&["--cluster-node", "b|10.0.0.2|2", "--cluster-node", "10.0.0.1:1"]),
        11299,
    )
    .unwrap();
    assert_eq!(nodes.body(), b"1\n10.0.0.1|10.0.0.1|1 b|10.0.0.2|2\n");
    assert!(matches!(
        Cluster::from_config(&args(&["--cluster-node", "b|x|2"]), 1),
        Err(ClusterError::Entry { .. })
    ));
    let file = TempFile::new("cli", "version 3\na|10.0.0.1|1\n");
    let path = file.path.to_str().unwrap();
    let from_file = Cluster::from_config(&args(&["--cluster-config", path]), 1).unwrap();
    assert_eq!(from_file.body(), b"3\na|10.0.0.1|1\n");
    assert!(matches!(
        Cluster::from_config(&args(&["--cluster-config", path, "--cluster-node", "a:1"]), 1),
        Err(ClusterError::BothSources)
    ));
}

#[test]
fn readers_see_whole_snapshots_while_the_file_changes() {
    let file = TempFile::new("threads", "n01|10.0.0.1|1\n");
    let c = Arc::new(file_cluster(&file, true));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                let mut last = 0;
                for _ in 0..2000 {
                    let (flags, body) = c.config_get(b"cluster").unwrap();
                    assert_eq!(flags, 0);
                    let text = String::from_utf8(body).unwrap();
                    let (version, nodes) = text.split_once('\n').unwrap();
                    let version: u64 = version.parse().unwrap();
                    assert!(version >= last, "version went down");
                    last = version;
                    // Version v lists v nodes: a torn snapshot would not.
                    assert_eq!(nodes.trim_end().split(' ').count() as u64, version);
                }
            })
        })
        .collect();
    let mut text = String::new();
    for i in 1..=20 {
        text.push_str(&format!("n{i:02}|10.0.0.{i}|{i}\n"));
        file.write(&text);
        c.try_reload().unwrap();
    }
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(c.version(), 20);
}
