//! The spend ledger: what every tenant, key, project and model used and cost, per hour, fed by
//! the spend rows every Envoy reports in the quota sync; and the report over it (JSON or CSV)
//! with where each budget stands.

pub mod aggregate;
pub mod budget;
pub mod csv;
pub mod period;
pub mod query;
pub mod report;
pub mod row;
