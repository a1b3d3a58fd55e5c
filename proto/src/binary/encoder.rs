//! Encoding response frames.

use super::*;

/// Appends one response frame.
///
/// # Panics
///
/// If `extras` is longer than 255 bytes, `key` longer than 65535 bytes, or the body longer
/// than `u32::MAX`: the header cannot express those, and the server never produces them.
#[allow(clippy::too_many_arguments)] // mirrors the header fields one to one
pub fn write_response(
    out: &mut Vec<u8>,
    opcode: u8,
    status: Status,
    opaque: u32,
    cas: u64,
    extras: &[u8],
    key: &[u8],
    value: &[u8],
) {
    write_response_head(out, opcode, status, opaque, cas, extras, key, value.len());
    out.extend_from_slice(value);
}

/// Appends a response frame up to its value, for a value of `value_len` bytes that the
/// caller appends next (so a server can write a stored value straight from where it is).
///
/// # Panics
///
/// As [`write_response`].
#[allow(clippy::too_many_arguments)] // mirrors the header fields one to one
pub fn write_response_head(
    out: &mut Vec<u8>,
    opcode: u8,
    status: Status,
    opaque: u32,
    cas: u64,
    extras: &[u8],
    key: &[u8],
    value_len: usize,
) {
    let extras_len = u8::try_from(extras.len()).expect("binary extras longer than 255 bytes");
    let key_len = u16::try_from(key.len()).expect("binary key longer than 65535 bytes");
    let body_len =
        u32::try_from(extras.len() + key.len() + value_len).expect("binary body longer than 4 GiB");
    out.reserve(HEADER_LEN + body_len as usize);
    out.push(MAGIC_RESPONSE);
    out.push(opcode);
    out.extend_from_slice(&key_len.to_be_bytes());
    out.push(extras_len);
    out.push(0); // data type: raw bytes
    out.extend_from_slice(&status.code().to_be_bytes());
    out.extend_from_slice(&body_len.to_be_bytes());
    out.extend_from_slice(&opaque.to_be_bytes());
    out.extend_from_slice(&cas.to_be_bytes());
    out.extend_from_slice(extras);
    out.extend_from_slice(key);
}

/// Appends an error reply the way memcached writes them: no extras, no key, cas 0, and
/// [`Status::message`] as the body.
pub fn write_error(out: &mut Vec<u8>, opcode: impl Into<u8>, status: Status, opaque: u32) {
    write_response(out, opcode.into(), status, opaque, 0, &[], &[], status.message());
}

/// Appends a bodiless success reply carrying `cas` (store, delete, flush, noop, quit,
/// stat reset...). memcached sends the new cas after a store and 0 otherwise.
pub fn write_status_only(out: &mut Vec<u8>, opcode: impl Into<u8>, status: Status, opaque: u32, cas: u64) {
    write_response(out, opcode.into(), status, opaque, cas, &[], &[], &[]);
}

/// Appends a get/gat hit: 4-byte flags extras, the key for the `K` opcodes (pass the key
/// always; it is only written when `opcode.returns_key()`), then the value.
pub fn write_get_hit(
    out: &mut Vec<u8>,
    opcode: Opcode,
    opaque: u32,
    cas: u64,
    flags: u32,
    key: &[u8],
    value: &[u8],
) {
    write_get_hit_head(out, opcode, opaque, cas, flags, key, value.len());
    out.extend_from_slice(value);
}

/// [`write_get_hit`] up to the value, which the caller appends (`value_len` bytes).
pub fn write_get_hit_head(
    out: &mut Vec<u8>,
    opcode: Opcode,
    opaque: u32,
    cas: u64,
    flags: u32,
    key: &[u8],
    value_len: usize,
) {
    let key = if opcode.returns_key() { key } else { &[] };
    write_response_head(
        out,
        opcode.into(),
        Status::NoError,
        opaque,
        cas,
        &flags.to_be_bytes(),
        key,
        value_len,
    );
}

/// Appends a get/gat/touch miss: `GetK`/`GatK` (and their config twin) echo the key with
/// no text; the others send `Not found`. Callers check [`suppresses`] first for quiet ones.
pub fn write_get_miss(out: &mut Vec<u8>, opcode: Opcode, opaque: u32, key: &[u8]) {
    if opcode.returns_key() {
        write_response(out, opcode.into(), Status::KeyNotFound, opaque, 0, &[], key, &[]);
    } else {
        write_error(out, opcode, Status::KeyNotFound, opaque);
    }
}

/// Appends a `Touch` hit: flags extras, no key, no value.
pub fn write_touch_hit(out: &mut Vec<u8>, opcode: Opcode, opaque: u32, cas: u64, flags: u32) {
    write_response(
        out,
        opcode.into(),
        Status::NoError,
        opaque,
        cas,
        &flags.to_be_bytes(),
        &[],
        &[],
    );
}

/// Appends an `Increment`/`Decrement` success: the new value as 8 big-endian bytes.
pub fn write_arith(out: &mut Vec<u8>, opcode: Opcode, opaque: u32, cas: u64, value: u64) {
    write_response(
        out,
        opcode.into(),
        Status::NoError,
        opaque,
        cas,
        &[],
        &[],
        &value.to_be_bytes(),
    );
}

/// Appends the `Version` reply (memcached's body is e.g. `1.6.18`).
pub fn write_version(out: &mut Vec<u8>, opaque: u32, version: &[u8]) {
    write_response(
        out,
        Opcode::Version.into(),
        Status::NoError,
        opaque,
        0,
        &[],
        &[],
        version,
    );
}

/// Appends one stat packet: name in the key, value in the value, opcode `Stat`.
pub fn write_stat(out: &mut Vec<u8>, opaque: u32, name: &[u8], value: &[u8]) {
    write_response(
        out,
        Opcode::Stat.into(),
        Status::NoError,
        opaque,
        0,
        &[],
        name,
        value,
    );
}

/// Appends the empty stat packet that ends a stat listing (also the whole reply to
/// `Stat` with group `reset`).
pub fn write_stat_end(out: &mut Vec<u8>, opaque: u32) {
    write_stat(out, opaque, &[], &[]);
}

/// Appends a `ConfigGet` hit: 4-byte flags extras, key for the `K` forms, config body.
pub fn write_config_hit(
    out: &mut Vec<u8>,
    opcode: Opcode,
    opaque: u32,
    cas: u64,
    flags: u32,
    key: &[u8],
    body: &[u8],
) {
    write_get_hit(out, opcode, opaque, cas, flags, key, body);
}
