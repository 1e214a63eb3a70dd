//! The `docker` driver: a member is a container on a Docker Engine (the partition's
//! `dockerHost`, else the local socket), labelled with what it is (`labels.rs`); the
//! engine is the driver's only record, so a controller killed with -9 lists its members
//! there again, adopts those its store names and removes the others of its platform.
//! Containers of another platform on the same engine are not listed, hence never touched.
//!
//! Each container runs the platform's own agent from a read-only bundle (`bundle.rs`),
//! as a fixed non-root uid, with every capability dropped, no new privileges, pids,
//! memory and CPU limits (`container.rs`), on its tenant's network (`network.rs`),
//! reaching the bus on that network's gateway (`bus.rs`). The load balancer reaches
//! it at its address on that network (the host routes to its bridges) on the
//! cartridge's own ports.

mod bundle;
mod bus;
mod container;
mod engines;
mod error;
pub mod labels;
mod network;
mod task;
pub mod volumes;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use bollard::Docker;
use tracing::{info, warn};

pub use bundle::{parse_ldd, Bundle, BundleError};
pub use bus::{GivenBus, MemberBus};
pub use container::{Confinement, BUS_CA, DEFAULT_UID, WORK};
pub use engines::{normalize, DEFAULT_HOST};
pub use error::DockerError;
pub use network::tenant_network;

use crate::driver::{
    substitute_ports, AllocatedPort, BoxFuture, Driver, DriverError, ExecOutput, ExecStream, Instance, InstanceState,
    Listing, MemberSpec, Unreachable,
};
use error::status;

/// A partition's (or network partition's) property naming the engine.
pub const DOCKER_HOST_PROPERTY: &str = "dockerHost";
/// A partition's property naming the Docker network members join, instead of their
/// tenant's (`stratos-<platform>-t<tenant>`); made if missing.
pub const NETWORK_PROPERTY: &str = "dockerNetwork";

/// The driver's settings (`stratos up --docker-*`).
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// The engine where a partition names none.
    pub default_host: String,
    pub confinement: Confinement,
    /// How long a network of the platform with no container on it, and not made or used
    /// by a start meanwhile, is kept before it is removed.
    pub network_idle: Duration,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            default_host: DEFAULT_HOST.into(),
            confinement: Confinement::default(),
            network_idle: network::KEEP_IDLE,
        }
    }
}

pub struct DockerDriver {
    config: DockerConfig,
    /// This binary, and where its bundle goes: prepared at the first start (a platform
    /// that never starts a container never copies itself).
    agent: PathBuf,
    bundle_root: PathBuf,
    bundle: Mutex<Option<Bundle>>,
    /// Set once the bus runs ([`DockerDriver::set_bus`]).
    bus: std::sync::OnceLock<Arc<dyn MemberBus>>,
    engines: engines::Engines,
    /// Whose containers this driver lists and acts on; none listed until known.
    platform_id: RwLock<Option<String>>,
    /// The engine of each member started or listed in this run.
    hosts: Mutex<HashMap<String, String>>,
    /// Engines placements name ([`Driver::place_of`]): listed even before a member of
    /// this run is there, so that members adopted after a restart are found (or their
    /// engine reported unreachable) rather than judged gone.
    named: Mutex<std::collections::BTreeSet<String>>,
    /// The networks (engine, name) whose gateway the bus is served on in this run.
    served: Mutex<std::collections::HashSet<(String, String)>>,
    /// When a start last made or used each network (engine, name): not swept meanwhile.
    ensured: Mutex<HashMap<(String, String), std::time::Instant>>,
    /// When each engine's idle networks were last swept.
    swept: Mutex<HashMap<String, std::time::Instant>>,
}

/// How long an engine may take to list its containers before it counts as unreachable.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);

/// How often an engine's idle networks are looked for (at most).
const SWEEP_EVERY: Duration = Duration::from_secs(30);

