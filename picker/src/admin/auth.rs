//! The admin API's credential: `Authorization: Bearer <token>`, compared by SHA-256 in constant
//! time with the configured token's digest. A missing and a wrong token get the same 401.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AdminState;
use super::error::ApiError;

/// Whether the request carries the token whose SHA-256 is `expected`.
pub fn authorized(authorization: Option<&[u8]>, expected: &[u8; 32]) -> bool {
    let Some(token) = authorization.and_then(bearer) else {
        return false;
    };
    let digest: [u8; 32] = Sha256::digest(token).into();
    digest.ct_eq(expected).into()
}

/// The token of `Bearer <token>` (the scheme in any case).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = value.get(7..)?.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Middleware on every admin route (and the admin listeners' 404s).
pub async fn require_token(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.as_bytes());
    if authorized(header, &state.token_sha256) {
        next.run(request).await
    } else {
        state.metrics.admin_unauthenticated();
        ApiError::unauthenticated().into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    #[test]
    fn only_the_right_bearer_token_passes() {
        let expected = digest("s3cret-admin-token");
        assert!(authorized(Some(b"Bearer s3cret-admin-token"), &expected));
        assert!(authorized(Some(b"bearer s3cret-admin-token"), &expected));
        assert!(authorized(Some(b"Bearer s3cret-admin-token "), &expected));
        for wrong in [
            &b"Bearer s3cret-admin-tokem"[..],
            b"Bearer S3CRET-ADMIN-TOKEN",
            b"Basic s3cret-admin-token",
            b"s3cret-admin-token",
            b"Bearer ",
            b"Bearer",
            b"",
        ] {
            assert!(!authorized(Some(wrong), &expected), "{wrong:?}");
        }
        assert!(!authorized(None, &expected));
    }
}
