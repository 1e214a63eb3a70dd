//! The drivers behind the API's volume and task routes (`DriversWorkloads`, given to the
//! manager by `stratos up`), and the client commands `stratos volume list [APP]` and
//! `stratos application run APP [--cluster ALIAS] -- CMD...`.

use std::sync::Arc;

use anyhow::Result;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;
use stratos_cloud::{Driver, ExecOutput};
use stratos_manager::deploy_checks::BoxFuture;
use stratos_manager::member_exec::ExecFrame;
use stratos_manager::workloads::{VolumeView, Workloads};
use stratos_model::{ClusterSpec, Deployment};
use stratos_store::Store;
use tokio::sync::mpsc;

use crate::client::{ApiArgs, Client};
use crate::output::{print_one, Output};

/// The platform's drivers, with the store a task's cartridge is read from.
pub struct DriversWorkloads {
    pub drivers: Vec<Arc<dyn Driver>>,
    pub store: Store,
}

impl Workloads for DriversWorkloads {
    fn list_volumes(&self) -> BoxFuture<'_, Result<Vec<VolumeView>, String>> {
        Box::pin(async move {
            let platform_id = self.store.platform_id().await.map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            for driver in &self.drivers {
                let volumes = driver.list_volumes().await.map_err(|e| e.to_string())?;
                out.extend(volumes.into_iter().filter(|v| Some(&v.platform_id) == platform_id.as_ref()).map(|v| {
                    VolumeView {
                        application_id: v.application_id,
                        cluster_id: v.cluster_id,
                        slot: v.slot,
                        volume_id: v.volume_id,
                        mapping_path: v.mapping_path,
                        size: v.size,
                        remove_on_termination: v.remove_on_termination,
                        driver: v.driver,
                        name: v.name,
                        member_id: None,
                        tenant_id: v.tenant_id,
                    }
                }));
            }
            Ok(out)
        })
    }

    fn run_task<'a>(
        &'a self,
        deployment: &'a Deployment,
        spec: &'a ClusterSpec,
        command: Vec<String>,
    ) -> BoxFuture<'a, Result<mpsc::Receiver<ExecFrame>, String>> {
        Box::pin(async move {
            let defs = self.store.load_definitions(deployment.tenant_id).await.map_err(|e| e.to_string())?;
            let (topology, _unreadable) = self.store.read_topology().await.map_err(|e| e.to_string())?;
            let platform_id = self.store.platform_id().await.map_err(|e| e.to_string())?.unwrap_or_default();
            let task_id = stratos_cloud::task::new_task_id();
            let (provider, member) = stratos_cloud::task::task_spec(
                deployment,
                spec,
                topology.cluster(&spec.cluster_id),
                &defs,
                &platform_id,
                &task_id,
            )
            .map_err(|e| e.to_string())?;
            let driver = self
                .drivers
                .iter()
                .find(|d| d.name() == provider)
                .ok_or_else(|| format!("this platform has no {provider:?} driver"))?;
            let mut output = driver.run_task(&member, &command).await.map_err(|e| e.to_string())?;
            let (tx, rx) = mpsc::channel(64);
            tokio::spawn(async move {
                loop {
                    // A task that prints nothing must still end when the client goes away:
                    // dropping `output` (returning) ends it.
                    let item = tokio::select! {
                        item = output.recv() => item,
                        () = tx.closed() => return,
                    };
                    let Some(item) = item else { return };
                    let frame = match item {
                        ExecOutput::Stdout(b) => ExecFrame::Stdout(b),
                        ExecOutput::Stderr(b) => ExecFrame::Stderr(b),
                        ExecOutput::Exit(code) => ExecFrame::Exit(code),
                    };
                    if tx.send(frame).await.is_err() {
                        return;
                    }
                }
            });
            Ok(rx)
        })
    }
}

/// `stratos application run`: returns the command's exit code.
pub async fn run_task(client: &Client, app: &str, cluster: Option<String>, command: Vec<String>) -> Result<i32> {
    let body = serde_json::json!({ "command": command, "cluster": cluster }).to_string();
    crate::member_exec::relay(client, &format!("/api/applications/{app}/run"), body).await
}

#[derive(Args)]
pub struct VolumeArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    action: VolumeAction,
}

#[derive(Subcommand)]
enum VolumeAction {
    /// List persistent volumes (cartridges' `persistence`): one per cluster, member slot
    /// and volume id, with its mapping path, size (recorded, not enforced), whether it is
    /// removed on termination, its driver and name, and the member of its slot now.
    ///
    /// A volume outlives its member: the member replacing it takes the same slot and finds
    /// it. With removeOnTermination it goes once its slot is not used for good (the
    /// cluster scaled in below it, or the application undeployed); without, it is kept.
    #[command(verbatim_doc_comment)]
    List {
        /// Only this application's volumes.
        application: Option<String>,
    },
}

pub async fn run(args: VolumeArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    let VolumeAction::List { application } = args.action;
    let path = match &application {
        Some(app) => format!("/api/volumes?application={app}"),
        None => "/api/volumes".to_string(),
    };
    let volumes = client.call(Method::GET, &path, None).await?.unwrap_or_default();
    if args.output != Output::Table {
        print_one(&volumes, args.output);
        return Ok(());
    }
    let volumes: Vec<Value> = volumes.as_array().cloned().unwrap_or_default();
    if volumes.is_empty() {
        println!("no volumes");
        return Ok(());
    }
    let mut table = crate::output::table(vec![
        "APPLICATION",
        "CLUSTER",
        "SLOT",
        "VOLUME",
        "PATH",
        "SIZE",
        "REMOVE ON TERMINATION",
        "DRIVER",
        "MEMBER",
    ]);
    for v in volumes {
        let text = |k: &str| v[k].as_str().unwrap_or("-").to_string();
        crate::output::add_row(
            &mut table,
            vec![
                text("applicationId"),
                text("clusterId"),
                v["slot"].to_string(),
                text("volumeId"),
                text("mappingPath"),
                v["size"].as_u64().map_or("-".into(), |s| format!("{s}G")),
                v["removeOnTermination"].to_string(),
                text("driver"),
                text("memberId"),
            ],
        );
    }
    println!("{table}");
    Ok(())
}