impl DockerDriver {
    /// A driver running `agent` (this `stratos` binary) in containers from a bundle
    /// prepared under `bundle_root`. Members start once [`DockerDriver::set_bus`] says
    /// how they reach the bus.
    pub fn new(config: DockerConfig, agent: &Path, bundle_root: &Path) -> Result<DockerDriver, DockerError> {
        let config = DockerConfig { default_host: normalize(&config.default_host), ..config };
        Ok(DockerDriver {
            config,
            agent: agent.to_path_buf(),
            bundle_root: bundle_root.to_path_buf(),
            bundle: Mutex::new(None),
            bus: Default::default(),
            engines: Default::default(),
            platform_id: RwLock::new(None),
            hosts: Default::default(),
            named: Default::default(),
            served: Default::default(),
            ensured: Default::default(),
            swept: Default::default(),
        })
    }

    /// The platform whose containers this driver lists (the store's platform id, known
    /// once ownership is established); before it is set, none are listed.
    pub fn with_platform_id(self, platform_id: Option<String>) -> DockerDriver {
        *self.platform_id.write().unwrap() = platform_id;
        self
    }

    /// How members reach the bus (set once; later calls are ignored).
    pub fn set_bus(&self, bus: Arc<dyn MemberBus>) {
        let _ = self.bus.set(bus);
    }

    /// Whether the default engine answers.
    pub async fn reachable(&self) -> Result<(), DockerError> {
        self.engines.get(&self.config.default_host).await.map(drop)
    }

    pub fn set_platform_id(&self, platform_id: &str) {
        *self.platform_id.write().unwrap() = Some(platform_id.to_string());
    }

    /// The agent's bundle, prepared on first use.
    pub fn bundle(&self) -> Result<Bundle, DockerError> {
        let mut bundle = self.bundle.lock().unwrap();
        if let Some(b) = &*bundle {
            return Ok(b.clone());
        }
        let prepared = Bundle::prepare(&self.agent, &self.bundle_root)?;
        *bundle = Some(prepared.clone());
        Ok(prepared)
    }

