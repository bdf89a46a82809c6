#[cfg(feature = "websocket")]
pub(crate) mod websocket;
