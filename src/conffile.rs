//! `--config-file PATH`: flags read from a file in the format of Debian's
//! `/etc/memcached.conf`, placed before the command line's own so those win (clap keeps
//! the last of a repeated flag; `-l` accumulates).
//!
//! The format, as Debian's wrapper script reads it: one or more flags per line, split on
//! whitespace; `#` starts a comment unless escaped as `\#`; blank lines are skipped. Lines
//! that do not start with `-` (the `logfile PATH` directive) are ignored, as are `-d`
//! (the service manager does not want the process to fork) and `-h`. A file names no
//! other file: `--config-file` inside one is refused.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why the flags of a config file could not be read.
#[derive(Debug)]
pub enum ConfFileError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `--config-file` needs a path after it.
    MissingPath,
    /// A config file may not name another.
    Nested {
        path: PathBuf,
        line: usize,
    },
}

impl fmt::Display for ConfFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfFileError::Read { path, source } => {
                write!(f, "cannot read config file {}: {source}", path.display())
            }
            ConfFileError::MissingPath => f.write_str("--config-file needs a path"),
            ConfFileError::Nested { path, line } => write!(
                f,
                "{}:{line}: a config file cannot name another (--config-file)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ConfFileError {}

/// The words of one line, comment removed (`\#` is a literal `#`).
fn line_words(line: &str) -> Vec<String> {
    let mut text = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'#') => {
                text.push('#');
                chars.next();
            }
            '#' => break,
            c => text.push(c),
        }
    }
    text.split_whitespace().map(str::to_string).collect()
}

/// The flags `contents` (a config file's text) gives, in order; `path` names it in errors.
pub fn flags_of(contents: &str, path: &Path) -> Result<Vec<String>, ConfFileError> {
    let mut flags = Vec::new();
    for (i, line) in contents.lines().enumerate() {
        let words = line_words(line);
        let Some(first) = words.first() else {
            continue;
        };
        if !first.starts_with('-') {
            log::info!("{}:{}: `{first}` ignored (not a flag)", path.display(), i + 1);
            continue;
        }
        if first == "-d" || first == "-h" {
            continue;
        }
        if words.iter().any(|w| w.starts_with("--config-file")) {
            return Err(ConfFileError::Nested {
                path: path.to_path_buf(),
                line: i + 1,
            });
        }
        flags.extend(words);
    }
    Ok(flags)
}

/// The command line with the flags of its `--config-file` (if any) inserted after the
/// program name; without one, `argv` unchanged.
pub fn expand(argv: Vec<OsString>) -> Result<Vec<OsString>, ConfFileError> {
    let mut path = None;
    let mut words = argv.iter().skip(1);
    while let Some(word) = words.next() {
        if word == "--config-file" {
            path = Some(PathBuf::from(words.next().ok_or(ConfFileError::MissingPath)?));
        } else if let Some(p) = word.to_str().and_then(|w| w.strip_prefix("--config-file=")) {
            path = Some(PathBuf::from(p));
        }
    }
    let Some(path) = path else {
        return Ok(argv);
    };
    let contents = std::fs::read_to_string(&path).map_err(|source| ConfFileError::Read {
        path: path.clone(),
        source,
    })?;
    let mut out = Vec::with_capacity(argv.len() + 16);
    let mut argv = argv.into_iter();
    out.extend(argv.next());
    out.extend(flags_of(&contents, &path)?.into_iter().map(OsString::from));
    out.extend(argv);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Args, Config};
    use clap::Parser;

    fn config(argv: Vec<OsString>) -> Config {
        Config::from_args(&Args::try_parse_from(argv).expect("clap accepts")).expect("valid")
    }

    fn os(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    /// The shipped packaging/slabcached.conf means the same as its flags on a command line.
    #[test]
    fn the_shipped_conf_is_the_same_config_as_its_flags() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/slabcached.conf");
        let path_text = path.to_str().unwrap();
        let from_file = config(expand(os(&["slabcached", "--config-file", path_text])).unwrap());
        let contents = std::fs::read_to_string(&path).unwrap();
        let mut argv = os(&["slabcached"]);
        argv.extend(
            flags_of(&contents, &path)
                .unwrap()
                .into_iter()
                .map(OsString::from),
        );
        let from_flags = config(argv);
        assert_eq!(format!("{from_file:?}"), format!("{from_flags:?}"));
        // And it says what the file says.
        assert_eq!(from_file.memory_limit, 64 << 20);
        assert_eq!(from_file.listen, vec!["127.0.0.1:11211".parse().unwrap()]);
        assert!(!from_file.daemon);
    }

    #[test]
    fn memcached_conf_format() {
        let text = "# a comment\n-d\nlogfile /var/log/x.log\n  -m 128   # trailing\n\n-l 127.0.0.1\n-o modern,idle_timeout=7\n-vv\n-D \\#\n";
        let flags = flags_of(text, Path::new("t.conf")).unwrap();
        assert_eq!(
            flags,
            [
                "-m",
                "128",
                "-l",
                "127.0.0.1",
                "-o",
                "modern,idle_timeout=7",
                "-vv",
                "-D",
                "#"
            ]
        );
        let mut argv = os(&["slabcached"]);
        argv.extend(flags.iter().map(OsString::from));
        let c = config(argv);
        assert_eq!((c.memory_limit, c.idle_timeout, c.verbosity), (128 << 20, 7, 2));
        assert_eq!(c.prefix_delimiter, '#');
        assert!(!c.daemon);
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let dir = std::env::temp_dir().join(format!("slabcached-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.conf");
        std::fs::write(&path, "-m 128\n-c 99\n").unwrap();
        let p = path.to_str().unwrap();
        let c = config(expand(os(&["slabcached", &format!("--config-file={p}"), "-m", "32"])).unwrap());
        assert_eq!((c.memory_limit, c.max_connections), (32 << 20, 99));
        std::fs::write(&path, "--config-file /etc/other\n").unwrap();
        assert!(matches!(
            expand(os(&["slabcached", "--config-file", p])),
            Err(ConfFileError::Nested { line: 1, .. })
        ));
        assert!(matches!(
            expand(os(&["slabcached", "--config-file", "/nonexistent/x.conf"])),
            Err(ConfFileError::Read { .. })
        ));
        assert!(matches!(
            expand(os(&["slabcached", "--config-file"])),
            Err(ConfFileError::MissingPath)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
