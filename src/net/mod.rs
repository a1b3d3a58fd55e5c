//! The network side: the listener thread ([`listener`]), the worker threads and their event
//! loops ([`worker`]), and one client connection's buffers and read → execute → write cycle
//! ([`conn`]). Requests are turned into replies by [`crate::wire`] and [`crate::cmd`]; nothing here knows a
//! protocol beyond the first byte that picks one.

pub mod budget;
pub mod bufpool;
pub mod conn;
pub mod listener;
pub mod stream;
pub mod tls;
pub mod udp;
pub mod worker;

#[cfg(test)]
mod tests;
