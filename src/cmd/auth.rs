//! Authentication commands, as memcached 1.6 runs them: SASL's `LIST_MECHS`, `AUTH` and
//! `STEP` on the binary protocol (`-S`), and the text protocol's `set <any> ... \r\nuser
//! password` against the authfile (`-Y`). Both count `auth_cmds`, and `auth_errors` when
//! refused; both set the connection's [`Session::authenticated`].
//!
//! memcached's quirk kept here: every SASL command first marks the connection
//! unauthenticated, so listing the mechanisms after authenticating undoes it.

use std::ffi::CString;

use crate::auth::sasl::{SaslConn, StepResult};
use crate::auth::Session;
use crate::context::Context;
use crate::stats::{bump, Counters};

/// What a SASL command answers.
#[derive(Debug, PartialEq, Eq)]
pub enum SaslReply {
    /// `LIST_MECHS`: the mechanisms, space-separated (status 0).
    Mechanisms(Vec<u8>),
    /// Authenticated: status 0, body `Authenticated`.
    Authenticated,
    /// Another round (status 0x21) with the server's challenge.
    Continue(Vec<u8>),
    /// `Auth failure.` (status 0x20); the connection stays open.
    Failed,
    /// The mechanism name is longer than memcached takes (status 0x04).
    InvalidArguments,
}

/// memcached's per-command set-up: unauthenticated from here on, and a SASL context made
/// if the connection has none yet.
fn begin(session: &mut Session) {
    session.authenticated = false;
    if session.sasl.is_none() {
        session.sasl = SaslConn::new();
        if session.sasl.is_none() {
            log::info!("failed to initialize a SASL connection");
        }
    }
}

/// `SASL_LIST_MECHS`.
pub fn list_mechanisms(session: &mut Session) -> SaslReply {
    begin(session);
    match session.sasl.as_mut().and_then(SaslConn::mechanisms) {
        Some(list) => SaslReply::Mechanisms(list),
        None => SaslReply::Failed,
    }
}

/// `SASL_AUTH` (`step == false`) or `SASL_STEP`, with the mechanism from the key and the
/// client's data from the value.
pub fn authenticate(
    step: bool,
    mechanism: &[u8],
    data: &[u8],
    session: &mut Session,
    counters: &Counters,
) -> SaslReply {
    if mechanism.len() > proto::binary::MAX_SASL_MECH_LEN {
        return SaslReply::InvalidArguments;
    }
    begin(session);
    // memcached copies the name into a C string: it ends at a NUL.
    let name = &mechanism[..mechanism.iter().position(|&b| b == 0).unwrap_or(mechanism.len())];
    let name = CString::new(name).expect("no NUL left in the name");
    let result = match (session.sasl.as_mut(), step) {
        (Some(conn), false) => {
            let result = conn.start(&name, data);
            session.sasl_started = matches!(result, StepResult::Done | StepResult::Continue(_));
            result
        }
        (Some(conn), true) if session.sasl_started => conn.step(data),
        _ => StepResult::Failed(-1),
    };
    match result {
        StepResult::Done => {
            session.authenticated = true;
            bump(&counters.auth_cmds, 1);
            SaslReply::Authenticated
        }
        // memcached counts an exchange once, when it ends.
        StepResult::Continue(challenge) => SaslReply::Continue(challenge),
        StepResult::Failed(code) => {
            log::debug!("SASL authentication failed (code {code})");
            bump(&counters.auth_cmds, 1);
            bump(&counters.auth_errors, 1);
            SaslReply::Failed
        }
    }
}

/// The text protocol's authentication: `user` / `password` against the authfile.
/// Returns whether the connection is now authenticated.
pub fn authfile_login(
    user: &[u8],
    password: &[u8],
    ctx: &Context,
    session: &mut Session,
    counters: &Counters,
) -> bool {
    bump(&counters.auth_cmds, 1);
    if ctx.auth.check_authfile(user, password) {
        session.authenticated = true;
        true
    } else {
        bump(&counters.auth_errors, 1);
        false
    }
}
