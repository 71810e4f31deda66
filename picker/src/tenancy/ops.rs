//! The admin API's changes as plain functions of the state: each checks what it is given and
//! the bounds, and says what to write (a `Change`) and what to answer, or why it is refused. The
//! caller commits the change to the store only if the state's version is still current, so two
//! admins (or two pickers sharing Redis) never interleave a check and a write.

use sluice_wire::admin::{KeyCreate, KeyUpdate, KeyView, ProjectSpec, TenantSpec, TenantView};
use sluice_wire::tenancy;

use super::model::{Change, KeyRecord, TenancyState, TenantRecord};
use super::validation;

/// How much the store may hold (the snapshot's bounds, or lower ones from `[tenancy]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub max_tenants: usize,
    pub max_projects_per_tenant: usize,
    /// Live (not revoked) keys.
    pub max_keys: usize,
    /// Revoked keys kept for audit; past it, revoking drops the longest-revoked one.
    pub max_revoked_keys: usize,
    pub max_snapshot_bytes: usize,
}

impl Bounds {
    pub fn new(max_tenants: usize, max_keys: usize) -> Self {
        Self {
            max_tenants,
            max_projects_per_tenant: tenancy::MAX_PROJECTS_PER_TENANT,
            max_keys,
            max_revoked_keys: max_keys,
            max_snapshot_bytes: tenancy::MAX_ENCODED_BYTES,
        }
    }
}

/// One change asked through the admin API. Secrets are made by the caller: only their digests
/// come here.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    PutTenant {
        name: String,
        spec: TenantSpec,
    },
    DeleteTenant {
        name: String,
    },
    PutProject {
        tenant: String,
        project: String,
        spec: ProjectSpec,
    },
    DeleteProject {
        tenant: String,
        project: String,
    },
    CreateKey {
        create: KeyCreate,
        id: String,
        sha256: String,
    },
    UpdateKey {
        id: String,
        update: KeyUpdate,
    },
    RotateKey {
        id: String,
        sha256: String,
    },
    RevokeKey {
        id: String,
    },
}

/// What the admin API answers after the change is committed.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Tenant { view: TenantView, created: bool },
    Deleted,
    Key(KeyView),
}

/// Why a change is refused; each maps to one status and error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// 400 `invalid`.
    Invalid(String),
    /// 404 `not_found`.
    NotFound(String),
    /// 409 `conflict`.
    Conflict(String),
    /// 409 `limit_reached`.
    LimitReached(String),
}

/// The change `op` makes to `state` (none when there is nothing to write, as when revoking a
/// revoked key) and the answer.
pub fn apply(
    state: &TenancyState,
    op: &Op,
    now_ms: u64,
    bounds: &Bounds,
) -> Result<(Option<Change>, Outcome), Refused> {
    let (change, outcome) = match op {
        Op::PutTenant { name, spec } => put_tenant(state, name, spec, now_ms, bounds)?,
        Op::DeleteTenant { name } => delete_tenant(state, name)?,
        Op::PutProject {
            tenant,
            project,
            spec,
        } => put_project(state, tenant, project, spec, now_ms, bounds)?,
        Op::DeleteProject { tenant, project } => delete_project(state, tenant, project, now_ms)?,
        Op::CreateKey { create, id, sha256 } => {
            create_key(state, create, id, sha256, now_ms, bounds)?
        }
        Op::UpdateKey { id, update } => update_key(state, id, update, now_ms)?,
        Op::RotateKey { id, sha256 } => rotate_key(state, id, sha256, now_ms)?,
        Op::RevokeKey { id } => revoke_key(state, id, now_ms, bounds)?,
    };
    if let Some(change) = &change {
        let bytes = state.snapshot_bytes_after(change);
        if bytes > bounds.max_snapshot_bytes && bytes > state.snapshot_bytes() {
            return Err(Refused::LimitReached(format!(
                "the tenancy snapshot would be about {bytes} bytes, more than the {} every Envoy accepts",
                bounds.max_snapshot_bytes
            )));
        }
    }
    Ok((change, outcome))
}

