//! The ADS wire codec: requests are decoded with prost; responses are written
//! straight from the shared, already-encoded resources of a snapshot, so a
//! stream never copies a resource into a message of its own (a prost
//! `DiscoveryResponse` owns every `Any` it carries, which made each connected
//! Envoy cost a copy of the configuration).
//!
//! The bytes written are exactly what prost writes for the equivalent
//! `DiscoveryResponse` / `DeltaDiscoveryResponse` (fields in tag order, empty
//! strings omitted); the tests check this by decoding them with prost.

use std::marker::PhantomData;
use std::sync::Arc;

use prost::bytes::BufMut;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

use super::XdsResource;

const LEN: u64 = 2;

fn varint_len(v: u64) -> usize {
    // 7 bits per byte, at least one byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint<B: BufMut>(buf: &mut B, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Size of a length-delimited field with a one-byte key (tags below 16).
fn field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// Size of a string field, 0 when empty (proto3 omits it).
fn string_field_len(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        field_len(s.len())
    }
}

fn put_header<B: BufMut>(buf: &mut B, tag: u32, len: usize) {
    put_varint(buf, (u64::from(tag) << 3) | LEN);
    put_varint(buf, len as u64);
}

fn put_bytes<B: BufMut>(buf: &mut B, tag: u32, bytes: &[u8]) {
    put_header(buf, tag, bytes.len());
    buf.put_slice(bytes);
}

fn put_string<B: BufMut>(buf: &mut B, tag: u32, s: &str) {
    if !s.is_empty() {
        put_bytes(buf, tag, s.as_bytes());
    }
}

/// Length of a `google.protobuf.Any` body.
fn any_len(r: &XdsResource) -> usize {
    string_field_len(&r.body.type_url)
        + if r.body.value.is_empty() {
            0
        } else {
            field_len(r.body.value.len())
        }
}

fn put_any<B: BufMut>(buf: &mut B, tag: u32, r: &XdsResource) {
    put_header(buf, tag, any_len(r));
    put_string(buf, 1, &r.body.type_url);
    if !r.body.value.is_empty() {
        put_bytes(buf, 2, &r.body.value);
    }
}

/// Length of a delta `Resource` body: version (1), resource (2), name (3).
fn delta_resource_len(name: &str, r: &XdsResource) -> usize {
    string_field_len(&r.version) + field_len(any_len(r)) + string_field_len(name)
}

/// Bytes one resource adds to a [`DeltaResponse`] (for sizing responses).
pub(crate) fn delta_resource_size(name: &str, r: &XdsResource) -> usize {
    field_len(delta_resource_len(name, r))
}

/// A `DeltaDiscoveryResponse` whose resources are shared.
#[derive(Debug, Default)]
pub(crate) struct DeltaResponse {
    /// `system_version_info`: the type's snapshot version.
    pub system_version_info: String,
    /// Added or changed resources.
    pub resources: Vec<(Arc<str>, Arc<XdsResource>)>,
    /// The type URL.
    pub type_url: String,
    /// The nonce.
    pub nonce: String,
    /// Names removed.
    pub removed_resources: Vec<Arc<str>>,
}

impl DeltaResponse {
    /// Writes the protobuf encoding.
    pub(crate) fn write<B: BufMut>(&self, buf: &mut B) {
        put_string(buf, 1, &self.system_version_info);
        for (name, r) in &self.resources {
            put_header(buf, 2, delta_resource_len(name, r));
            put_string(buf, 1, &r.version);
            put_any(buf, 2, r);
            put_string(buf, 3, name);
        }
        put_string(buf, 4, &self.type_url);
        put_string(buf, 5, &self.nonce);
        for name in &self.removed_resources {
            put_bytes(buf, 6, name.as_bytes());
        }
    }
}

/// A state-of-the-world `DiscoveryResponse` whose resources are shared.
#[derive(Debug, Default)]
pub(crate) struct SotwResponse {
    /// `version_info`: the type's snapshot version.
    pub version_info: String,
    /// Every resource of the type the stream asked for.
    pub resources: Vec<Arc<XdsResource>>,
    /// The type URL.
    pub type_url: String,
    /// The nonce.
    pub nonce: String,
}

impl SotwResponse {
    /// Writes the protobuf encoding.
    pub(crate) fn write<B: BufMut>(&self, buf: &mut B) {
        put_string(buf, 1, &self.version_info);
        for r in &self.resources {
            put_any(buf, 2, r);
        }
        put_string(buf, 4, &self.type_url);
        put_string(buf, 5, &self.nonce);
    }
}

