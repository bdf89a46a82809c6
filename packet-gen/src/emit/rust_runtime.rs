//! The fixed part of the generated Rust: header constant, error types, and the private
//! encode/decode helpers every packet impl calls.

use std::fmt::Write as _;

use super::rust::ALLOW;
use crate::model::StringEncoding;

/// Constants and error types, at the top of the file.
pub(super) fn prelude(w: &mut String) {
    let _ = writeln!(
        w,
        r#"/// Bytes of the frame header: `[u16 size incl. header][u16 id]`.
{ALLOW}
pub const HEADER_SIZE: usize = 4;

/// Why [`Packet::decode`] rejected a frame.
{ALLOW}
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {{
    /// The frame is shorter than its header or than its fields need.
    Truncated {{
        /// Bytes needed to go on.
        needed: usize,
        /// Bytes in the frame.
        available: usize,
    }},
    /// The header's size field disagrees with the frame's length.
    SizeMismatch {{
        /// Size field of the header.
        header: u16,
        /// Length of the frame passed in.
        actual: usize,
    }},
    /// No packet has this id.
    UnknownId(u16),
    /// A string is not valid in the schema's encoding (odd UTF-16 length, unpaired
    /// surrogate, or bad UTF-8).
    InvalidString {{
        /// `Packet.field` path of the string.
        field: &'static str,
    }},
    /// A list count larger than the remaining bytes could hold.
    ListTooLong {{
        /// `Packet.field` path of the list.
        field: &'static str,
        /// Count read from the frame.
        count: u16,
        /// Bytes left in the frame after the count.
        remaining: usize,
    }},
    /// Bytes left over after the packet's last field.
    TrailingBytes {{
        /// Name of the packet.
        packet: &'static str,
        /// Number of unread bytes.
        extra: usize,
    }},
}}

{ALLOW}
impl ::core::fmt::Display for DecodeError {{
    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {{
        match self {{
            DecodeError::Truncated {{ needed, available }} => write!(
                f,
                "truncated frame: needed {{needed}} bytes, frame has {{available}}"
            ),
            DecodeError::SizeMismatch {{ header, actual }} => write!(
                f,
                "frame size field says {{header}} bytes but the frame has {{actual}}"
            ),
            DecodeError::UnknownId(id) => write!(f, "unknown packet id {{id}}"),
            DecodeError::InvalidString {{ field }} => write!(f, "invalid string in {{field}}"),
            DecodeError::ListTooLong {{
                field,
                count,
                remaining,
            }} => write!(
                f,
                "list {{field}} claims {{count}} elements but only {{remaining}} bytes remain"
            ),
            DecodeError::TrailingBytes {{ packet, extra }} => {{
                write!(f, "{{extra}} trailing bytes after packet {{packet}}")
            }}
        }}
    }}
}}

{ALLOW}
impl ::std::error::Error for DecodeError {{}}

/// Why a packet could not be encoded.
{ALLOW}
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {{
    /// The frame would exceed 65,535 bytes.
    TooLarge {{
        /// Size the frame would have.
        size: usize,
    }},
    /// A string longer than 65,535 bytes once encoded.
    StringTooLong {{
        /// `Packet.field` path of the string.
        field: &'static str,
        /// Encoded length in bytes.
        len: usize,
    }},
    /// A list with more than 65,535 elements.
    ListTooLong {{
        /// `Packet.field` path of the list.
        field: &'static str,
        /// Number of elements.
        len: usize,
    }},
}}

{ALLOW}
impl ::core::fmt::Display for EncodeError {{
    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {{
        match self {{
            EncodeError::TooLarge {{ size }} => {{
                write!(f, "frame of {{size}} bytes exceeds the 65535-byte limit")
            }}
            EncodeError::StringTooLong {{ field, len }} => {{
                write!(f, "string {{field}} is {{len}} bytes, more than 65535")
            }}
            EncodeError::ListTooLong {{ field, len }} => {{
                write!(f, "list {{field}} has {{len}} elements, more than 65535")
            }}
        }}
    }}
}}

{ALLOW}
impl ::std::error::Error for EncodeError {{}}
"#
    );
}

