//! One-off tasks on the docker driver (`stratos application run`): a container of the
//! cartridge's image running the command itself (no agent), confined as members are
//! (`container.rs`: uid, no capabilities, limits, read-only bundle), on the tenant's
//! network, with the member's environment but no bus credentials. It has the platform's
//! label and a task label but no member label, so the driver never lists it as a member.
//! Its output is attached before it starts; once it exits (or whoever reads it goes
//! away) it is removed by force, which also stops it; so is one whose client goes away
//! before it starts (the request's future dropped).

use std::collections::HashMap;

use bollard::query_parameters::{AttachContainerOptionsBuilder, CreateContainerOptionsBuilder};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::error::status;
use super::{container, labels, network, tenant_network, DockerDriver, DockerError, NETWORK_PROPERTY, WORK};
use crate::driver::{ExecOutput, ExecStream, MemberSpec};

/// The label a task's container carries (its task member id).
pub const TASK: &str = "io.stratos.task";

impl DockerDriver {
    pub(super) async fn start_task(&self, spec: &MemberSpec, command: &[String]) -> Result<ExecStream, DockerError> {
        let host = self.host_of(&spec.placement);
        let docker = self.engines.get(&host).await?;
        let image = spec.image.as_deref().filter(|i| !i.is_empty()).ok_or(DockerError::NoImageName)?;
        match docker.inspect_image(image).await {
            Ok(_) => {}
            Err(e) if status(&e) == Some(404) => {
                return Err(DockerError::ImageMissing { image: image.into(), host: host.clone() })
            }
            Err(e) => return Err(DockerError::engine(&host, format!("inspect image {image:?}"))(e)),
        }
        let network = spec
            .placement
            .get(NETWORK_PROPERTY)
            .filter(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| tenant_network(&spec.platform_id, spec.tenant_id));
        self.ensured.lock().unwrap().insert((host.clone(), network.clone()), std::time::Instant::now());
        network::ensure(&docker, &host, &network, &spec.platform_id, spec.tenant_id).await?;
        let bundle = self.bundle()?;
        let mut command = command.to_vec();
        if command.first().is_some_and(|c| c == "stratos") {
            let rest: Vec<&str> = command[1..].iter().map(String::as_str).collect();
            command = bundle.command(&rest);
        }
        let mut env: Vec<String> =
            spec.env.iter().filter(|(k, _)| !k.starts_with("STRATOS_BUS_")).map(|(k, v)| format!("{k}={v}")).collect();
        env.extend(
            [
                ("STRATOS_MEMBER_ID", spec.member_id.clone()),
                ("STRATOS_CLUSTER_ID", spec.cluster_id.clone()),
                ("STRATOS_SERVICE_NAME", spec.service_name.clone()),
                ("STRATOS_APP_ID", spec.app_id.clone()),
                ("STRATOS_TENANT_ID", spec.tenant_id.to_string()),
                ("STRATOS_NETWORK_PARTITION_ID", spec.network_partition_id.clone()),
                ("STRATOS_PARTITION_ID", spec.partition_id.clone()),
                ("STRATOS_PLATFORM_ID", spec.platform_id.clone()),
                ("STRATOS_TASK", "true".into()),
                ("HOME", WORK.to_string()),
            ]
            .map(|(k, v)| format!("{k}={v}")),
        );
        let task_labels: HashMap<String, String> = [
            (labels::PLATFORM, spec.platform_id.clone()),
            (TASK, spec.member_id.clone()),
            (labels::CLUSTER, spec.cluster_id.clone()),
            (labels::APPLICATION, spec.app_id.clone()),
            (labels::TENANT, spec.tenant_id.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut body =
            container::create_body(spec, image, &bundle, &self.config.confinement, &network, env, task_labels);
        body.entrypoint = Some(command);
        body.cmd = Some(Vec::new());
        let name = labels::container_name(&spec.member_id);
        let create = CreateContainerOptionsBuilder::default().name(&name).build();
        docker
            .create_container(Some(create), body)
            .await
            .map_err(DockerError::engine(&host, format!("create container {name:?}")))?;
        // From here the container goes if this future is dropped (the client went away
        // before the task started): the relay below takes it over once it runs.
        let mut guard = RemoveOnDrop { docker: Some(docker.clone()), name: name.clone() };
        let attach = AttachContainerOptionsBuilder::default().stream(true).stdout(true).stderr(true).logs(true).build();
        // (An error returned drops the guard too: the container goes.)
        let attached = docker
            .attach_container(&name, Some(attach))
            .await
            .map_err(DockerError::engine(&host, format!("attach to container {name:?}")))?;
        docker
            .start_container(&name, None)
            .await
            .map_err(DockerError::engine(&host, format!("start container {name:?}")))?;
        info!(member_id = %spec.member_id, container = %name, %host, %network, "task container started");
        guard.docker = None;
        let (tx, rx) = mpsc::channel(64);
        let mut output = attached.output;
        let (engine, member_id) = (docker.clone(), spec.member_id.clone());
        tokio::spawn(async move {
            let mut reader_gone = false;
            loop {
                tokio::select! {
                    item = output.next() => match item {
                        Some(Ok(item)) => {
                            let out = match item {
                                bollard::container::LogOutput::StdErr { message } => ExecOutput::Stderr(message.to_vec()),
                                other => ExecOutput::Stdout(other.into_bytes().to_vec()),
                            };
                            if tx.send(out).await.is_err() {
                                reader_gone = true;
                                break;
                            }
                        }
                        _ => break,
                    },
                    () = tx.closed() => {
                        reader_gone = true;
                        break;
                    }
                }
            }
            if !reader_gone {
                let code = engine
                    .wait_container(&name, None)
                    .next()
                    .await
                    .map(|r| match r {
                        Ok(w) => Some(w.status_code as i32),
                        // bollard reports a non-zero exit as an error carrying the code.
                        Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => Some(code as i32),
                        Err(_) => None,
                    })
                    .unwrap_or(None);
                let _ = tx.send(ExecOutput::Exit(code)).await;
            }
            let options = bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).build();
            match engine.remove_container(&name, Some(options)).await {
                Err(e) if status(&e) != Some(404) => {
                    warn!(member_id = %member_id, container = %name, error = %e, "cannot remove the task's container")
                }
                _ => info!(member_id = %member_id, container = %name, "task ended and removed"),
            }
        });
        Ok(rx)
    }
}

/// Removes a task's container (by force) when dropped, unless disarmed (`docker` taken).
struct RemoveOnDrop {
    docker: Option<bollard::Docker>,
    name: String,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let Some(docker) = self.docker.take() else { return };
        let name = std::mem::take(&mut self.name);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let options = bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).build();
                if let Err(e) = docker.remove_container(&name, Some(options)).await {
                    warn!(container = %name, error = %e, "cannot remove an abandoned task's container");
                } else {
                    info!(container = %name, "abandoned task's container removed");
                }
            });
        }
    }
}
