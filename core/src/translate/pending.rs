//! Stand-ins for the translation functions while they are written (removed when they land):
//! same-shape requests get their model replaced; anything needing translation is refused.

use crate::error::GatewayError;
use crate::json::TopLevel;

use super::Shape;

pub struct TargetRequest<'a> {
    pub shape: Shape,
    pub model: &'a str,
    pub default_max_tokens: u64,
}

pub fn request(
    client: Shape,
    body: &[u8],
    target: &TargetRequest<'_>,
) -> Result<Vec<u8>, GatewayError> {
    if client != target.shape {
        return Err(GatewayError::InvalidField {
            param: "model".into(),
            message: "translation is not available yet".into(),
        });
    }
    let top = TopLevel::parse(body)?;
    let model = serde_json::to_string(target.model).unwrap_or_default();
    Ok(top.with_replaced("model", &model))
}

pub fn response(_target: Shape, _client: Shape, body: &[u8]) -> Result<Vec<u8>, GatewayError> {
    Ok(body.to_vec())
}

pub fn error(_target: Shape, _client: Shape, _status: u16, body: &[u8]) -> Vec<u8> {
    body.to_vec()
}
