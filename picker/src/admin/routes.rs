//! The admin API's tenants, projects and keys routes. Each reads its input, asks the tenancy
//! service, and answers JSON; a secret appears only in the answers that create it.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use sluice_wire::admin::{KeyCreate, KeyCreated, KeyUpdate, KeyView, ProjectSpec, TenantSpec};

use super::error::ApiError;
use super::{AdminState, json};
use crate::tenancy::ops::{Op, Outcome};
use crate::tenancy::{secret, validation};

type Result<T> = std::result::Result<T, ApiError>;

/// A JSON body; an empty one reads as `{}` when `empty_ok` (a `PUT` of a tenant with no limits).
fn body<T: DeserializeOwned>(
    bytes: std::result::Result<Bytes, BytesRejection>,
    empty_ok: bool,
) -> Result<T> {
    let bytes = bytes.map_err(|e| ApiError::new(e.status(), "invalid", e.body_text()))?;
    let text: &[u8] = if empty_ok && bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(text).map_err(|e| ApiError::invalid(format!("body: {e}")))
}

fn path<T>(path: std::result::Result<Path<T>, PathRejection>) -> Result<T> {
    path.map(|Path(value)| value)
        .map_err(|e| ApiError::invalid(e.body_text()))
}

/// The state, its version checked against a shared store first: the admin API reads what was
/// last written, by any picker.
async fn state(admin: &AdminState) -> Result<std::sync::Arc<crate::tenancy::model::TenancyState>> {
    Ok(admin.tenancy.state(Duration::ZERO).await?)
}

pub async fn list_tenants(State(admin): State<AdminState>) -> Result<Response> {
    let state = state(&admin).await?;
    let views: Vec<_> = state.tenants.values().map(|t| t.view()).collect();
    Ok(json(StatusCode::OK, &views))
}

pub async fn get_tenant(
    State(admin): State<AdminState>,
    name: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let name = path(name)?;
    validation::name("tenant", &name).map_err(ApiError::invalid)?;
    let state = state(&admin).await?;
    let tenant = state
        .tenants
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no tenant {name}")))?;
    Ok(json(StatusCode::OK, &tenant.view()))
}

pub async fn put_tenant(
    State(admin): State<AdminState>,
    name: std::result::Result<Path<String>, PathRejection>,
    bytes: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let name = path(name)?;
    let spec: TenantSpec = body(bytes, true)?;
    let outcome = admin.tenancy.change(&Op::PutTenant { name, spec }).await?;
    Ok(answer(outcome))
}

pub async fn delete_tenant(
    State(admin): State<AdminState>,
    name: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let name = path(name)?;
    let outcome = admin.tenancy.change(&Op::DeleteTenant { name }).await?;
    Ok(answer(outcome))
}

pub async fn put_project(
    State(admin): State<AdminState>,
    names: std::result::Result<Path<(String, String)>, PathRejection>,
    bytes: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let (tenant, project) = path(names)?;
    let spec: ProjectSpec = body(bytes, true)?;
    let op = Op::PutProject {
        tenant,
        project,
        spec,
    };
    Ok(answer(admin.tenancy.change(&op).await?))
}

pub async fn delete_project(
    State(admin): State<AdminState>,
    names: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<Response> {
    let (tenant, project) = path(names)?;
    let op = Op::DeleteProject { tenant, project };
    Ok(answer(admin.tenancy.change(&op).await?))
}

pub async fn create_key(
    State(admin): State<AdminState>,
    bytes: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let create: KeyCreate = body(bytes, false)?;
    let (new_secret, id) = secret::new_secret()
        .and_then(|s| secret::new_id().map(|id| (s, id)))
        .map_err(|why| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "unavailable", why))?;
    let op = Op::CreateKey {
        create,
        id,
        sha256: secret::sha256_hex(&new_secret),
    };
    let key = key_view(admin.tenancy.change(&op).await?)?;
    Ok(created(StatusCode::CREATED, key, new_secret))
}

/// `tenant=` and `include_revoked=true|false`.
pub async fn list_keys(
    State(admin): State<AdminState>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let mut tenant = None;
    let mut include_revoked = false;
    for (name, value) in form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "tenant" => {
                validation::name("tenant", &value).map_err(ApiError::invalid)?;
                tenant = Some(value.into_owned());
            }
            "include_revoked" => {
                include_revoked = match value.as_ref() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    other => {
                        return Err(ApiError::invalid(format!(
                            "include_revoked: {other:?} is not true or false"
                        )));
                    }
                }
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown query parameter {other:?}: use tenant, include_revoked"
                )));
            }
        }
    }
    let state = state(&admin).await?;
    let mut views: Vec<KeyView> = state
        .keys
        .values()
        .filter(|k| include_revoked || k.is_live())
        .filter(|k| tenant.as_ref().is_none_or(|t| *t == k.tenant))
        .map(|k| k.view())
        .collect();
    views.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
    Ok(json(StatusCode::OK, &views))
}

pub async fn get_key(
    State(admin): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let id = path(id)?;
    validation::name("id", &id).map_err(ApiError::invalid)?;
    let state = state(&admin).await?;
    let key = state
        .keys
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no key {id}")))?;
    Ok(json(StatusCode::OK, &key.view()))
}

pub async fn update_key(
    State(admin): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
    bytes: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let id = path(id)?;
    let update: KeyUpdate = body(bytes, false)?;
    let key = key_view(admin.tenancy.change(&Op::UpdateKey { id, update }).await?)?;
    Ok(json(StatusCode::OK, &key))
}

pub async fn rotate_key(
    State(admin): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let id = path(id)?;
    let new_secret = secret::new_secret()
        .map_err(|why| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "unavailable", why))?;
    let op = Op::RotateKey {
        id,
        sha256: secret::sha256_hex(&new_secret),
    };
    let key = key_view(admin.tenancy.change(&op).await?)?;
    Ok(created(StatusCode::OK, key, new_secret))
}

pub async fn revoke_key(
    State(admin): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let id = path(id)?;
    let key = key_view(admin.tenancy.change(&Op::RevokeKey { id }).await?)?;
    Ok(json(StatusCode::OK, &key))
}

/// The answer of a tenant or project change.
fn answer(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Tenant { view, created } => json(
            if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            &view,
        ),
        Outcome::Deleted => StatusCode::NO_CONTENT.into_response(),
        Outcome::Key(view) => json(StatusCode::OK, &view),
    }
}

fn key_view(outcome: Outcome) -> Result<KeyView> {
    match outcome {
        Outcome::Key(view) => Ok(view),
        _ => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unavailable",
            "a key change answered something else",
        )),
    }
}

/// The answer that carries a secret: not to be cached anywhere.
fn created(status: StatusCode, key: KeyView, secret: String) -> Response {
    let mut response = json(status, &KeyCreated { key, secret });
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
