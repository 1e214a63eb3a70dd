//! The Stratos cloud controller: IaaS drivers, member lifecycle, the topology.

pub mod app_env;
mod cluster_owners;
mod controller;
pub mod docker;
pub mod driver;
mod error;
pub mod exec;
mod frozen;
pub mod local;
pub mod member_user;
pub mod metrics;
pub mod mock_iaas;
pub mod ownership;
pub mod plan;
pub mod port_range;
mod procfs;
mod revisions;
pub mod simulated;
pub mod task;
pub mod volume;

pub use controller::{CloudController, ControllerConfig, ReconcileStats};
pub use docker::DockerDriver;
pub use driver::{
    Driver, DriverError, ExecOutput, ExecStream, Instance, InstanceState, Listing, MemberSpec, Unreachable,
};
pub use error::{ControllerError, MemberUserError, OwnershipError};
pub use local::LocalDriver;
pub use member_user::MemberUsers;
pub use mock_iaas::MockPatterns;
pub use ownership::Strangers;
pub use port_range::PortRange;
pub use simulated::SimulatedDriver;
pub use volume::SlotVolume;
