//! The controller's decisions, pure: given the desired state (deployments, scale
//! records, definitions), the actual one (the topology's members, the drivers'
//! listing) and the failure history, each function returns what to do — members to
//! create (with their partition and driver), to drain, to terminate, orphans to reap,
//! members to adopt, errors to keep on clusters. Nothing here does I/O or reads the
//! clock; the controller (`controller.rs`) executes the plans.
//!
//! One concern per module, in the order a reconcile asks them:
//! - `places`: places (engines) a driver cannot reach, each with its grace period;
//! - `members`: the members against the listing (gone, orphans, adoption);
//! - `timeouts`: members late to activate or to drain;
//! - `cluster`: one deployed cluster's plan (policies, drivers), through `scale`
//!   (how many, where, which leave; a rolling restart's or rollout's step through
//!   `restart`, old members being those of another revision, `rollout`) and
//!   `backoff` (failures, back-off, avoided partitions);
//! - `slots`: members' slots, and when a slot's persistent volumes are removed.

pub mod backoff;
pub mod cluster;
pub mod members;
pub mod places;
pub mod restart;
pub mod rollout;
pub mod scale;
pub mod slots;
pub mod timeouts;

#[cfg(test)]
pub(crate) mod testing;

pub use backoff::{Failure, FailureHistory};
pub use cluster::{dependencies_active, plan_cluster, ClusterContext, ClusterPlan, Creation};
pub use members::{judge, Gone, Judgement, Listed, MembersInput};
pub use places::{Places, Unseen};
pub use timeouts::{overdue, Overdue, TimeoutInput};