type Applied = (Option<Change>, Outcome);

fn put_tenant(
    state: &TenancyState,
    name: &str,
    spec: &TenantSpec,
    now_ms: u64,
    bounds: &Bounds,
) -> Result<Applied, Refused> {
    validation::name("tenant", name).map_err(Refused::Invalid)?;
    validation::tenant_spec(spec).map_err(Refused::Invalid)?;
    let existing = state.tenants.get(name);
    if existing.is_none() && state.tenants.len() >= bounds.max_tenants {
        return Err(Refused::LimitReached(format!(
            "{} tenants exist, the most this store keeps",
            state.tenants.len()
        )));
    }
    let record = TenantRecord {
        name: name.to_owned(),
        limits: spec.limits.clone(),
        models: spec.models.clone(),
        allowed_models: spec.allowed_models.clone(),
        // The projects are their own resource: replacing the tenant keeps them.
        projects: existing.map(|t| t.projects.clone()).unwrap_or_default(),
        updated_at_ms: now_ms,
    };
    let created = existing.is_none();
    let what = format!(
        "tenant {name} {}",
        if created { "created" } else { "replaced" }
    );
    let view = record.view();
    Ok((
        Some(Change {
            tenants: vec![(name.to_owned(), Some(record))],
            keys: Vec::new(),
            what,
        }),
        Outcome::Tenant { view, created },
    ))
}

fn delete_tenant(state: &TenancyState, name: &str) -> Result<Applied, Refused> {
    validation::name("tenant", name).map_err(Refused::Invalid)?;
    if !state.tenants.contains_key(name) {
        return Err(not_found_tenant(name));
    }
    let live = state
        .keys
        .values()
        .filter(|key| key.is_live() && key.tenant == name)
        .count();
    if live > 0 {
        return Err(Refused::Conflict(format!(
            "tenant {name} has {live} keys that are not revoked: revoke them first"
        )));
    }
    Ok((
        Some(Change {
            tenants: vec![(name.to_owned(), None)],
            keys: Vec::new(),
            what: format!("tenant {name} deleted"),
        }),
        Outcome::Deleted,
    ))
}

fn put_project(
    state: &TenancyState,
    tenant: &str,
    project: &str,
    spec: &ProjectSpec,
    now_ms: u64,
    bounds: &Bounds,
) -> Result<Applied, Refused> {
    validation::name("tenant", tenant).map_err(Refused::Invalid)?;
    validation::name("project", project).map_err(Refused::Invalid)?;
    validation::project_spec(spec).map_err(Refused::Invalid)?;
    let mut record = state
        .tenants
        .get(tenant)
        .cloned()
        .ok_or_else(|| not_found_tenant(tenant))?;
    let created = !record.projects.contains_key(project);
    if created && record.projects.len() >= bounds.max_projects_per_tenant {
        return Err(Refused::LimitReached(format!(
            "tenant {tenant} has {} projects, the most a tenant may have",
            record.projects.len()
        )));
    }
    record.projects.insert(project.to_owned(), spec.clone());
    record.updated_at_ms = now_ms;
    let view = record.view();
    Ok((
        Some(Change {
            tenants: vec![(tenant.to_owned(), Some(record))],
            keys: Vec::new(),
            what: format!(
                "project {tenant}/{project} {}",
                if created { "created" } else { "replaced" }
            ),
        }),
        Outcome::Tenant { view, created },
    ))
}

fn delete_project(
    state: &TenancyState,
    tenant: &str,
    project: &str,
    now_ms: u64,
) -> Result<Applied, Refused> {
    validation::name("tenant", tenant).map_err(Refused::Invalid)?;
    validation::name("project", project).map_err(Refused::Invalid)?;
    let mut record = state
        .tenants
        .get(tenant)
        .cloned()
        .ok_or_else(|| not_found_tenant(tenant))?;
    if record.projects.remove(project).is_none() {
        return Err(Refused::NotFound(format!(
            "tenant {tenant} has no project {project}"
        )));
    }
    let live = state
        .keys
        .values()
        .filter(|key| {
            key.is_live() && key.tenant == tenant && key.project.as_deref() == Some(project)
        })
        .count();
    if live > 0 {
        return Err(Refused::Conflict(format!(
            "project {tenant}/{project} has {live} keys that are not revoked: revoke them first"
        )));
    }
    record.updated_at_ms = now_ms;
    Ok((
        Some(Change {
            tenants: vec![(tenant.to_owned(), Some(record))],
            keys: Vec::new(),
            what: format!("project {tenant}/{project} deleted"),
        }),
        Outcome::Deleted,
    ))
}

