//! Session synchronisation between stateful NAT64 nodes: the datagram format and its
//! authentication ([`wire`]), and replay protection per peer ([`replay`]).

pub mod replay;
pub mod wire;
