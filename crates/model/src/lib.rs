//! Stratos definitions and topology: pure types and their validation.
//!
//! Field names follow Apache Stratos 4.1 so that existing definitions load
//! unchanged. Every validation problem carries the path of its field.

mod application;
mod application_policy;
mod autoscaling_policy;
mod cartridge;
mod cartridge_group;
pub mod claims;
mod container;
mod definitions;
mod deployment;
mod deployment_policy;
pub mod duration;
mod health_check;
mod kind;
mod lenient;
pub mod mock_iaas;
mod network_partition;
mod parse;
pub mod placement;
mod problems;
mod property;
mod repository;
mod revision;
mod tenant;
mod timings;
pub mod topology;

pub use application::*;
pub use application_policy::*;
pub use autoscaling_policy::*;
pub use cartridge::*;
pub use cartridge_group::*;
pub use container::{parse_cpu, parse_memory, Limits, Volume, CPU_PROPERTY, MEMORY_PROPERTY, RESERVED_TARGET};
pub use definitions::{Definition, Definitions};
pub use deployment::*;
pub use deployment_policy::*;
pub use health_check::*;
pub use kind::Kind;
pub use mock_iaas::MockIaasConfig;
pub use network_partition::*;
pub use parse::{parse, parse_valid, Format};
pub use problems::{Problem, Problems};
pub use property::{property, Property};
pub use repository::{check_repo_url, RepoUrlPolicy};
pub use revision::*;
pub use tenant::Tenant;
pub use timings::DurationStats;

/// What [`Problems::check_id`] accepts, as an ECMA-262 pattern for the OpenAPI
/// document (with `minLength` 1 and `maxLength` 128): letters, digits, `.`, `_`
/// and `-`, at least one of them not a dot.
pub const ID_PATTERN: &str = "^[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*$";

/// The tenant that owns platform-wide definitions (Apache Stratos' super tenant id).
pub const SUPER_TENANT: i64 = -1234;