fn create_key(
    state: &TenancyState,
    create: &KeyCreate,
    id: &str,
    sha256: &str,
    now_ms: u64,
    bounds: &Bounds,
) -> Result<Applied, Refused> {
    validation::key_create(create, now_ms).map_err(Refused::Invalid)?;
    let tenant = state
        .tenants
        .get(&create.tenant)
        .ok_or_else(|| not_found_tenant(&create.tenant))?;
    if let Some(project) = &create.project {
        if !tenant.projects.contains_key(project) {
            return Err(Refused::NotFound(format!(
                "tenant {} has no project {project}",
                create.tenant
            )));
        }
    }
    if state.keys.contains_key(id) {
        return Err(Refused::Conflict(format!("key id {id} is taken")));
    }
    let live = state.live_keys();
    if live >= bounds.max_keys {
        return Err(Refused::LimitReached(format!(
            "{live} keys are live, the most this store keeps: revoke some first"
        )));
    }
    let record = KeyRecord {
        id: id.to_owned(),
        sha256: sha256.to_owned(),
        tenant: create.tenant.clone(),
        project: create.project.clone(),
        name: create.name.clone(),
        limits: create.limits.clone(),
        allowed_models: create.allowed_models.clone(),
        expires_at_ms: create.expires_at_ms,
        created_at_ms: now_ms,
        rotated_at_ms: now_ms,
        revoked_at_ms: None,
    };
    let view = record.view();
    Ok((
        Some(Change {
            tenants: Vec::new(),
            keys: vec![(id.to_owned(), Some(record))],
            what: format!("key {id} created for tenant {}", create.tenant),
        }),
        Outcome::Key(view),
    ))
}

/// The key `id`, not revoked (a revoked key cannot be changed).
fn live_key<'a>(state: &'a TenancyState, id: &str, action: &str) -> Result<&'a KeyRecord, Refused> {
    validation::name("id", id).map_err(Refused::Invalid)?;
    let key = state
        .keys
        .get(id)
        .ok_or_else(|| Refused::NotFound(format!("no key {id}")))?;
    if !key.is_live() {
        return Err(Refused::Conflict(format!(
            "key {id} is revoked: it cannot be {action}"
        )));
    }
    Ok(key)
}

fn update_key(
    state: &TenancyState,
    id: &str,
    update: &KeyUpdate,
    now_ms: u64,
) -> Result<Applied, Refused> {
    validation::key_update(update, now_ms).map_err(Refused::Invalid)?;
    let mut record = live_key(state, id, "changed")?.clone();
    if let Some(name) = &update.name {
        record.name = Some(name.clone());
    }
    if let Some(limits) = &update.limits {
        record.limits = limits.clone();
    }
    if let Some(models) = &update.allowed_models {
        record.allowed_models = models.clone();
    }
    if let Some(expires) = update.expires_at_ms {
        record.expires_at_ms = expires;
    }
    let view = record.view();
    Ok((
        Some(Change {
            tenants: Vec::new(),
            keys: vec![(id.to_owned(), Some(record))],
            what: format!("key {id} updated"),
        }),
        Outcome::Key(view),
    ))
}

fn rotate_key(
    state: &TenancyState,
    id: &str,
    sha256: &str,
    now_ms: u64,
) -> Result<Applied, Refused> {
    let mut record = live_key(state, id, "rotated")?.clone();
    record.sha256 = sha256.to_owned();
    record.rotated_at_ms = now_ms;
    let view = record.view();
    Ok((
        Some(Change {
            tenants: Vec::new(),
            keys: vec![(id.to_owned(), Some(record))],
            what: format!("key {id} rotated"),
        }),
        Outcome::Key(view),
    ))
}

