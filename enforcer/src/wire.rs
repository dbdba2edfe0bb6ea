//! Zero-copy decoding of Envoy's `CheckRequest` protobuf straight into
//! [`HttpFacts`] that borrow the received bytes.
//!
//! The generic path (prost into `xds-api` types) allocates a `String` or
//! `Vec` for every header name and value, the context-extension map and
//! every address: about 40 allocations and as many copies per Check, the
//! largest share of the enforcer's own CPU outside the WAF engine. This
//! reader walks the wire format once, keeps slices of the input, and reads
//! only the fields a decision uses:
//!
//! | message | fields read |
//! |---|---|
//! | `CheckRequest` | `attributes` (1) |
//! | `AttributeContext` | `source` (1), `destination` (2), `request` (4), `context_extensions` (10) |
//! | `Peer` | `address` (1) → `Address.socket_address` (1) → `address` (2), `port_value` (3) |
//! | `Request` | `http` (2) |
//! | `HttpRequest` | `id` (1), `method` (2), `headers` (3), `path` (4), `host` (5), `size` (9, checked only), `protocol` (10), `body` (11), `raw_body` (12), `header_map` (13) |
//! | `HeaderValue` | `key` (1), `value` (2), `raw_value` (3) |
//!
//! Semantics follow protobuf (and prost) for these fields: the last value of a
//! scalar wins, repeated embedded messages merge, `oneof` members replace one
//! another, string fields must be UTF-8, a known field with the wrong wire
//! type is an error. Fields the decision does not use are skipped by wire
//! type without looking inside, so a malformed value there is not an error
//! (prost would reject it); Envoy never sends one.

use std::net::IpAddr;

use crate::decide::HttpFacts;

/// Why a `CheckRequest` could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The input ends inside a field.
    #[error("truncated message")]
    Truncated,
    /// A varint longer than ten bytes.
    #[error("invalid varint")]
    Varint,
    /// Field number 0, or a wire type protobuf does not define.
    #[error("invalid field key {0}")]
    Key(u64),
    /// A known field encoded with a wire type it cannot have.
    #[error("field {field} of {message} has wire type {wire_type}")]
    WireType {
        /// The message being decoded.
        message: &'static str,
        /// The field number.
        field: u32,
        /// The wire type found.
        wire_type: u8,
    },
    /// A string field that is not UTF-8.
    #[error("field {0} is not valid UTF-8")]
    Utf8(&'static str),
    /// Groups (wire types 3 and 4) are deprecated and never sent by Envoy.
    #[error("groups are not supported")]
    Group,
}

/// A field's value as it appears on the wire.
#[derive(Clone, Copy, Debug)]
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Fixed32,
    Bytes(&'a [u8]),
}

impl Value<'_> {
    fn wire_type(&self) -> u8 {
        match self {
            Value::Varint(_) => 0,
            Value::Fixed64 => 1,
            Value::Bytes(_) => 2,
            Value::Fixed32 => 5,
        }
    }
}

/// Iterates over the fields of one message.
struct Fields<'a> {
    buf: &'a [u8],
    message: &'static str,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8], message: &'static str) -> Fields<'a> {
        Fields { buf, message }
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, WireError> {
        // Field keys and most lengths fit in one byte.
        if let Some((&byte, rest)) = self.buf.split_first() {
            if byte < 0x80 {
                self.buf = rest;
                return Ok(u64::from(byte));
            }
        }
        self.varint_slow()
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> Result<u64, WireError> {
        let mut value: u64 = 0;
        for (i, &byte) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                // The tenth byte may only carry the top bit of a u64.
                if i == 9 && byte > 1 {
                    return Err(WireError::Varint);
                }
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        if self.buf.len() < 10 {
            Err(WireError::Truncated)
        } else {
            Err(WireError::Varint)
        }
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], WireError> {
        let n = usize::try_from(n).map_err(|_| WireError::Truncated)?;
        if n > self.buf.len() {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next field, or `None` at the end of the message.
    #[inline]
    fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = u32::try_from(key >> 3)
            .ok()
            .filter(|f| *f != 0)
            .ok_or(WireError::Key(key))?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let len = self.varint()?;
                Value::Bytes(self.take(len)?)
            }
            3 | 4 => return Err(WireError::Group),
            5 => {
                self.take(4)?;
                Value::Fixed32
            }
            _ => return Err(WireError::Key(key)),
        };
        Ok(Some((field, value)))
    }

    fn wrong_type(&self, field: u32, value: Value<'_>) -> WireError {
        WireError::WireType {
            message: self.message,
            field,
            wire_type: value.wire_type(),
        }
    }

    /// The bytes of a length-delimited field.
    fn bytes(&self, field: u32, value: Value<'a>) -> Result<&'a [u8], WireError> {
        match value {
            Value::Bytes(b) => Ok(b),
            other => Err(self.wrong_type(field, other)),
        }
    }

    /// A string field (UTF-8 checked).
    fn string(
        &self,
        field: u32,
        value: Value<'a>,
        name: &'static str,
    ) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes(field, value)?).map_err(|_| WireError::Utf8(name))
    }

    /// A varint field.
    fn uint(&self, field: u32, value: Value<'a>) -> Result<u64, WireError> {
        match value {
            Value::Varint(v) => Ok(v),
            other => Err(self.wrong_type(field, other)),
        }
    }
}

