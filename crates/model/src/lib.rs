//! Stratos definitions and topology: pure types and their validation.
//!
//! Field names follow Apache Stratos 4.1 so that existing definitions load
//! unchanged. Every validation problem carries the path of its field.

mod application;
mod application_policy;
mod autoscaling_policy;
mod cartridge;
mod definitions;
mod deployment;
mod deployment_policy;
mod health_check;
mod kind;
mod lenient;
mod network_partition;
mod parse;
pub mod placement;
mod problems;
mod property;
mod repository;
mod tenant;
mod timings;
pub mod topology;

pub use application::*;
pub use application_policy::*;
pub use autoscaling_policy::*;
pub use cartridge::*;
pub use definitions::{Definition, Definitions};
pub use deployment::*;
pub use deployment_policy::*;
pub use health_check::*;
pub use kind::Kind;
pub use network_partition::*;
pub use parse::{parse, parse_valid, Format};
pub use problems::{Problem, Problems};
pub use property::{property, Property};
pub use repository::{check_repo_url, RepoUrlPolicy};
pub use tenant::Tenant;
pub use timings::DurationStats;

/// The tenant that owns platform-wide definitions (Apache Stratos' super tenant id).
pub const SUPER_TENANT: i64 = -1234;
