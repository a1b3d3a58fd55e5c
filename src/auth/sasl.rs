//! Cyrus SASL (the system's libsasl2) for the binary protocol's `-S`: the same library,
//! service name (`memcached`) and configuration search as memcached, so an existing
//! deployment's `memcached.conf` (`mech_list`, `sasldb_path`) and `saslpasswd2 -a memcached`
//! users work unchanged.
//!
//! Our own bindings to the seven calls used, rather than the `sasl2-sys` crate: that crate
//! builds libsasl2 from source or probes for it with a build script, where one `#[link]`
//! to the installed library is all we need. This is the only module of the server with
//! FFI; each `unsafe` block says why it is sound.
//!
//! Callbacks given to the library, as memcached gives them:
//! - the configuration path: `SASL_CONF_PATH`, else `/etc/sasl/memcached.conf` or
//!   `/etc/sasl2/memcached.conf` (a file there means its directory; a directory is used as is);
//! - log messages, forwarded to `log` by severity;
//! - with `MEMCACHED_SASL_PWDB` set, a plain-password check against that file of
//!   `user:password` lines, re-read at each check ([`pwdb_matches`]); when it fails the
//!   library goes on to its own password check (sasldb). A user in the default realm (the
//!   host name) may be written without it.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr, CString};
use std::sync::OnceLock;

const SASL_OK: c_int = 0;
const SASL_CONTINUE: c_int = 1;
const SASL_FAIL: c_int = -1;
const SASL_NOAUTHZ: c_int = -14;
const SASL_CB_LIST_END: c_ulong = 0;
const SASL_CB_LOG: c_ulong = 2;
const SASL_CB_GETCONFPATH: c_ulong = 5;
const SASL_CB_SERVER_USERDB_CHECKPASS: c_ulong = 0x8005;
/// memcached's limit on one `user:password` line of the PWDB file.
const PWDB_LINE_MAX: usize = 256;

/// `sasl_callback_t`: the procedure's type depends on `id`, so it is an untyped pointer here.
#[repr(C)]
struct Callback {
    id: c_ulong,
    procedure: *const c_void,
    context: *mut c_void,
}

#[repr(C)]
struct RawConn {
    _opaque: [u8; 0],
}

#[link(name = "sasl2")]
extern "C" {
    fn sasl_server_init(callbacks: *const Callback, appname: *const c_char) -> c_int;
    fn sasl_server_new(
        service: *const c_char,
        server_fqdn: *const c_char,
        user_realm: *const c_char,
        iplocalport: *const c_char,
        ipremoteport: *const c_char,
        callbacks: *const Callback,
        flags: c_uint,
        pconn: *mut *mut RawConn,
    ) -> c_int;
    fn sasl_listmech(
        conn: *mut RawConn,
        user: *const c_char,
        prefix: *const c_char,
        sep: *const c_char,
        suffix: *const c_char,
        result: *mut *const c_char,
        plen: *mut c_uint,
        pcount: *mut c_int,
    ) -> c_int;
    fn sasl_server_start(
        conn: *mut RawConn,
        mech: *const c_char,
        clientin: *const c_char,
        clientinlen: c_uint,
        serverout: *mut *const c_char,
        serveroutlen: *mut c_uint,
    ) -> c_int;
    fn sasl_server_step(
        conn: *mut RawConn,
        clientin: *const c_char,
        clientinlen: c_uint,
        serverout: *mut *const c_char,
        serveroutlen: *mut c_uint,
    ) -> c_int;
    fn sasl_dispose(pconn: *mut *mut RawConn);
}

/// What one authentication step gave.
#[derive(Debug, PartialEq, Eq)]
pub enum StepResult {
    /// Authenticated.
    Done,
    /// The mechanism needs another round: send this challenge.
    Continue(Vec<u8>),
    /// Refused (bad credentials, unknown mechanism, a step before any start, ...).
    Failed(c_int),
}

