//! What the manager asks the platform's drivers beyond exec: their persistent volumes
//! (`GET /api/volumes`) and one-off tasks (`POST /api/applications/{id}/run`). `stratos
//! up` gives the manager its drivers through [`Workloads`]; without it (API tests) there
//! are no volumes and tasks answer 501.

use stratos_model::{ClusterSpec, Deployment};
use tokio::sync::mpsc;

use crate::deploy_checks::BoxFuture;
use crate::member_exec::ExecFrame;

/// A persistent volume of a member slot, as `stratos volume list` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeView {
    pub application_id: String,
    pub cluster_id: String,
    /// The member slot the volume belongs to (the member holding it, or the next one given it).
    pub slot: u32,
    /// The cartridge's volume id.
    pub volume_id: String,
    pub mapping_path: String,
    /// Gigabytes as the cartridge asks; recorded, not enforced by the local or docker driver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    pub remove_on_termination: bool,
    /// The driver that made it (`local`, `docker`).
    pub driver: String,
    /// The driver's name for it: the Docker volume, or the local directory.
    pub name: String,
    /// The member of the slot now, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    #[serde(skip)]
    pub tenant_id: i64,
}

/// The platform's drivers, for volumes and tasks.
pub trait Workloads: Send + Sync {
    /// Every volume of this platform, every tenant's (the manager scopes them).
    fn list_volumes(&self) -> BoxFuture<'_, Result<Vec<VolumeView>, String>>;

    /// Runs `command` as a one-off task of cluster `spec` of `deployment`; `Err` says why not.
    fn run_task<'a>(
        &'a self,
        deployment: &'a Deployment,
        spec: &'a ClusterSpec,
        command: Vec<String>,
    ) -> BoxFuture<'a, Result<mpsc::Receiver<ExecFrame>, String>>;
}
