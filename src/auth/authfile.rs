//! The `-Y` authfile: `user:password` lines, as memcached 1.6 reads them. The password
//! runs from the first `:` to the end of the line (a trailing `\r` is not part of it); a
//! line without `:` makes the whole file malformed. Blank lines are skipped. memcached
//! keeps only the first 8 entries (its own FIXME); every entry counts here.

use std::fmt;
use std::path::{Path, PathBuf};

/// The loaded entries.
#[derive(Debug, Default, Clone)]
pub struct AuthFile {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Why an authfile could not be loaded (memcached's messages).
#[derive(Debug)]
pub enum AuthFileError {
    Open(PathBuf, std::io::Error),
    Malformed(PathBuf),
}

impl fmt::Display for AuthFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthFileError::Open(path, e) => {
                write!(
                    f,
                    "Could not open authfile [{}] for reading, error {e}",
                    path.display()
                )
            }
            AuthFileError::Malformed(path) => write!(
                f,
                "Authfile [{}] has a malformed entry. Should be 'user:password'",
                path.display()
            ),
        }
    }
}

impl std::error::Error for AuthFileError {}

impl AuthFile {
    pub fn load(path: &Path) -> Result<AuthFile, AuthFileError> {
        let contents = std::fs::read(path).map_err(|e| AuthFileError::Open(path.to_owned(), e))?;
        AuthFile::parse(&contents).ok_or_else(|| AuthFileError::Malformed(path.to_owned()))
    }

    /// The entries of `contents`, or `None` if a line has no `:`.
    pub fn parse(contents: &[u8]) -> Option<AuthFile> {
        let mut entries = Vec::new();
        for line in contents.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let colon = line.iter().position(|&b| b == b':')?;
            let pass = &line[colon + 1..];
            // memcached's password also stops at a stray `\r` or NUL.
            let end = pass
                .iter()
                .position(|&b| b == b'\r' || b == 0)
                .unwrap_or(pass.len());
            entries.push((line[..colon].to_vec(), pass[..end].to_vec()));
        }
        Some(AuthFile { entries })
    }

    /// Whether `user` / `pass` is an entry; every entry is compared in full, so the time
    /// taken does not tell how much of a guess was right.
    pub fn check(&self, user: &[u8], pass: &[u8]) -> bool {
        let mut found = false;
        for (u, p) in &self.entries {
            found |= constant_time_eq(u, user) & constant_time_eq(p, pass);
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::AuthFile;

    #[test]
    fn parses_and_checks() {
        let f = AuthFile::parse(b"foo:bar\r\nbaaaz:quux\n\nempty:\nc:a:b").unwrap();
        assert!(f.check(b"foo", b"bar"));
        assert!(f.check(b"baaaz", b"quux"));
        assert!(f.check(b"empty", b""));
        assert!(f.check(b"c", b"a:b"));
        assert!(!f.check(b"foo", b"bab"));
        assert!(!f.check(b"foo", b"ba"));
        assert!(!f.check(b"fo", b"bar"));
        assert!(AuthFile::parse(b"foo:bar\nnocolon\n").is_none());
    }
}