fn revoke_key(
    state: &TenancyState,
    id: &str,
    now_ms: u64,
    bounds: &Bounds,
) -> Result<Applied, Refused> {
    validation::name("id", id).map_err(Refused::Invalid)?;
    let mut record = state
        .keys
        .get(id)
        .cloned()
        .ok_or_else(|| Refused::NotFound(format!("no key {id}")))?;
    if record.revoked_at_ms.is_some() {
        // Revoking twice is not an error: the key is revoked, as asked.
        return Ok((None, Outcome::Key(record.view())));
    }
    record.revoked_at_ms = Some(now_ms);
    let view = record.view();
    let mut keys = vec![(id.to_owned(), Some(record))];
    let mut what = format!("key {id} revoked");
    let revoked = state.keys.values().filter(|key| !key.is_live());
    if revoked.clone().count() >= bounds.max_revoked_keys {
        if let Some(oldest) = revoked.min_by_key(|key| (key.revoked_at_ms, key.id.as_str())) {
            what.push_str(&format!(
                " (key {} dropped: the store keeps {} revoked keys)",
                oldest.id, bounds.max_revoked_keys
            ));
            keys.push((oldest.id.clone(), None));
        }
    }
    Ok((
        Some(Change {
            tenants: Vec::new(),
            keys,
            what,
        }),
        Outcome::Key(view),
    ))
}

