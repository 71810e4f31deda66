//! Reading header maps without trusting their values to be UTF-8.
//!
//! HTTP lets header values carry any byte from 0x80 up (obs-text) and Envoy passes them on, but
//! the SDK's string getters (`get_map`, `get_map_value`) unwrap a UTF-8 conversion: one client
//! header such as `x-note: caf\xe9` would trap the VM. These read bytes instead and replace
//! what is not UTF-8 with U+FFFD, which matches nothing the filter looks for. Names are safe as
//! strings: Envoy's codecs accept only token characters in them.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{Bytes, MapType, Status};

/// Every header of `map`, in order.
pub fn all(map: MapType) -> Result<Vec<(String, String)>, Status> {
    let pairs = hostcalls::get_map_bytes(map)?;
    Ok(pairs
        .into_iter()
        .map(|(name, value)| (name, text(value)))
        .collect())
}

/// The first value of `name` in `map`, if any.
pub fn get(map: MapType, name: &str) -> Option<String> {
    hostcalls::get_map_value_bytes(map, name)
        .ok()
        .flatten()
        .map(text)
}

fn text(value: Bytes) -> String {
    String::from_utf8(value)
        .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned())
}
