//! A Check client for tests and benchmarks: a tonic channel over the
//! enforcer's Unix socket, and Envoy-shaped socket-address peers.
#![allow(dead_code)]

use std::path::Path;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};
use xds_api::pb::envoy::config::core::v3::{address, socket_address, Address, SocketAddress};
use xds_api::pb::envoy::service::auth::v3::attribute_context::Peer;

/// A gRPC channel to the enforcer listening on `socket`.
pub async fn channel(socket: &Path) -> Channel {
    let socket = socket.to_path_buf();
    Endpoint::from_static("http://enforcer")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                tokio::net::UnixStream::connect(socket)
                    .await
                    .map(TokioIo::new)
            }
        }))
        .await
        .expect("connect to the enforcer socket")
}

/// A peer at `ip:port`, as Envoy describes a socket address.
pub fn peer(ip: &str, port: u32) -> Option<Peer> {
    Some(Peer {
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: ip.to_string(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
                ..Default::default()
            })),
        }),
        ..Default::default()
    })
}