fn not_found_tenant(name: &str) -> Refused {
    Refused::NotFound(format!("no tenant {name}"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_wire::tenancy::Limits;

    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn bounds() -> Bounds {
        Bounds::new(3, 2)
    }

    /// Applies `op` and commits it to `state` (version + 1); the answer.
    fn run(state: &mut TenancyState, op: Op) -> Result<Outcome, Refused> {
        let (change, outcome) = apply(state, &op, NOW, &bounds())?;
        if let Some(change) = change {
            let version = state.version + 1;
            state.apply(&change, version);
        }
        Ok(outcome)
    }

    fn tenant(name: &str) -> Op {
        Op::PutTenant {
            name: name.to_owned(),
            spec: TenantSpec::default(),
        }
    }

    fn create(id: &str, tenant: &str, project: Option<&str>) -> Op {
        Op::CreateKey {
            create: KeyCreate {
                tenant: tenant.to_owned(),
                project: project.map(str::to_owned),
                ..KeyCreate::default()
            },
            id: id.to_owned(),
            sha256: format!("{:0>64}", id.len()),
        }
    }

    fn revoke(id: &str) -> Op {
        Op::RevokeKey { id: id.to_owned() }
    }

    #[test]
    fn tenants_are_created_replaced_and_deleted() {
        let mut state = TenancyState::default();
        let Outcome::Tenant { created, .. } = run(&mut state, tenant("acme")).unwrap() else {
            panic!()
        };
        assert!(created);
        run(
            &mut state,
            Op::PutProject {
                tenant: "acme".to_owned(),
                project: "web".to_owned(),
                spec: ProjectSpec::default(),
            },
        )
        .unwrap();
        let replaced = Op::PutTenant {
            name: "acme".to_owned(),
            spec: TenantSpec {
                limits: Limits {
                    requests_per_minute: Some(5),
                    ..Limits::default()
                },
                ..TenantSpec::default()
            },
        };
        let Outcome::Tenant { view, created } = run(&mut state, replaced).unwrap() else {
            panic!()
        };
        assert!(!created);
        assert_eq!(view.limits.requests_per_minute, Some(5));
        assert!(view.projects.contains_key("web"), "projects are kept");
        assert_eq!(
            run(
                &mut state,
                Op::DeleteTenant {
                    name: "acme".to_owned()
                }
            ),
            Ok(Outcome::Deleted)
        );
        assert!(state.tenants.is_empty());
        assert!(matches!(
            run(
                &mut state,
                Op::DeleteTenant {
                    name: "acme".to_owned()
                }
            ),
            Err(Refused::NotFound(_))
        ));
    }

    #[test]
    fn refusals() {
        let mut state = TenancyState::default();
        assert!(matches!(
            run(&mut state, tenant("a b")),
            Err(Refused::Invalid(why)) if why.starts_with("tenant:")
        ));
        for name in ["a", "b", "c"] {
            run(&mut state, tenant(name)).unwrap();
        }
        assert!(matches!(
            run(&mut state, tenant("d")),
            Err(Refused::LimitReached(_))
        ));
        // Replacing an existing tenant is not a new one.
        run(&mut state, tenant("c")).unwrap();
        assert!(matches!(
            run(&mut state, create("key_1", "nobody", None)),
            Err(Refused::NotFound(why)) if why == "no tenant nobody"
        ));
        assert!(matches!(
            run(&mut state, create("key_1", "a", Some("web"))),
            Err(Refused::NotFound(why)) if why == "tenant a has no project web"
        ));
        run(&mut state, create("key_1", "a", None)).unwrap();
        assert!(matches!(
            run(&mut state, create("key_1", "a", None)),
            Err(Refused::Conflict(_))
        ));
        run(&mut state, create("key_2", "a", None)).unwrap();
        assert!(matches!(
            run(&mut state, create("key_3", "a", None)),
            Err(Refused::LimitReached(_))
        ));
        // A tenant with live keys stays.
        assert!(matches!(
            run(&mut state, Op::DeleteTenant { name: "a".to_owned() }),
            Err(Refused::Conflict(why)) if why.contains("2 keys")
        ));
        // Revoking frees a slot.
        run(&mut state, revoke("key_1")).unwrap();
        run(&mut state, create("key_3", "a", None)).unwrap();
        assert!(matches!(
            run(&mut state, Op::RotateKey { id: "key_1".to_owned(), sha256: "f".repeat(64) }),
            Err(Refused::Conflict(why)) if why.contains("revoked")
        ));
        assert!(matches!(
            run(
                &mut state,
                Op::UpdateKey {
                    id: "key_1".to_owned(),
                    update: KeyUpdate::default()
                }
            ),
            Err(Refused::Conflict(_))
        ));
        assert!(matches!(
            run(
                &mut state,
                Op::UpdateKey {
                    id: "key_9".to_owned(),
                    update: KeyUpdate::default()
                }
            ),
            Err(Refused::NotFound(_))
        ));
    }

    #[test]
    fn projects_are_bounded_and_kept_while_keys_use_them() {
        let mut state = TenancyState::default();
        run(&mut state, tenant("acme")).unwrap();
        let project = |name: &str| Op::PutProject {
            tenant: "acme".to_owned(),
            project: name.to_owned(),
            spec: ProjectSpec::default(),
        };
        let small = Bounds {
            max_projects_per_tenant: 1,
            ..bounds()
        };
        let (change, _) = apply(&state, &project("web"), NOW, &small).unwrap();
        state.apply(&change.unwrap(), 2);
        assert!(matches!(
            apply(&state, &project("mobile"), NOW, &small),
            Err(Refused::LimitReached(_))
        ));
        assert!(matches!(
            run(&mut state, project("no/slash")),
            Err(Refused::Invalid(why)) if why.starts_with("project:")
        ));
        run(&mut state, create("key_1", "acme", Some("web"))).unwrap();
        let delete = Op::DeleteProject {
            tenant: "acme".to_owned(),
            project: "web".to_owned(),
        };
        assert!(matches!(
            run(&mut state, delete.clone()),
            Err(Refused::Conflict(_))
        ));
        run(&mut state, revoke("key_1")).unwrap();
        assert_eq!(run(&mut state, delete.clone()), Ok(Outcome::Deleted));
        assert!(matches!(run(&mut state, delete), Err(Refused::NotFound(_))));
    }

    #[test]
    fn keys_are_updated_rotated_and_revoked_once() {
        let mut state = TenancyState::default();
        run(&mut state, tenant("acme")).unwrap();
        run(&mut state, create("key_1", "acme", None)).unwrap();
        let before = state.keys["key_1"].clone();
        let update = KeyUpdate {
            name: Some("ci".to_owned()),
            allowed_models: Some(Some(vec!["llama".to_owned()])),
            expires_at_ms: Some(Some(NOW + 1)),
            limits: None,
        };
        let Outcome::Key(view) = run(
            &mut state,
            Op::UpdateKey {
                id: "key_1".to_owned(),
                update,
            },
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(view.name.as_deref(), Some("ci"));
        assert_eq!(view.expires_at_ms, Some(NOW + 1));
        assert_eq!(state.keys["key_1"].sha256, before.sha256);
        // `null` lifts a restriction.
        run(
            &mut state,
            Op::UpdateKey {
                id: "key_1".to_owned(),
                update: KeyUpdate {
                    allowed_models: Some(None),
                    expires_at_ms: Some(None),
                    ..KeyUpdate::default()
                },
            },
        )
        .unwrap();
        assert_eq!(state.keys["key_1"].allowed_models, None);
        assert_eq!(state.keys["key_1"].expires_at_ms, None);
        run(
            &mut state,
            Op::RotateKey {
                id: "key_1".to_owned(),
                sha256: "e".repeat(64),
            },
        )
        .unwrap();
        assert_eq!(state.keys["key_1"].sha256, "e".repeat(64));
        let version = state.version;
        let Outcome::Key(revoked) = run(&mut state, revoke("key_1")).unwrap() else {
            panic!()
        };
        assert_eq!(revoked.revoked_at_ms, Some(NOW));
        assert_eq!(state.version, version + 1);
        // Again: the same answer, nothing written.
        let (change, Outcome::Key(again)) =
            apply(&state, &revoke("key_1"), NOW + 5, &bounds()).unwrap()
        else {
            panic!()
        };
        assert!(change.is_none());
        assert_eq!(again.revoked_at_ms, Some(NOW));
    }

    #[test]
    fn the_longest_revoked_key_is_dropped_past_the_bound() {
        let mut state = TenancyState::default();
        run(&mut state, tenant("acme")).unwrap();
        let mut revoked_at = 0;
        for id in ["key_1", "key_2", "key_3"] {
            run(&mut state, create(id, "acme", None)).unwrap();
            revoked_at += 1;
            let (change, _) = apply(&state, &revoke(id), NOW + revoked_at, &bounds()).unwrap();
            let change = change.unwrap();
            if id == "key_3" {
                assert!(change.what.contains("key key_1 dropped"), "{}", change.what);
            }
            let version = state.version + 1;
            state.apply(&change, version);
        }
        let ids: Vec<&str> = state.keys.keys().map(String::as_str).collect();
        assert_eq!(ids, ["key_2", "key_3"]);
    }

    #[test]
    fn a_snapshot_over_the_bound_is_refused() {
        let mut state = TenancyState::default();
        let tight = Bounds {
            max_snapshot_bytes: 400,
            ..bounds()
        };
        let (change, _) = apply(&state, &tenant("acme"), NOW, &tight).unwrap();
        state.apply(&change.unwrap(), 1);
        let big = Op::PutTenant {
            name: "acme".to_owned(),
            spec: TenantSpec {
                models: (0..40)
                    .map(|i| (format!("model-{i}"), Limits::default()))
                    .collect::<BTreeMap<_, _>>(),
                ..TenantSpec::default()
            },
        };
        assert!(matches!(
            apply(&state, &big, NOW, &tight),
            Err(Refused::LimitReached(why)) if why.contains("snapshot")
        ));
    }

    #[test]
    fn changes_say_what_they_did_without_secrets() {
        let mut state = TenancyState::default();
        run(&mut state, tenant("acme")).unwrap();
        let (change, _) = apply(&state, &create("key_1", "acme", None), NOW, &bounds()).unwrap();
        let change = change.unwrap();
        assert_eq!(change.what, "key key_1 created for tenant acme");
        assert!(!change.what.contains(&"0".repeat(60)));
    }
}
