//! `stratos up`'s docker driver: its flags, whether it is offered, and its deploy-time
//! check (a cartridge's image exists on the partition's engine).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use clap::Args;
use stratos_cloud::docker::{self, Confinement, DockerConfig, DockerDriver, MemberBus};
use stratos_manager::deploy_checks::{BoxFuture, DeployCheck};

#[derive(Args, Clone)]
pub struct DockerArgs {
    /// The Docker Engine members of `docker` partitions run on when the partition names
    /// none (its `dockerHost` property): a unix socket path or URL, or tcp://HOST:PORT.
    /// The docker driver is offered only if this engine answers at start.
    #[arg(long, env = "STRATOS_DOCKER_HOST", default_value = docker::DEFAULT_HOST)]
    docker_host: String,
    /// Do not offer the docker driver, even if an engine answers.
    #[arg(long)]
    no_docker: bool,
    /// The uid:gid every member container runs as (never root: no account is needed in
    /// the image; pick one that is nobody's on the host).
    #[arg(long, value_parser = parse_user, default_value_t = format!("{0}:{0}", docker::DEFAULT_UID))]
    docker_member_user: String,
    /// Processes and threads a member container may have (its fork bomb stops there).
    #[arg(long, default_value_t = Confinement::default().pids_limit)]
    docker_pids_limit: i64,
    /// CPUs of a member whose cartridge sets none (iaasProvider `cpu`, or 4.1's
    /// KUBERNETES_CONTAINER_CPU): 0.5, 2, 500m.
    #[arg(long, value_parser = stratos_model::parse_cpu, default_value = "1")]
    docker_default_cpus: i64,
    /// Memory of a member whose cartridge sets none (iaasProvider `memory`, or 4.1's
    /// KUBERNETES_CONTAINER_MEMORY): 256Mi, 1Gi.
    #[arg(long, value_parser = stratos_model::parse_memory, default_value = "512Mi")]
    docker_default_memory: i64,
    /// With --broker: the URL member containers reach that broker at (the platform's own
    /// may be a loopback address, which a container cannot reach).
    #[arg(long, requires = "broker")]
    docker_broker_url: Option<String>,
    /// How long a tenant network of this platform that no member container uses (and no
    /// start made or used meanwhile) is kept before it is removed from its engine.
    #[arg(long, value_name = "DURATION", value_parser = stratos_model::duration::parse, default_value = "60s")]
    docker_network_idle: std::time::Duration,
}

fn parse_user(text: &str) -> Result<String, String> {
    let (uid, gid) = text.split_once(':').unwrap_or((text, text));
    let uid: u32 = uid.parse().map_err(|_| format!("{text:?} is not UID:GID (numbers)"))?;
    let gid: u32 = gid.parse().map_err(|_| format!("{text:?} is not UID:GID (numbers)"))?;
    if uid == 0 || gid == 0 {
        return Err("member containers never run as root (uid or gid 0)".into());
    }
    Ok(format!("{uid}:{gid}"))
}

impl DockerArgs {
    fn confinement(&self) -> Confinement {
        let (uid, gid) = self.docker_member_user.split_once(':').expect("parsed as UID:GID");
        Confinement {
            uid: uid.parse().expect("parsed"),
            gid: gid.parse().expect("parsed"),
            pids_limit: self.docker_pids_limit,
            default_nano_cpus: self.docker_default_cpus,
            default_memory_bytes: self.docker_default_memory,
            ..Confinement::default()
        }
    }

    /// The default engine.
    pub fn host(&self) -> &str {
        &self.docker_host
    }

    /// The bus as member containers reach it: the embedded broker's gate on each tenant
    /// network's gateway, or the external broker's URL.
    pub fn member_bus(
        &self,
        embedded: Option<Arc<stratos_bus::EmbeddedBroker>>,
        broker_url: &str,
    ) -> Arc<dyn MemberBus> {
        match embedded {
            Some(broker) => broker as Arc<dyn MemberBus>,
            None => {
                Arc::new(docker::GivenBus(self.docker_broker_url.clone().unwrap_or_else(|| broker_url.to_string())))
            }
        }
    }

    /// The driver, if it is offered and its default engine answers (else why not, logged).
    pub async fn driver(
        &self,
        agent: &Path,
        data_dir: &Path,
        platform_id: Option<String>,
    ) -> anyhow::Result<Option<Arc<DockerDriver>>> {
        if self.no_docker {
            return Ok(None);
        }
        let config = DockerConfig {
            default_host: self.docker_host.clone(),
            confinement: self.confinement(),
            network_idle: self.docker_network_idle,
        };
        let driver = DockerDriver::new(config, agent, &docker::bundle_root(data_dir))?.with_platform_id(platform_id);
        if let Err(e) = driver.reachable().await {
            tracing::info!(error = %e, "the docker driver is off: no Docker Engine answers (--docker-host)");
            return Ok(None);
        }
        Ok(Some(Arc::new(driver)))
    }
}

/// The docker driver's deploy-time check: the image is on the engine.
pub struct ImageCheck(pub Arc<DockerDriver>);

impl DeployCheck for ImageCheck {
    fn provider(&self) -> &'static str {
        "docker"
    }

    fn check<'a>(
        &'a self,
        iaas: &'a stratos_model::IaasProvider,
        properties: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let Some(image) = iaas.image_id.as_deref() else { return Ok(()) };
            let properties: HashMap<String, String> = properties.clone().into_iter().collect();
            let host = self.0.host_of(&properties);
            match self.0.has_image(&properties, image).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(docker::DockerError::ImageMissing { image: image.into(), host }.to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}