/// The realm given to each connection: the host name, as memcached gives it, so users
/// created by `saslpasswd2 -a memcached user` (whose default realm is the host name) match.
static REALM: OnceLock<Option<CString>> = OnceLock::new();
/// The `MEMCACHED_SASL_PWDB` file, if set at start.
static PWDB: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
static INIT: OnceLock<Result<(), String>> = OnceLock::new();

/// Initialise the library once per process (before any connection); an error means
/// SASL cannot be offered and the server must not start.
pub fn init() -> Result<(), String> {
    INIT.get_or_init(|| {
        let pwdb = std::env::var_os("MEMCACHED_SASL_PWDB").map(std::path::PathBuf::from);
        let with_pwdb = pwdb.is_some();
        let _ = PWDB.set(pwdb);
        let _ = REALM.set(hostname());
        let mut callbacks = Vec::new();
        if with_pwdb {
            callbacks.push(Callback {
                id: SASL_CB_SERVER_USERDB_CHECKPASS,
                procedure: pwdb_checkpass as *const c_void,
                context: std::ptr::null_mut(),
            });
        }
        callbacks.push(Callback {
            id: SASL_CB_LOG,
            procedure: log_message as *const c_void,
            context: std::ptr::null_mut(),
        });
        callbacks.push(Callback {
            id: SASL_CB_GETCONFPATH,
            procedure: config_path as *const c_void,
            context: std::ptr::null_mut(),
        });
        callbacks.push(Callback {
            id: SASL_CB_LIST_END,
            procedure: std::ptr::null(),
            context: std::ptr::null_mut(),
        });
        // The library keeps the pointer for the life of the process.
        let callbacks: &'static [Callback] = Vec::leak(callbacks);
        // SAFETY: `callbacks` is a LIST_END-terminated array of valid entries that lives
        // forever (leaked above); each procedure has the C signature its id calls for; the
        // app name is a NUL-terminated literal. OnceLock runs this once per process.
        let rc = unsafe { sasl_server_init(callbacks.as_ptr(), c"memcached".as_ptr()) };
        if rc == SASL_OK {
            Ok(())
        } else {
            Err(format!("Error initializing sasl (code {rc})."))
        }
    })
    .clone()
}

fn hostname() -> Option<CString> {
    let mut buf = [0u8; 1025];
    // SAFETY: gethostname writes at most len bytes into the buffer we own; one byte is
    // kept back so the result is NUL-terminated even when truncated.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return None;
    }
    let name = CStr::from_bytes_until_nul(&buf).ok()?;
    (!name.is_empty()).then(|| name.to_owned())
}

/// One connection's SASL state (`sasl_conn_t`), disposed of when dropped.
pub struct SaslConn {
    raw: *mut RawConn,
}

// SAFETY: a sasl_conn_t is owned by one connection and used through `&mut self` only, so
// by one thread at a time; libsasl2 keeps no thread-local state tied to the creating
// thread (memcached likewise hands connections between its threads).
unsafe impl Send for SaslConn {}

impl SaslConn {
    /// A new server-side context for service `memcached`; `None` if the library refuses.
    pub fn new() -> Option<SaslConn> {
        let realm = REALM.get().and_then(|r| r.as_ref());
        let mut raw = std::ptr::null_mut();
        // SAFETY: init() succeeded before any connection exists (the server starts only
        // then); every string is NUL-terminated or NULL; `raw` is a valid out-pointer.
        let rc = unsafe {
            sasl_server_new(
                c"memcached".as_ptr(),
                std::ptr::null(),
                realm.map_or(std::ptr::null(), |r| r.as_ptr()),
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                0,
                &mut raw,
            )
        };
        (rc == SASL_OK && !raw.is_null()).then_some(SaslConn { raw })
    }

