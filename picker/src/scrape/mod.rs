//! Scraping the model servers: fetching each metrics page (`client`), reading it
//! (`exposition`, then `signals` for each server's metric names) and running the periodic rounds
//! that feed the registry and publish snapshots (`rounds`).

pub mod client;
pub mod exposition;
pub mod rounds;
pub mod signals;

pub use signals::{Load, ServerKind};