/// A response the codec can write.
pub(crate) trait WriteResponse {
    /// Writes the protobuf encoding.
    fn write_to(&self, buf: &mut EncodeBuf<'_>);
}

impl WriteResponse for DeltaResponse {
    fn write_to(&self, buf: &mut EncodeBuf<'_>) {
        self.write(buf);
    }
}

impl WriteResponse for SotwResponse {
    fn write_to(&self, buf: &mut EncodeBuf<'_>) {
        self.write(buf);
    }
}

/// A tonic codec decoding `Req` with prost and writing `Resp` itself.
#[derive(Debug)]
pub(crate) struct AdsCodec<Req, Resp>(PhantomData<fn() -> (Req, Resp)>);

impl<Req, Resp> Default for AdsCodec<Req, Resp> {
    fn default() -> Self {
        AdsCodec(PhantomData)
    }
}

impl<Req, Resp> Codec for AdsCodec<Req, Resp>
where
    Req: Message + Default + Send + 'static,
    Resp: WriteResponse + Send + 'static,
{
    type Encode = Resp;
    type Decode = Req;
    type Encoder = ResponseEncoder<Resp>;
    type Decoder = RequestDecoder<Req>;

    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(PhantomData)
    }
}

/// Writes responses.
#[derive(Debug)]
pub(crate) struct ResponseEncoder<Resp>(PhantomData<fn(Resp)>);

impl<Resp: WriteResponse> Encoder for ResponseEncoder<Resp> {
    type Item = Resp;
    type Error = Status;

    fn encode(&mut self, item: Resp, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.write_to(dst);
        Ok(())
    }
}

/// Decodes requests with prost.
#[derive(Debug)]
pub(crate) struct RequestDecoder<Req>(PhantomData<fn() -> Req>);

impl<Req: Message + Default> Decoder for RequestDecoder<Req> {
    type Item = Req;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Req>, Status> {
        Req::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use xds_api::pb::envoy::service::discovery::v3::{
        DeltaDiscoveryResponse, DiscoveryResponse, Resource,
    };
    use xds_api::pb::google::protobuf::Any;

    use super::*;

    fn res(value: Vec<u8>) -> Arc<XdsResource> {
        Arc::new(XdsResource::new(Any {
            type_url: super::super::ENDPOINT.to_string(),
            value,
        }))
    }

    #[test]
    fn varint_lengths() {
        for (v, n) in [
            (0u64, 1),
            (1, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (u64::MAX, 10),
        ] {
            assert_eq!(varint_len(v), n, "{v}");
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), n, "{v}");
        }
    }

    #[test]
    fn delta_response_matches_prost() {
        let big = res(vec![7u8; 300]);
        let cases = [
            DeltaResponse::default(),
            DeltaResponse {
                system_version_info: "v1".into(),
                resources: vec![
                    (Arc::from("a"), res(b"x".to_vec())),
                    (Arc::from("b".repeat(200).as_str()), Arc::clone(&big)),
                    (Arc::from("empty"), res(Vec::new())),
                ],
                type_url: super::super::ENDPOINT.into(),
                nonce: "17".into(),
                removed_resources: vec![Arc::from("gone"), Arc::from("also-gone")],
            },
        ];
        for case in cases {
            let mut buf = Vec::new();
            case.write(&mut buf);
            let decoded = DeltaDiscoveryResponse::decode(buf.as_slice()).unwrap();
            let expected = DeltaDiscoveryResponse {
                system_version_info: case.system_version_info.clone(),
                resources: case
                    .resources
                    .iter()
                    .map(|(n, r)| Resource {
                        name: n.to_string(),
                        version: r.version.clone(),
                        resource: Some(r.body.clone()),
                        ..Default::default()
                    })
                    .collect(),
                type_url: case.type_url.clone(),
                nonce: case.nonce.clone(),
                removed_resources: case
                    .removed_resources
                    .iter()
                    .map(|n| n.to_string())
                    .collect(),
                ..Default::default()
            };
            assert_eq!(decoded, expected);
            // Byte for byte what prost writes.
            assert_eq!(buf, expected.encode_to_vec());
            let sizes: usize = case
                .resources
                .iter()
                .map(|(n, r)| delta_resource_size(n, r))
                .sum();
            assert!(sizes <= buf.len());
        }
    }

    #[test]
    fn sotw_response_matches_prost() {
        let case = SotwResponse {
            version_info: "v2".into(),
            resources: vec![res(b"one".to_vec()), res(vec![1u8; 1000])],
            type_url: super::super::ENDPOINT.into(),
            nonce: "3".into(),
        };
        let mut buf = Vec::new();
        case.write(&mut buf);
        let expected = DiscoveryResponse {
            version_info: "v2".into(),
            resources: case.resources.iter().map(|r| r.body.clone()).collect(),
            type_url: case.type_url.clone(),
            nonce: "3".into(),
            ..Default::default()
        };
        assert_eq!(buf, expected.encode_to_vec());
    }
}