    /// The mechanisms offered, separated by spaces.
    pub fn mechanisms(&mut self) -> Option<Vec<u8>> {
        let mut result: *const c_char = std::ptr::null();
        let mut len: c_uint = 0;
        // SAFETY: `raw` is a live context owned by self; the strings are NUL-terminated
        // literals; the result points into the context and is copied before any other call.
        let rc = unsafe {
            sasl_listmech(
                self.raw,
                std::ptr::null(),
                c"".as_ptr(),
                c" ".as_ptr(),
                c"".as_ptr(),
                &mut result,
                &mut len,
                std::ptr::null_mut(),
            )
        };
        (rc == SASL_OK).then(|| copy_out(result, len))
    }

    /// `SASL_AUTH`: start `mechanism` with the client's first response.
    pub fn start(&mut self, mechanism: &CStr, data: &[u8]) -> StepResult {
        let (input, len) = client_input(data);
        let mut out: *const c_char = std::ptr::null();
        let mut out_len: c_uint = 0;
        // SAFETY: live context; `mechanism` is NUL-terminated; `input` points to `len`
        // bytes (or is NULL with len 0) that outlive the call; out-pointers are valid.
        let rc =
            unsafe { sasl_server_start(self.raw, mechanism.as_ptr(), input, len, &mut out, &mut out_len) };
        result(rc, out, out_len)
    }

    /// `SASL_STEP`: the client's next response.
    pub fn step(&mut self, data: &[u8]) -> StepResult {
        let (input, len) = client_input(data);
        let mut out: *const c_char = std::ptr::null();
        let mut out_len: c_uint = 0;
        // SAFETY: as in `start`.
        let rc = unsafe { sasl_server_step(self.raw, input, len, &mut out, &mut out_len) };
        result(rc, out, out_len)
    }
}

impl Drop for SaslConn {
    fn drop(&mut self) {
        // SAFETY: `raw` came from sasl_server_new and is disposed of exactly once, here.
        unsafe { sasl_dispose(&mut self.raw) };
    }
}

/// memcached passes no input (NULL) for an empty value.
fn client_input(data: &[u8]) -> (*const c_char, c_uint) {
    if data.is_empty() {
        (std::ptr::null(), 0)
    } else {
        (
            data.as_ptr().cast(),
            data.len().min(c_uint::MAX as usize) as c_uint,
        )
    }
}

fn result(rc: c_int, out: *const c_char, len: c_uint) -> StepResult {
    match rc {
        SASL_OK => StepResult::Done,
        SASL_CONTINUE => StepResult::Continue(copy_out(out, len)),
        other => StepResult::Failed(other),
    }
}

fn copy_out(ptr: *const c_char, len: c_uint) -> Vec<u8> {
    if ptr.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY: the library returned `len` readable bytes at `ptr`, valid until the next
    // call on the same context; they are copied at once.
    unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len as usize) }.to_vec()
}

/// SASL_CB_LOG: the library's messages, by severity (1 error .. 7 password traces).
extern "C" fn log_message(_context: *mut c_void, level: c_int, message: *const c_char) -> c_int {
    if message.is_null() {
        return SASL_OK;
    }
    // SAFETY: the library passes a NUL-terminated message valid for this call.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
    match level {
        0 => {}
        1 => log::error!("SASL: {text}"),
        2 | 3 => log::info!("SASL: {text}"),
        _ => log::debug!("SASL: {text}"),
    }
    SASL_OK
}

/// Where memcached looks for `memcached.conf` when `SASL_CONF_PATH` is not set.
fn conf_dir() -> Option<String> {
    if let Ok(path) = std::env::var("SASL_CONF_PATH") {
        return Some(path);
    }
    for dir in ["/etc/sasl", "/etc/sasl2"] {
        let conf = format!("{dir}/memcached.conf");
        if std::path::Path::new(&format!("{conf}/memcached.conf")).exists() {
            return Some(conf);
        }
        if std::path::Path::new(&conf).exists() {
            return Some(dir.to_string());
        }
    }
    None
}