    /// A copy of the bus CA that the member's user can read, to mount: the platform
    /// keeps its own files private (a certificate is public; its key stays there).
    fn readable_ca(&self, ca: &Path) -> Result<PathBuf, DockerError> {
        use std::os::unix::fs::PermissionsExt;
        let failed = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| DockerError::Bundle(BundleError::Io { action, path, source })
        };
        let pem = std::fs::read(ca).map_err(failed("read the bus CA", ca))?;
        let copy = self.bundle_root.join("bus-ca.pem");
        if std::fs::read(&copy).ok().as_deref() == Some(pem.as_slice()) {
            return Ok(copy);
        }
        // Written whole then renamed: a container starting meanwhile mounts the old or the new.
        let tmp = self.bundle_root.join(format!(".bus-ca-{}.pem", std::process::id()));
        std::fs::create_dir_all(&self.bundle_root).map_err(failed("create", &self.bundle_root))?;
        std::fs::write(&tmp, &pem).map_err(failed("write", &tmp))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).map_err(failed("chmod", &tmp))?;
        std::fs::rename(&tmp, &copy).map_err(failed("rename into place", &copy))?;
        Ok(copy)
    }

    /// Whether `image` is on the engine of a placement with `properties`: the deploy-time
    /// check (`Ok(false)`: missing; an unreachable engine is an error).
    pub async fn has_image(&self, properties: &HashMap<String, String>, image: &str) -> Result<bool, DockerError> {
        let host = self.host_of(properties);
        let docker = self.engines.get(&host).await?;
        match docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if status(&e) == Some(404) => Ok(false),
            Err(e) => Err(DockerError::engine(&host, format!("inspect image {image:?}"))(e)),
        }
    }

    /// The engine a placement names (normalized).
    pub fn host_of<'a, I>(&self, properties: I) -> String
    where
        I: IntoIterator<Item = (&'a String, &'a String)>,
    {
        properties
            .into_iter()
            .find(|(k, _)| k.as_str() == DOCKER_HOST_PROPERTY)
            .map(|(_, v)| normalize(v))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| self.config.default_host.clone())
    }

    async fn start_member(&self, spec: &MemberSpec) -> Result<Instance, DockerError> {
        let host = self.host_of(&spec.placement);
        let docker = self.engines.get(&host).await?;
        let image = spec.image.as_deref().filter(|i| !i.is_empty()).ok_or(DockerError::NoImageName)?;
        let inspected = match docker.inspect_image(image).await {
            Ok(i) => i,
            Err(e) if status(&e) == Some(404) => {
                return Err(DockerError::ImageMissing { image: image.into(), host: host.clone() })
            }
            Err(e) => return Err(DockerError::engine(&host, format!("inspect image {image:?}"))(e)),
        };
        let network = spec
            .placement
            .get(NETWORK_PROPERTY)
            .filter(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| tenant_network(&spec.platform_id, spec.tenant_id));
        self.ensured.lock().unwrap().insert((host.clone(), network.clone()), std::time::Instant::now());
        let gateway = network::ensure(&docker, &host, &network, &spec.platform_id, spec.tenant_id).await?;
        let bus_error = |reason: String| DockerError::Bus { network: network.clone(), reason };
        let bus = self.bus.get().ok_or_else(|| bus_error("the platform's bus is not running yet".into()))?;
        let broker_url = bus.url_on(gateway).map_err(bus_error)?;
        self.served.lock().unwrap().insert((host.clone(), network.clone()));

        // The app listens on its declared ports, on the container's own address.
        let ports: Vec<AllocatedPort> = spec
            .ports
            .iter()
            .map(|p| AllocatedPort { protocol: p.protocol, port: p.port, host_port: p.port, proxy_port: p.proxy_port })
            .collect();
        let mut command = substitute_ports(&spec.command, &ports);
        if command.is_empty() {
            // The image's own entrypoint and command.
            let config = inspected.config.unwrap_or_default();
            command = config.entrypoint.unwrap_or_default();
            command.extend(config.cmd.unwrap_or_default());
        }
        if command.is_empty() {
            return Err(DockerError::NoCommand { image: image.into() });
        }
        let bundle = self.bundle()?;
        let readable;
        let spec = match &spec.bus_ca_cert {
            Some(ca) => {
                readable = MemberSpec { bus_ca_cert: Some(self.readable_ca(ca)?), ..spec.clone() };
                &readable
            }
            None => spec,
        };
        // `stratos ...` cartridges (sample-http) run the bundled binary.
        if command[0] == "stratos" {
            let rest: Vec<&str> = command[1..].iter().map(String::as_str).collect();
            command = bundle.command(&rest);
        }
        let with_volumes = self.with_slot_volumes(&docker, &host, spec).await?;
        let spec = &with_volumes;
        let started_at = stratos_bus::now_millis();
        let env = member_env(spec, &broker_url, bus.tls_name(), &command, &ports);
        let labels = labels::of_member(spec, &network, &ports, started_at);
        let body =
            container::create_body(spec, image, &bundle, &self.config.confinement, &network, env, labels.clone());
        let name = labels::container_name(&spec.member_id);
        let create = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = match docker.create_container(Some(create.clone()), body.clone()).await {
            Err(e) if status(&e) == Some(409) => {
                // A container of this member from an earlier, interrupted start: removed.
                // Of another platform (the name taken): left alone, and this start fails.
                let ours = self.find(&docker, &host, &spec.member_id).await?;
                if ours.is_empty() {
                    return Err(DockerError::engine(&host, format!("create container {name:?}"))(e));
                }
                warn!(member_id = %spec.member_id, container = %name, "removing the member's earlier container");
                for listed in ours {
                    self.remove(&docker, &host, &listed.id).await?;
                }
                docker.create_container(Some(create), body).await
            }
            other => other,
        };
        created.map_err(DockerError::engine(&host, format!("create container {name:?}")))?;
        self.hosts.lock().unwrap().insert(spec.member_id.clone(), host.clone());
        if let Err(e) = self.own_slot_volumes(&docker, &host, &name, spec).await {
            let _ = self.remove(&docker, &host, &name).await;
            return Err(e);
        }
        if let Err(e) = docker.start_container(&name, None).await {
            let _ = self.remove(&docker, &host, &name).await;
            return Err(DockerError::engine(&host, format!("start container {name:?}"))(e));
        }
        let instance = self
            .find(&docker, &host, &spec.member_id)
            .await?
            .into_iter()
            .map(|l| l.instance)
            .next()
            .or_else(|| labels::instance(&labels, InstanceState::Running, None))
            .expect("a member's labels name it");
        info!(member_id = %spec.member_id, container = %name, %host, %network, address = %instance.address, "member container started");
        Ok(instance)
    }

    /// The member's containers on `host` of this platform (one, unless made by hand),
    /// with their ids.
    async fn find(&self, docker: &Docker, host: &str, member_id: &str) -> Result<Vec<Listed>, DockerError> {
        self.list_on(docker, host, Some(member_id)).await
    }

    /// This platform's containers on `host` (only `member_id`'s, if given), with their ids.
    async fn list_on(&self, docker: &Docker, host: &str, member_id: Option<&str>) -> Result<Vec<Listed>, DockerError> {
        let Some(platform_id) = self.platform_id.read().unwrap().clone() else { return Ok(Vec::new()) };
        let mut wanted = vec![format!("{}={platform_id}", labels::PLATFORM)];
        if let Some(member_id) = member_id {
            wanted.push(format!("{}={member_id}", labels::MEMBER));
        }
        let filters = HashMap::from([("label".to_string(), wanted)]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let containers =
            docker.list_containers(Some(options)).await.map_err(DockerError::engine(host, "list containers"))?;
        let mut out = Vec::new();
        for c in containers {
            let labels = c.labels.unwrap_or_default();
            // The filter asked for it; a container changed under us is not ours to judge.
            if labels.get(labels::PLATFORM) != Some(&platform_id) {
                continue;
            }
            let state = labels::state_of(
                &c.state.map(|s| s.to_string()).unwrap_or_default(),
                c.status.as_deref().unwrap_or_default(),
            );
            let network = labels.get(labels::NETWORK).cloned().unwrap_or_default();
            let address = c
                .network_settings
                .and_then(|n| n.networks)
                .and_then(|mut n| n.remove(&network))
                .and_then(|e| e.ip_address)
                .filter(|a| !a.is_empty());
            if let (Some(id), Some(instance)) = (c.id, labels::instance(&labels, state, address)) {
                out.push(Listed { id, network, instance });
            }
        }
        Ok(out)
    }

    /// Stops (SIGTERM to the agent, SIGKILL after `grace`) and removes a container; one
    /// already gone is fine.
    async fn stop_and_remove(
        &self,
        docker: &Docker,
        host: &str,
        name: &str,
        grace: Duration,
    ) -> Result<(), DockerError> {
        // A paused container cannot handle SIGTERM: thawed first (not paused: refused, fine).
        let _ = docker.unpause_container(name).await;
        let t = grace.as_secs_f64().ceil() as i32;
        match docker.stop_container(name, Some(StopContainerOptionsBuilder::default().t(t).build())).await {
            // 304: already stopped; 404: gone.
            Ok(()) => {}
            Err(e) if matches!(status(&e), Some(304 | 404)) => {}
            Err(e) => warn!(container = name, %host, error = %e, "cannot stop the container; removing it by force"),
        }
        self.remove(docker, host, name).await
    }

    async fn remove(&self, docker: &Docker, host: &str, name: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if status(&e) == Some(404) => Ok(()),
            // Already being removed (by an earlier terminate): done as far as we are concerned.
            Err(e) if status(&e) == Some(409) => Ok(()),
            Err(e) => Err(DockerError::engine(host, format!("remove container {name:?}"))(e)),
        }
    }

    /// Serves the bus on the gateway of every network `listed` members are on, once per
    /// run: members started by an earlier run of the platform (adopted after a restart)
    /// reconnect there.
    async fn serve_bus(&self, docker: &Docker, host: &str, listed: &[Listed]) {
        let Some(bus) = self.bus.get() else { return };
        let networks: std::collections::BTreeSet<String> = listed
            .iter()
            .filter(|l| l.instance.state == InstanceState::Running && !l.network.is_empty())
            .map(|l| l.network.clone())
            .collect();
        for network in networks {
            let key = (host.to_string(), network.clone());
            if self.served.lock().unwrap().contains(&key) {
                continue;
            }
            let gateway = match network::gateway(docker, host, &network).await {
                Ok(gateway) => gateway,
                Err(e) => {
                    warn!(%network, %host, error = %e, "cannot serve the bus to the network's members");
                    continue;
                }
            };
            match bus.url_on(gateway) {
                Ok(_) => drop(self.served.lock().unwrap().insert(key)),
                Err(e) => warn!(%network, %host, error = %e, "cannot serve the bus to the network's members"),
            }
        }
    }

    /// Removes, now and then, this platform's networks on `host` that none of its
    /// containers (`listed`, any state) uses and no start made or used lately.
    async fn sweep_networks(&self, docker: &Docker, host: &str, listed: &[Listed]) {
        let now = std::time::Instant::now();
        {
            let mut swept = self.swept.lock().unwrap();
            let every = SWEEP_EVERY.min(self.config.network_idle);
            if swept.get(host).is_some_and(|at| now.saturating_duration_since(*at) < every) {
                return;
            }
            swept.insert(host.to_string(), now);
        }
        let Some(platform_id) = self.platform_id.read().unwrap().clone() else { return };
        let ours = match network::of_platform(docker, host, &platform_id).await {
            Ok(ours) => ours,
            Err(e) => return warn!(%host, error = %e, "cannot list the platform's networks"),
        };
        let used: std::collections::HashSet<String> = listed.iter().map(|l| l.network.clone()).collect();
        let ensured: HashMap<String, std::time::Instant> = self
            .ensured
            .lock()
            .unwrap()
            .iter()
            .filter(|((h, _), _)| h == host)
            .map(|((_, n), at)| (n.clone(), *at))
            .collect();
        for name in network::idle(&ours, &used, &ensured, now, self.config.network_idle) {
            if network::remove(docker, host, &name).await {
                let key = (host.to_string(), name);
                self.served.lock().unwrap().remove(&key);
                self.ensured.lock().unwrap().remove(&key);
            }
        }
    }

    /// Every engine this driver knows: the default one and those members run on.
    async fn known_hosts(&self) -> Vec<String> {
        let mut hosts = self.engines.hosts().await;
        hosts.extend(self.hosts.lock().unwrap().values().cloned());
        hosts.extend(self.named.lock().unwrap().iter().cloned());
        hosts.push(self.config.default_host.clone());
        hosts.sort();
        hosts.dedup();
        hosts
    }

    async fn terminate_member(&self, member_id: &str, grace: Duration) -> Result<(), DockerError> {
        let name = labels::container_name(member_id);
        let known = self.hosts.lock().unwrap().get(member_id).cloned();
        let hosts = match known {
            Some(host) => vec![host],
            None => self.known_hosts().await,
        };
        for host in hosts {
            let docker = self.engines.get(&host).await?;
            // Only this platform's containers of that member, by id.
            for listed in self.find(&docker, &host, member_id).await? {
                self.stop_and_remove(&docker, &host, &listed.id, grace).await?;
                info!(member_id, container = %name, %host, "member container removed");
            }
        }
        self.hosts.lock().unwrap().remove(member_id);
        Ok(())
    }

    /// `docker exec` in the member's container, as the container's user (the member's
    /// uid), in its working directory, with its environment but the bus credentials
    /// emptied (an exec cannot unset what the container was started with).
    async fn exec_in(&self, member_id: &str, command: &[String]) -> Result<ExecStream, String> {
        use bollard::exec::{StartExecOptions, StartExecResults};
        use futures_util::StreamExt;
        let known = self.hosts.lock().unwrap().get(member_id).cloned();
        let hosts = match known {
            Some(host) => vec![host],
            None => self.known_hosts().await,
        };
        for host in hosts {
            let docker = self.engines.get(&host).await.map_err(|e| e.to_string())?;
            let Some(listed) =
                self.find(&docker, &host, member_id).await.map_err(|e| e.to_string())?.into_iter().next()
            else {
                continue;
            };
            let user = docker
                .inspect_container(&listed.id, None)
                .await
                .map_err(|e| format!("inspect its container: {e}"))?
                .config
                .and_then(|c| c.user);
            let config = bollard::models::ExecConfig {
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                cmd: Some(command.to_vec()),
                env: Some(vec!["STRATOS_BUS_USERNAME=".into(), "STRATOS_BUS_PASSWORD=".into()]),
                user,
                ..Default::default()
            };
            let exec = docker.create_exec(&listed.id, config).await.map_err(|e| format!("docker exec: {e}"))?;
            let started = docker
                .start_exec(&exec.id, Some(StartExecOptions { detach: false, tty: false, output_capacity: None }))
                .await
                .map_err(|e| format!("docker exec: {e}"))?;
            let StartExecResults::Attached { mut output, .. } = started else {
                return Err("docker exec did not attach".into());
            };
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            tokio::spawn(async move {
                while let Some(Ok(item)) = output.next().await {
                    let out = match item {
                        bollard::container::LogOutput::StdErr { message } => ExecOutput::Stderr(message.to_vec()),
                        other => ExecOutput::Stdout(other.into_bytes().to_vec()),
                    };
                    if tx.send(out).await.is_err() {
                        // The engine has no way to stop an exec: it runs to its end.
                        return;
                    }
                }
                let code = docker.inspect_exec(&exec.id).await.ok().and_then(|i| i.exit_code).map(|c| c as i32);
                let _ = tx.send(ExecOutput::Exit(code)).await;
            });
            return Ok(rx);
        }
        Err("no container of the member on any engine".into())
    }

    /// Lists every known engine that answers; those that do not are named with why
    /// (their client is dropped, so the next listing connects again).
    async fn list_reachable_engines(&self) -> Listing {
        let mut listing = Listing::default();
        for host in self.known_hosts().await {
            // An engine whose host is down may not even refuse the connection: the whole
            // listing must not wait for TCP to give up on it.
            let list = async {
                let docker = self.engines.get(&host).await?;
                self.list_on(&docker, &host, None).await.map(|l| (docker, l))
            };
            let listed = match tokio::time::timeout(LIST_TIMEOUT, list).await {
                Ok(listed) => listed,
                Err(_) => Err(DockerError::Unreachable {
                    host: host.clone(),
                    reason: format!("the Docker Engine at {host} did not answer within {}s", LIST_TIMEOUT.as_secs()),
                }),
            };
            let (docker, listed) = match listed {
                Ok(ok) => ok,
                Err(e) => {
                    self.engines.forget(&host).await;
                    listing.unreachable.push(Unreachable { place: host.clone(), reason: e.to_string() });
                    continue;
                }
            };
            self.serve_bus(&docker, &host, &listed).await;
            self.sweep_networks(&docker, &host, &listed).await;
            let mut hosts = self.hosts.lock().unwrap();
            for l in &listed {
                hosts.entry(l.instance.member_id.clone()).or_insert_with(|| host.clone());
            }
            listing.instances.extend(listed.into_iter().map(|l| l.instance));
        }
        listing.instances.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        listing
    }

    /// Every engine's containers of this platform, or an error if an engine does not answer.
    async fn list_all(&self) -> Result<Vec<Instance>, DockerError> {
        let listing = self.list_reachable_engines().await;
        match listing.unreachable.into_iter().next() {
            Some(u) => Err(DockerError::Unreachable { host: u.place, reason: u.reason }),
            None => Ok(listing.instances),
        }
    }
}

