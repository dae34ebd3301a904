//! Session synchronisation between stateful NAT64 nodes: the datagram format and its
//! authentication ([`wire`]), replay protection per peer ([`replay`]), this node's
//! sessions as records ([`export`]), and a peer's made in this node's tables
//! ([`import`]).

pub mod export;
pub mod import;
pub mod replay;
pub mod wire;