/// SASL_CB_GETCONFPATH: the directory holding `memcached.conf`.
extern "C" fn config_path(_context: *mut c_void, path: *mut *mut c_char) -> c_int {
    let Some(dir) = conf_dir().and_then(|d| CString::new(d).ok()) else {
        log::info!("SASL: no configuration path (set SASL_CONF_PATH)");
        return SASL_FAIL;
    };
    log::info!("SASL: reading configuration from <{}>", dir.to_string_lossy());
    // SAFETY: the library may free() the path, so it is allocated with malloc (strdup);
    // `path` is the library's valid out-pointer.
    unsafe { *path = libc::strdup(dir.as_ptr()) };
    SASL_OK
}

/// SASL_CB_SERVER_USERDB_CHECKPASS: `user` / `pass` against the `MEMCACHED_SASL_PWDB` file.
extern "C" fn pwdb_checkpass(
    _conn: *mut RawConn,
    _context: *mut c_void,
    user: *const c_char,
    pass: *const c_char,
    pass_len: c_uint,
    _propctx: *mut c_void,
) -> c_int {
    let Some(Some(file)) = PWDB.get() else {
        return SASL_NOAUTHZ;
    };
    if user.is_null() || pass.is_null() {
        return SASL_NOAUTHZ;
    }
    // SAFETY: the library passes a NUL-terminated user and `pass_len` bytes of password,
    // both valid for this call.
    let (user, pass) = unsafe {
        (
            CStr::from_ptr(user).to_bytes(),
            std::slice::from_raw_parts(pass.cast::<u8>(), pass_len as usize),
        )
    };
    log::debug!(
        "SASL: checking <{}> against MEMCACHED_SASL_PWDB",
        String::from_utf8_lossy(user)
    );
    let Ok(contents) = std::fs::read(file) else {
        log::info!("SASL: cannot read MEMCACHED_SASL_PWDB {}", file.display());
        return SASL_NOAUTHZ;
    };
    // The library hands over `user@realm`, the realm being the host name unless the client
    // named one. memcached compares that whole name, so its `user:password` lines match
    // only when written `user@host:password`; both forms are accepted here.
    let bare = REALM
        .get()
        .and_then(|r| r.as_ref())
        .and_then(|realm| user.strip_suffix(realm.to_bytes()))
        .and_then(|u| u.strip_suffix(b"@"));
    if pwdb_matches(&contents, user, pass) || bare.is_some_and(|u| pwdb_matches(&contents, u, pass)) {
        SASL_OK
    } else {
        log::info!(
            "SASL: user <{}> failed to authenticate",
            String::from_utf8_lossy(user)
        );
        SASL_NOAUTHZ
    }
}

/// memcached's PWDB rule: the first line starting `user:` decides; its password runs to
/// the next `:` (further fields are ignored), line end or the end of the file. A user and
/// password longer than a 256-byte line allows are refused.
pub fn pwdb_matches(contents: &[u8], user: &[u8], pass: &[u8]) -> bool {
    if user.len() + pass.len() > PWDB_LINE_MAX - 4 {
        return false;
    }
    for line in contents.split(|&b| b == b'\n') {
        let Some(rest) = line.strip_prefix(user).and_then(|r| r.strip_prefix(b":")) else {
            continue;
        };
        return rest.starts_with(pass) && matches!(rest.get(pass.len()), None | Some(b':' | b'\r' | 0));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::pwdb_matches;

    #[test]
    fn pwdb_lines() {
        let db = b"alice:secret\nbob:pw:extra\r\ncarol:x\r\n";
        assert!(pwdb_matches(db, b"alice", b"secret"));
        assert!(!pwdb_matches(db, b"alice", b"secre"));
        assert!(!pwdb_matches(db, b"alice", b"secrets"));
        assert!(pwdb_matches(db, b"bob", b"pw"));
        assert!(pwdb_matches(db, b"carol", b"x"));
        assert!(!pwdb_matches(db, b"dave", b"x"));
        assert!(!pwdb_matches(db, b"ali", b"ce:secret"));
        assert!(!pwdb_matches(db, b"alice", &[b'a'; 300]));
    }
}
