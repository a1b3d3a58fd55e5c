//! CPU time of a process from `/proc/<pid>/stat` (utime + stime), in seconds.
//!
//! Used for the server's CPU time over the measured window (`--server-pid`) and for the
//! generator's own, which tells whether the generator itself was the bottleneck. The kernel
//! counts these in clock ticks (usually 100 per second), so a 5 s window has 10 ms resolution.

use std::fs;

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of `pid` (or `self`) in seconds, `None` if the process is gone or unreadable.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let text = fs::read_to_string(path).ok()?;
    parse_stat(&text).map(|ticks| ticks as f64 / ticks_per_second())
}

/// utime + stime ticks from the text of a stat file. The command name (field 2) is in
/// parentheses and may contain spaces, so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<u64> {
    let after = &text[text.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace();
    // After ")": field 3 (state) is index 0, so utime (field 14) is index 11, stime index 12.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_line() {
        let line = "1234 (mem cached) S 1 1234 1234 0 -1 4194560 300 0 0 0 250 75 0 0 20 0 4 0";
        assert_eq!(parse_stat(line), Some(325));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_own_cpu() {
        assert!(cpu_seconds(None).is_some());
    }
}