/// Private encode/decode helpers, at the end of the file.
pub(super) fn runtime(w: &mut String, encoding: StringEncoding) {
    let (str_len, put_str, read_str) = match encoding {
        StringEncoding::Utf16Le => (
            "s.chars().map(char::len_utf16).sum::<usize>() * 2",
            r#"    __pg_put_count(buf, __pg_str_len(s));
    if s.is_ascii() {
        buf.reserve(s.len() * 2);
        for b in s.bytes() {
            buf.extend_from_slice(&[b, 0]);
        }
        return;
    }
    for unit in s.encode_utf16() {
        buf.extend_from_slice(&unit.to_le_bytes());
    }"#,
            r#"        if bytes.len() % 2 != 0 {
            return Err(DecodeError::InvalidString { field });
        }
        let mut out = ::std::string::String::with_capacity(bytes.len() / 2);
        // ASCII needs no surrogate logic: the common case (chat, names) takes this loop.
        let mut rest = bytes;
        while let [lo @ 0..=0x7F, 0, tail @ ..] = rest {
            out.push(char::from(*lo));
            rest = tail;
        }
        let units = rest
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
        for c in ::core::char::decode_utf16(units) {
            out.push(c.map_err(|_| DecodeError::InvalidString { field })?);
        }
        Ok(out)"#,
        ),
        StringEncoding::Utf8 => (
            "s.len()",
            r#"    __pg_put_count(buf, s.len());
    buf.extend_from_slice(s.as_bytes());"#,
            r#"        match ::core::str::from_utf8(bytes) {
            Ok(s) => Ok(::std::string::String::from(s)),
            Err(_) => Err(DecodeError::InvalidString { field }),
        }"#,
        ),
    };
    let _ = writeln!(
        w,
        r#"{ALLOW}
fn __pg_put_header(buf: &mut ::bytes::BytesMut, size: usize, id: u16) {{
    __pg_put_count(buf, size);
    buf.extend_from_slice(&id.to_le_bytes());
}}

/// Writes a length already checked to fit in a u16.
{ALLOW}
fn __pg_put_count(buf: &mut ::bytes::BytesMut, n: usize) {{
    buf.extend_from_slice(&(n as u16).to_le_bytes());
}}

{ALLOW}
fn __pg_str_len(s: &str) -> usize {{
    {str_len}
}}

{ALLOW}
fn __pg_checked_str_len(s: &str, field: &'static str) -> ::core::result::Result<usize, EncodeError> {{
    let len = __pg_str_len(s);
    if len > usize::from(u16::MAX) {{
        return Err(EncodeError::StringTooLong {{ field, len }});
    }}
    Ok(len)
}}

{ALLOW}
fn __pg_check_count(len: usize, field: &'static str) -> ::core::result::Result<(), EncodeError> {{
    if len > usize::from(u16::MAX) {{
        return Err(EncodeError::ListTooLong {{ field, len }});
    }}
    Ok(())
}}

{ALLOW}
fn __pg_put_str(buf: &mut ::bytes::BytesMut, s: &str) {{
{put_str}
}}

/// Bounds-checked cursor over one frame.
{ALLOW}
struct __PgReader<'a> {{
    buf: &'a [u8],
    pos: usize,
}}

{ALLOW}
impl<'a> __PgReader<'a> {{
    fn take(&mut self, n: usize) -> ::core::result::Result<&'a [u8], DecodeError> {{
        let needed = self.pos.saturating_add(n);
        if needed > self.buf.len() {{
            return Err(DecodeError::Truncated {{
                needed,
                available: self.buf.len(),
            }});
        }}
        let bytes = &self.buf[self.pos..needed];
        self.pos = needed;
        Ok(bytes)
    }}

    fn array<const N: usize>(&mut self) -> ::core::result::Result<[u8; N], DecodeError> {{
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }}

    fn string(&mut self, field: &'static str) -> ::core::result::Result<::std::string::String, DecodeError> {{
        let len = u16::from_le_bytes(self.array()?);
        let bytes = self.take(usize::from(len))?;
{read_str}
    }}

    /// Reads a list count and checks that `count * min_element` bytes remain, so the
    /// caller may allocate `count` elements.
    fn list_count(&mut self, field: &'static str, min_element: usize) -> ::core::result::Result<usize, DecodeError> {{
        let count = u16::from_le_bytes(self.array()?);
        let remaining = self.buf.len() - self.pos;
        if usize::from(count) * min_element > remaining {{
            return Err(DecodeError::ListTooLong {{
                field,
                count,
                remaining,
            }});
        }}
        Ok(usize::from(count))
    }}
}}"#
    );
}
