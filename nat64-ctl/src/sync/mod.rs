//! Session synchronisation between stateful NAT64 nodes: the datagram format and its
//! authentication ([`wire`]), replay protection per peer ([`replay`]), this node's
//! sessions as records ([`export`]), a peer's made in this node's tables
//! ([`import`]), and the node that sends and takes them ([`node`]).

pub mod export;
pub mod import;
pub mod node;
pub mod replay;
pub mod wire;
