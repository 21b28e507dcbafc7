//! HTTP/1.1: the head parser, the body codecs and the connection.

pub(crate) mod conn;
pub mod decode;
pub(crate) mod encode;
pub(crate) mod feed;
pub mod parse;
#[cfg(test)]
mod properties;