/// A socket address as the facts carry it.
#[derive(Clone, Copy, Debug, Default)]
struct Socket<'a> {
    address: Option<&'a str>,
    port: u32,
}

impl Socket<'_> {
    fn ip_port(&self) -> (Option<IpAddr>, u16) {
        match self.address {
            Some(a) => (a.parse().ok(), u16::try_from(self.port).unwrap_or(0)),
            None => (None, 0),
        }
    }
}

/// `Peer` → `Address` → `SocketAddress`, merged into `socket`.
fn peer<'a>(buf: &'a [u8], socket: &mut Socket<'a>) -> Result<(), WireError> {
    let mut fields = Fields::new(buf, "Peer");
    while let Some((field, value)) = fields.next_field()? {
        if field == 1 {
            address(fields.bytes(field, value)?, socket)?;
        }
    }
    Ok(())
}

fn address<'a>(buf: &'a [u8], socket: &mut Socket<'a>) -> Result<(), WireError> {
    let mut fields = Fields::new(buf, "Address");
    while let Some((field, value)) = fields.next_field()? {
        match field {
            1 => {
                let bytes = fields.bytes(field, value)?;
                // A oneof member set again merges; after another member it
                // starts from scratch.
                let mut current = socket.address.map(|_| *socket).unwrap_or_default();
                socket_address(bytes, &mut current)?;
                *socket = Socket {
                    address: Some(current.address.unwrap_or("")),
                    port: current.port,
                };
            }
            // `pipe`, `envoy_internal_address`: no IP address.
            2 | 3 => {
                fields.bytes(field, value)?;
                *socket = Socket::default();
            }
            _ => {}
        }
    }
    Ok(())
}

fn socket_address<'a>(buf: &'a [u8], socket: &mut Socket<'a>) -> Result<(), WireError> {
    let mut fields = Fields::new(buf, "SocketAddress");
    while let Some((field, value)) = fields.next_field()? {
        match field {
            2 => socket.address = Some(fields.string(field, value, "SocketAddress.address")?),
            3 => {
                // uint32: prost keeps the low 32 bits.
                socket.port = fields.uint(field, value)? as u32;
            }
            4 => {
                fields.string(field, value, "SocketAddress.named_port")?;
                socket.port = 0;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A `map<string, string>` entry.
fn map_entry<'a>(buf: &'a [u8], name: &'static str) -> Result<(&'a str, &'a str), WireError> {
    let mut fields = Fields::new(buf, name);
    let (mut key, mut value) = ("", "");
    while let Some((field, v)) = fields.next_field()? {
        match field {
            1 => key = fields.string(field, v, name)?,
            2 => value = fields.string(field, v, name)?,
            _ => {}
        }
    }
    Ok((key, value))
}

/// What `HttpRequest` contributes, before headers are chosen.
#[derive(Debug, Default)]
struct Http<'a> {
    id: &'a str,
    method: &'a str,
    path: &'a str,
    host: &'a str,
    protocol: &'a str,
    body: &'a str,
    raw_body: &'a [u8],
    /// `headers` map entries in wire order (later duplicates win).
    map: Vec<(&'a str, &'a [u8])>,
    /// `header_map` entries in order.
    list: Vec<(&'a str, &'a [u8])>,
}

fn http_request<'a>(buf: &'a [u8], http: &mut Http<'a>) -> Result<(), WireError> {
    let mut fields = Fields::new(buf, "HttpRequest");
    while let Some((field, value)) = fields.next_field()? {
        match field {
            1 => http.id = fields.string(field, value, "HttpRequest.id")?,
            2 => http.method = fields.string(field, value, "HttpRequest.method")?,
            3 => {
                let (k, v) = map_entry(fields.bytes(field, value)?, "HttpRequest.headers")?;
                http.map.push((k, v.as_bytes()));
            }
            4 => http.path = fields.string(field, value, "HttpRequest.path")?,
            5 => http.host = fields.string(field, value, "HttpRequest.host")?,
            6 => {
                fields.string(field, value, "HttpRequest.scheme")?;
            }
            7 => {
                fields.string(field, value, "HttpRequest.query")?;
            }
            8 => {
                fields.string(field, value, "HttpRequest.fragment")?;
            }
            9 => {
                fields.uint(field, value)?;
            }
            10 => http.protocol = fields.string(field, value, "HttpRequest.protocol")?,
            11 => http.body = fields.string(field, value, "HttpRequest.body")?,
            12 => http.raw_body = fields.bytes(field, value)?,
            13 => header_map(fields.bytes(field, value)?, &mut http.list)?,
            _ => {}
        }
    }
    Ok(())
}

