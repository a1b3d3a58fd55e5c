//! The text reply encoders: status lines, numbers, versions, errors, `VALUE` blocks,
//! `STAT` and `CONFIG` lines, and `lru_crawler metadump` lines, byte for byte as memcached
//! 1.6.18 writes them.

use super::*;

#[test]
fn metadump_lines_match_memcached() {
    // Lines memcached 1.6.18 wrote for `set b\x01c 5 100 2` and `set ~-._%Z 0 0 3`.
    let mut out = Vec::new();
    write_metadump_item(
        &mut out,
        &MetadumpItem {
            key: b"b\x01c",
            exptime: Some(1796415978),
            last_access: 1796415878,
            cas: 2,
            fetched: false,
            class: 1,
            size: 68,
        },
    );
    write_metadump_item(
        &mut out,
        &MetadumpItem {
            key: b"~-._%Z",
            exptime: None,
            last_access: 1796415878,
            cas: 3,
            fetched: true,
            class: 12,
            size: 68,
        },
    );
    assert_eq!(
        out,
        b"key=b%01c exp=1796415978 la=1796415878 cas=2 fetch=no cls=1 size=68\n\
          key=~-._%25Z exp=-1 la=1796415878 cas=3 fetch=yes cls=12 size=68\n"
    );
    out.clear();
    let every: Vec<u8> = (0..=255).collect();
    write_metadump_item(
        &mut out,
        &MetadumpItem {
            key: &every,
            exptime: None,
            last_access: 0,
            cas: 0,
            fetched: false,
            class: 1,
            size: 0,
        },
    );
    let line = String::from_utf8(out).unwrap();
    let key = line.strip_prefix("key=").unwrap().split(' ').next().unwrap();
    assert_eq!(key.len(), 66 + 190 * 3, "66 bytes kept, the others escaped");
    assert!(key.starts_with("%00%01") && key.contains("%2C-.%2F0123"));
    assert!(key.ends_with("%FE%FF"));
}

#[test]
fn encoders() {
    let mut out = Vec::new();
    for r in [
        Reply::Stored,
        Reply::NotStored,
        Reply::Exists,
        Reply::NotFound,
        Reply::Deleted,
        Reply::Touched,
        Reply::Ok,
        Reply::End,
        Reply::Error,
        Reply::Reset,
        Reply::MetaNoop,
        Reply::Number(0),
        Reply::Number(u64::MAX),
        Reply::Version("1.6.18"),
        Reply::ClientError(ClientError::NonNumericValue),
        Reply::ServerError(ServerError::OutOfMemoryStoring),
        ProtoError::MemlimitAdjustFailed.into(),
        Reply::Proto(ProtoError::LineTooLong),
    ] {
        r.encode(&mut out);
    }
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "STORED\r\nNOT_STORED\r\nEXISTS\r\nNOT_FOUND\r\nDELETED\r\nTOUCHED\r\nOK\r\nEND\r\n\
         ERROR\r\nRESET\r\nMN\r\n0\r\n18446744073709551615\r\nVERSION 1.6.18\r\n\
         CLIENT_ERROR cannot increment or decrement non-numeric value\r\n\
         SERVER_ERROR out of memory storing object\r\n\
         MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust\r\n"
    );

    let mut out = Vec::new();
    write_value(&mut out, b"k", 5, b"x", None);
    write_value(&mut out, b"a\tb", u32::MAX, b"", Some(45));
    write_end(&mut out);
    assert_eq!(
        out,
        b"VALUE k 5 1\r\nx\r\nVALUE a\tb 4294967295 0 45\r\n\r\nEND\r\n"
    );

    let mut out = Vec::new();
    write_value_header(&mut out, b"k", 0, 1_048_576, Some(0));
    assert_eq!(out, b"VALUE k 0 1048576 0\r\n");

    let mut out = Vec::new();
    write_stat(&mut out, "pid", 3678);
    write_stat(&mut out, format_args!("{}:chunk_size", 1), 96);
    write_stat(&mut out, "version", "1.6.18");
    assert_eq!(
        out,
        b"STAT pid 3678\r\nSTAT 1:chunk_size 96\r\nSTAT version 1.6.18\r\n"
    );

    let mut out = Vec::new();
    write_config(&mut out, b"cluster", 0, b"1\nhost|10.0.0.1|11211\n");
    assert_eq!(out, b"CONFIG cluster 0 22\r\n1\nhost|10.0.0.1|11211\n\r\nEND\r\n");
}
