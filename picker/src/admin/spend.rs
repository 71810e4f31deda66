//! `GET /admin/v1/spend`: the spend report as JSON (`SpendReport`) or CSV (`format=csv` or
//! `Accept: text/csv`).

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::{AdminState, json};
use crate::clock;
use crate::spend::query::{self, Format};
use crate::spend::{csv, report};

pub async fn spend(
    State(admin): State<AdminState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let now_ms = clock::now_ms();
    let query = query::parse(raw.as_deref(), now_ms / 1000).map_err(ApiError::invalid)?;
    let format = query.format.unwrap_or_else(|| {
        if accepts_csv(&headers) {
            Format::Csv
        } else {
            Format::Json
        }
    });
    let report = report::report(&admin.tenancy, &query, clock::now_hour()).await?;
    Ok(match format {
        Format::Json => json(StatusCode::OK, &report),
        Format::Csv => {
            let body = csv::write(&report.group_by, &report.rows).map_err(|why| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "unavailable", why)
            })?;
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(csv::CONTENT_TYPE),
                )],
                body,
            )
                .into_response()
        }
    })
}

/// `Accept: text/csv` (alone or first among others).
fn accepts_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|part| part.split(';').next().unwrap_or("").trim())
        .find(|media| !media.is_empty())
        .is_some_and(|media| media.eq_ignore_ascii_case("text/csv"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_when_asked_first() {
        let mut headers = HeaderMap::new();
        assert!(!accepts_csv(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/csv"));
        assert!(accepts_csv(&headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/csv;q=0.9, application/json"),
        );
        assert!(accepts_csv(&headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/csv"),
        );
        assert!(!accepts_csv(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(!accepts_csv(&headers));
    }
}