fn header_map<'a>(buf: &'a [u8], list: &mut Vec<(&'a str, &'a [u8])>) -> Result<(), WireError> {
    let mut fields = Fields::new(buf, "HeaderMap");
    // About one header per 32 bytes: one allocation for the usual request.
    list.reserve(buf.len() / 32 + 4);
    while let Some((field, value)) = fields.next_field()? {
        if field == 1 {
            list.push(header_value(fields.bytes(field, value)?)?);
        }
    }
    Ok(())
}

/// One `HeaderValue`: `raw_value` when present, else `value` (as the prost
/// path does).
fn header_value(buf: &[u8]) -> Result<(&str, &[u8]), WireError> {
    let mut fields = Fields::new(buf, "HeaderValue");
    let (mut key, mut value, mut raw): (&str, &str, &[u8]) = ("", "", &[]);
    while let Some((field, v)) = fields.next_field()? {
        match field {
            1 => key = fields.string(field, v, "HeaderValue.key")?,
            2 => value = fields.string(field, v, "HeaderValue.value")?,
            3 => raw = fields.bytes(field, v)?,
            _ => {}
        }
    }
    Ok((
        key,
        if raw.is_empty() {
            value.as_bytes()
        } else {
            raw
        },
    ))
}

/// Decodes a serialized `CheckRequest` into the facts a decision needs,
/// borrowing every string and the body from `buf`.
pub fn decode_check_request(buf: &[u8]) -> Result<HttpFacts<'_>, WireError> {
    let mut source = Socket::default();
    let mut destination = Socket::default();
    let mut service: Option<&str> = None;
    let mut http: Option<Http<'_>> = None;

    let mut top = Fields::new(buf, "CheckRequest");
    while let Some((field, value)) = top.next_field()? {
        if field != 1 {
            continue;
        }
        let mut attrs = Fields::new(top.bytes(field, value)?, "AttributeContext");
        while let Some((field, value)) = attrs.next_field()? {
            match field {
                1 => peer(attrs.bytes(field, value)?, &mut source)?,
                2 => peer(attrs.bytes(field, value)?, &mut destination)?,
                4 => {
                    let mut request = Fields::new(attrs.bytes(field, value)?, "Request");
                    while let Some((field, value)) = request.next_field()? {
                        if field == 2 {
                            let bytes = request.bytes(field, value)?;
                            http_request(bytes, http.get_or_insert_with(Http::default))?;
                        }
                    }
                }
                10 => {
                    let (k, v) = map_entry(
                        attrs.bytes(field, value)?,
                        "AttributeContext.context_extensions",
                    )?;
                    if k == crate::check::SERVICE_EXTENSION {
                        service = Some(v);
                    }
                }
                _ => {}
            }
        }
    }

    let (source_ip, source_port) = source.ip_port();
    let (destination_ip, destination_port) = destination.ip_port();
    let mut facts = HttpFacts {
        source_ip,
        source_port,
        destination_ip,
        destination_port,
        service: service.filter(|s| !s.is_empty()),
        ..Default::default()
    };
    if let Some(http) = http {
        facts.method = http.method;
        facts.path = http.path;
        facts.host = http.host;
        facts.protocol = http.protocol;
        facts.body = if http.raw_body.is_empty() {
            http.body.as_bytes()
        } else {
            http.raw_body
        };
        facts.headers = if http.list.is_empty() {
            // A map: the last entry for a key wins; sorted by name like the
            // prost path.
            let mut map = http.map;
            map.reverse();
            map.sort_by(|a, b| a.0.cmp(b.0));
            map.dedup_by(|later, earlier| later.0 == earlier.0);
            map
        } else {
            http.list
        };
        crate::check::complete_facts(&mut facts, http.id);
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use xds_api::pb::envoy::config::core::v3::{
        address, socket_address, Address, HeaderMap, HeaderValue, Pipe, SocketAddress,
    };
    use xds_api::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
    use xds_api::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};

    use super::*;

    fn socket(ip: &str, port: u32) -> Option<Peer> {
        Some(Peer {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: ip.to_string(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
                    ..Default::default()
                })),
            }),
            principal: "spiffe://cluster.local/ns/a/sa/b".into(),
            ..Default::default()
        })
    }

    fn header(key: &str, value: &str, raw: &[u8]) -> HeaderValue {
        HeaderValue {
            key: key.into(),
            value: value.into(),
            raw_value: raw.to_vec(),
        }
    }

    fn request(http: HttpRequest, extensions: &[(&str, &str)]) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                source: socket("10.1.0.5", 40000),
                destination: socket("fd00::10", 8080),
                context_extensions: extensions
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                request: Some(Request {
                    time: Some(xds_api::pb::google::protobuf::Timestamp {
                        seconds: 1_795_000_000,
                        nanos: 5,
                    }),
                    http: Some(http),
                }),
                ..Default::default()
            }),
        }
    }

    fn envoy_like() -> HttpRequest {
        HttpRequest {
            id: "42".into(),
            method: "POST".into(),
            path: "/api/v1/cart?x=1".into(),
            host: "shop.test".into(),
            scheme: "http".into(),
            protocol: "HTTP/1.1".into(),
            size: 9,
            header_map: Some(HeaderMap {
                headers: vec![
                    header(":authority", "", b"shop.test"),
                    header(":path", "", b"/api/v1/cart?x=1"),
                    header("x-request-id", "", b"req-7"),
                    header("x-bin", "", b"\xff\xfe"),
                    header("x-text", "plain", b""),
                ],
            }),
            raw_body: b"item=1\xff&a".to_vec(),
            ..Default::default()
        }
    }

    /// The decoder agrees with the prost path on every case.
    #[test]
    fn matches_the_prost_path() {
        let cases: Vec<(&str, CheckRequest)> = vec![
            (
                "envoy-like",
                request(envoy_like(), &[("palisade.service", "shop/web")]),
            ),
            (
                "headers map, string body, no extension",
                request(
                    HttpRequest {
                        method: "GET".into(),
                        path: "/".into(),
                        headers: [
                            ("host", "web.test"),
                            ("x-request-id", "r1"),
                            ("accept", "*/*"),
                        ]
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                        body: "a=b".into(),
                        ..Default::default()
                    },
                    &[("other", "x")],
                ),
            ),
            (
                "empty extension value",
                request(envoy_like(), &[("palisade.service", "")]),
            ),
            ("no attributes", CheckRequest { attributes: None }),
            (
                "no http",
                CheckRequest {
                    attributes: Some(AttributeContext {
                        source: socket("not an ip", 70000),
                        ..Default::default()
                    }),
                },
            ),
            (
                "pipe address",
                CheckRequest {
                    attributes: Some(AttributeContext {
                        source: Some(Peer {
                            address: Some(Address {
                                address: Some(address::Address::Pipe(Pipe {
                                    path: "/run/x.sock".into(),
                                    mode: 0,
                                })),
                            }),
                            ..Default::default()
                        }),
                        request: Some(Request {
                            time: None,
                            http: Some(envoy_like()),
                        }),
                        ..Default::default()
                    }),
                },
            ),
        ];
        for (name, req) in cases {
            let bytes = req.encode_to_vec();
            let fast = decode_check_request(&bytes).expect(name);
            let slow = crate::check::facts(&req);
            assert_eq!(fast, slow, "{name}");
        }
    }

    #[test]
    fn reads_the_envoy_fields() {
        let bytes = request(envoy_like(), &[("palisade.service", "shop/web")]).encode_to_vec();
        let facts = decode_check_request(&bytes).expect("decodes");
        assert_eq!(facts.service, Some("shop/web"));
        assert_eq!(facts.source_ip, Some("10.1.0.5".parse().unwrap()));
        assert_eq!(facts.source_port, 40000);
        assert_eq!(facts.destination_ip, Some("fd00::10".parse().unwrap()));
        assert_eq!(facts.destination_port, 8080);
        assert_eq!((facts.method, facts.path), ("POST", "/api/v1/cart?x=1"));
        assert_eq!(facts.request_id, "req-7");
        assert_eq!(facts.body, b"item=1\xff&a");
        assert_eq!(facts.headers[3], ("x-bin", b"\xff\xfe".as_slice()));
        assert_eq!(facts.headers[4], ("x-text", b"plain".as_slice()));
    }

    /// Protobuf merge rules: a repeated message field merges, the last
    /// scalar wins, a later map entry for the same key wins.
    #[test]
    fn merges_repeated_occurrences() {
        let first = request(envoy_like(), &[("palisade.service", "shop/one")]);
        let second = request(
            HttpRequest {
                method: "PUT".into(),
                header_map: Some(HeaderMap {
                    headers: vec![header("x-late", "", b"1")],
                }),
                ..Default::default()
            },
            &[("palisade.service", "shop/two")],
        );
        let mut bytes = first.encode_to_vec();
        bytes.extend(second.encode_to_vec());
        let mut merged = first.clone();
        merged
            .merge(second.encode_to_vec().as_slice())
            .expect("merges");
        let fast = decode_check_request(&bytes).expect("decodes");
        assert_eq!(fast.method, "PUT");
        assert_eq!(fast.service, Some("shop/two"));
        assert_eq!(fast, crate::check::facts(&merged));
    }

    #[test]
    fn rejects_malformed_input() {
        let good = request(envoy_like(), &[("palisade.service", "shop/web")]).encode_to_vec();
        // Method (field 2 of HttpRequest) that is not UTF-8.
        let bad_method = request(
            HttpRequest {
                method: "GET".into(),
                ..Default::default()
            },
            &[],
        )
        .encode_to_vec();
        let at = bad_method
            .windows(3)
            .position(|w| w == b"GET")
            .expect("method bytes");
        let mut not_utf8 = bad_method.clone();
        not_utf8[at] = 0xff;
        let cases: Vec<(&str, Vec<u8>, WireError)> = vec![
            (
                "truncated",
                good[..good.len() - 1].to_vec(),
                WireError::Truncated,
            ),
            ("field zero", vec![0x02, 0x00], WireError::Key(2)),
            ("wire type 7", vec![0x0f], WireError::Key(15)),
            ("group", vec![0x0b], WireError::Group),
            (
                "long varint",
                vec![0x08; 1].into_iter().chain([0xff; 11]).collect(),
                WireError::Varint,
            ),
            (
                "attributes as varint",
                vec![0x08, 0x01],
                WireError::WireType {
                    message: "CheckRequest",
                    field: 1,
                    wire_type: 0,
                },
            ),
            (
                "method not UTF-8",
                not_utf8,
                WireError::Utf8("HttpRequest.method"),
            ),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(decode_check_request(&bytes).err(), Some(want), "{name}");
            // prost rejects them too.
            assert!(
                CheckRequest::decode(bytes.as_slice()).is_err(),
                "{name}: prost"
            );
        }
    }

    /// Every prefix and every single-byte corruption of a real request
    /// decodes or fails cleanly (no panic), and whatever decodes agrees with
    /// prost when prost accepts it too.
    #[test]
    fn never_panics_on_corrupt_input() {
        let good = request(envoy_like(), &[("palisade.service", "shop/web")]).encode_to_vec();
        for end in 0..good.len() {
            let _ = decode_check_request(&good[..end]);
        }
        for i in 0..good.len() {
            for byte in [0x00, 0x02, 0x0a, 0x7f, 0x80, 0xff] {
                let mut bytes = good.clone();
                bytes[i] = byte;
                let fast = decode_check_request(&bytes);
                if let (Ok(fast), Ok(slow)) = (&fast, CheckRequest::decode(bytes.as_slice())) {
                    assert_eq!(*fast, crate::check::facts(&slow), "byte {i} = {byte:#x}");
                }
            }
        }
    }
}
