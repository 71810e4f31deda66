//! What the filter decides in each request phase, as plain functions over header values and
//! body bytes: the exchange (`crate::exchange`) calls them phase by phase.

mod body;
mod headers;
mod models_list;
mod request_headers;

pub use body::{PolicyKeys, RoutedRequest, check_body_size, route_request, route_request_for};
pub use headers::{HeadersDecision, LocalReply, RequestHead, decide_on_headers};
pub use models_list::ModelsList;
pub use request_headers::RequestHeaders;