/// A container of this platform as the engine lists it.
struct Listed {
    id: String,
    /// The network it is reached on (its label).
    network: String,
    instance: Instance,
}

/// The agent's environment in the container (the local driver's, with the container's
/// ports and the bus on the network's gateway).
fn member_env(
    spec: &MemberSpec,
    broker_url: &str,
    tls_name: Option<String>,
    command: &[String],
    ports: &[AllocatedPort],
) -> Vec<String> {
    let mut env: Vec<(String, String)> = spec
        .env
        .iter()
        .filter(|(k, _)| !k.starts_with("STRATOS_BUS_") && k.as_str() != stratos_bus::tls::CA_CERT_ENV)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let ports_json: Vec<_> = ports
        .iter()
        .map(|p| serde_json::json!({"protocol": p.protocol, "port": p.port, "hostPort": p.host_port}))
        .collect();
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
            ("STRATOS_BROKER", broker_url.to_string()),
            ("STRATOS_HOST", "127.0.0.1".to_string()),
            ("STRATOS_COMMAND", serde_json::to_string(command).expect("strings serialise")),
            ("STRATOS_PORTS", serde_json::to_string(&ports_json).expect("ports serialise")),
            ("HOME", WORK.to_string()),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    if let Some(first) = ports.first() {
        env.push(("PORT".into(), first.host_port.to_string()));
    }
    if let Some(repo) = &spec.artifact_repository {
        env.push(("STRATOS_ARTIFACT_REPO".into(), repo.clone()));
    }
    // The member's own credentials; readable only by whoever may inspect the engine's
    // containers (root's equal), never by another member.
    if let Some(credentials) = &spec.bus_credentials {
        env.push(("STRATOS_BUS_USERNAME".into(), credentials.username.clone()));
        env.push(("STRATOS_BUS_PASSWORD".into(), credentials.password.clone()));
    }
    if spec.bus_ca_cert.is_some() {
        env.push((stratos_bus::tls::CA_CERT_ENV.into(), BUS_CA.into()));
    }
    // The gateway address the member connects to is not a name of the broker's certificate.
    if let Some(name) = tls_name.filter(|_| stratos_bus::is_tls_url(broker_url)) {
        env.push((stratos_bus::tls::TLS_NAME_ENV.into(), name));
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

impl Driver for DockerDriver {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn start<'a>(&'a self, spec: &'a MemberSpec) -> BoxFuture<'a, Result<Instance, DriverError>> {
        Box::pin(async move {
            self.start_member(spec)
                .await
                .map_err(|e| DriverError::Start { member_id: spec.member_id.clone(), source: e.into() })
        })
    }

    fn terminate<'a>(&'a self, member_id: &'a str, grace: Duration) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            self.terminate_member(member_id, grace)
                .await
                .map_err(|e| DriverError::Terminate { member_id: member_id.to_string(), source: e.into() })
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Instance>, DriverError>> {
        Box::pin(async move { self.list_all().await.map_err(|e| DriverError::List(e.into())) })
    }

    fn inspect<'a>(&'a self, member_id: &'a str) -> BoxFuture<'a, Result<Option<Instance>, DriverError>> {
        Box::pin(async move {
            let all = self.list_all().await.map_err(|e| DriverError::List(e.into()))?;
            Ok(all.into_iter().find(|i| i.member_id == member_id))
        })
    }

    fn list_reachable(&self) -> BoxFuture<'_, Result<Listing, DriverError>> {
        Box::pin(async move { Ok(self.list_reachable_engines().await) })
    }

    fn exec<'a>(&'a self, member_id: &'a str, command: &'a [String]) -> BoxFuture<'a, Result<ExecStream, DriverError>> {
        Box::pin(async move {
            self.exec_in(member_id, command)
                .await
                .map_err(|reason| DriverError::Exec { member_id: member_id.to_string(), reason })
        })
    }

    fn run_task<'a>(
        &'a self,
        spec: &'a MemberSpec,
        command: &'a [String],
    ) -> BoxFuture<'a, Result<ExecStream, DriverError>> {
        Box::pin(async move { self.start_task(spec, command).await.map_err(|e| DriverError::Task(e.to_string())) })
    }

    fn list_volumes(&self) -> BoxFuture<'_, Result<Vec<crate::volume::SlotVolume>, DriverError>> {
        Box::pin(async move { self.slot_volumes().await.map_err(|e| DriverError::List(e.into())) })
    }

    fn remove_volume<'a>(&'a self, volume: &'a crate::volume::SlotVolume) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            self.drop_slot_volume(volume).await.map_err(|e| DriverError::Volume {
                action: "remove",
                volume: volume.name.clone(),
                reason: e.to_string(),
            })
        })
    }

    /// The engine (`dockerHost`, normalized) a placement names.
    fn place_of(&self, placement: &BTreeMap<String, String>) -> Option<String> {
        let host = self.host_of(placement);
        self.named.lock().unwrap().insert(host.clone());
        Some(host)
    }
}

/// Where the driver keeps its agent bundles, under the data directory.
pub fn bundle_root(data_dir: &Path) -> PathBuf {
    data_dir.join("docker-agent")
}
