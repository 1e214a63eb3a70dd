//! The Stratos cloud controller: IaaS drivers, member lifecycle, the topology.

mod controller;
pub mod driver;
pub mod local;
pub mod member_user;
mod procfs;
pub mod simulated;

pub use controller::{CloudController, ControllerConfig, ReconcileStats};
pub use driver::{Driver, DriverError, Instance, InstanceState, MemberSpec};
pub use local::LocalDriver;
pub use member_user::MemberUsers;
pub use simulated::SimulatedDriver;
