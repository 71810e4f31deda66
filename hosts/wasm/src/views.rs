//! The exchange's views over what Envoy holds for the current callback, each read through one
//! host call when the exchange asks for it.

use std::borrow::Cow;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use sluice_core::exchange::{BodyView, HeaderView, HostError, StreamInfo};

/// The response headers: one `get_map_value` per header asked for (the exchange asks for
/// `:status` and `content-type` of a routed inference response, nothing otherwise).
pub struct ResponseHeaders;

impl HeaderView for ResponseHeaders {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        super::headers::get(MapType::HttpResponseHeaders, name).map(Cow::Owned)
    }
}

/// The request headers, one `get_map_value` per header asked for (an attempt asks for the
/// plan and the attempt number).
pub struct RequestHeaderValues;

impl HeaderView for RequestHeaderValues {
    fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        super::headers::get(MapType::HttpRequestHeaders, name).map(Cow::Owned)
    }
}

/// The `size` bytes of response body Envoy holds in this callback.
pub struct ResponseBody {
    pub size: usize,
}

impl BodyView for ResponseBody {
    fn size(&self) -> usize {
        self.size
    }

    fn read(&mut self) -> Result<Vec<u8>, HostError> {
        match hostcalls::get_buffer(BufferType::HttpResponseBody, 0, self.size) {
            Ok(Some(bytes)) => Ok(bytes),
            _ => Err(HostError),
        }
    }
}

/// Stream properties.
pub struct Properties;

impl StreamInfo for Properties {
    /// `xds.route_name`: read in the request body phase, before the filter sets the model
    /// headers, it is the route Envoy matched on the request as the client sent it, before any
    /// filter ran (verified on Envoy 1.40 by the guardrails e2e test: a route matching the
    /// model header the filter sets later is not seen; removing a header does not have the
    /// name matched again).
    fn route_name(&self) -> Result<Option<String>, HostError> {
        let name = hostcalls::get_property(vec!["xds", "route_name"]).map_err(|_| HostError)?;
        Ok(name
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|name| !name.is_empty()))
    }

    /// `response.code`, an 8-byte little-endian integer in `on_log`.
    fn response_code(&self) -> Option<u16> {
        let bytes = hostcalls::get_property(vec!["response", "code"])
            .ok()
            .flatten()?;
        let code = u64::from_le_bytes(bytes.try_into().ok()?);
        u16::try_from(code).ok().filter(|code| *code > 0)
    }
}
