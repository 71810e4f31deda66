//! The admin API's errors: `ErrorBody` JSON with the status that goes with its code.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sluice_wire::admin::{ErrorBody, ErrorDetail};

use crate::spend::report::ReportError;
use crate::tenancy::ops::Refused;
use crate::tenancy::service::ChangeError;
use crate::tenancy::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// The same answer for a missing and a wrong token: no oracle.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "the admin API needs its token: Authorization: Bearer <token>",
        )
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Invalid(why) => Self::invalid(why),
            Refused::NotFound(why) => Self::not_found(why),
            Refused::Conflict(why) => Self::new(StatusCode::CONFLICT, "conflict", why),
            Refused::LimitReached(why) => Self::new(StatusCode::CONFLICT, "limit_reached", why),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        tracing::warn!("admin: tenancy store unavailable: {err}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the tenancy store cannot be reached: {err}"),
        )
    }
}

impl From<ChangeError> for ApiError {
    fn from(err: ChangeError) -> Self {
        match err {
            ChangeError::Refused(refused) => refused.into(),
            ChangeError::Unavailable(err) => err.into(),
        }
    }
}

impl From<ReportError> for ApiError {
    fn from(err: ReportError) -> Self {
        match err {
            ReportError::TooLarge(why) => Self::invalid(why),
            ReportError::Unavailable(err) => err.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = super::json(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
