//! The `local` driver, the embedded default: a member is a process tree on this
//! machine, in its own process group and working directory, with its own ports.
//!
//! Each member's record (`member.json`) lives in its directory, so a restarted
//! controller finds, adopts or terminates the members an earlier one started.
//!
//! The member runs in `<member>/work` (its `app.log`, its artifacts) and, when the
//! platform runs as root, with a uid of its own (see `member_user.rs`): tenants' code never
//! runs as root nor as another member, and cannot rewrite the record in `<member>`, which
//! names the process group the driver signals.

mod task;
mod volumes;

use std::collections::HashMap;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::driver::{
    substitute_ports, AllocatedPort, BoxFuture, Driver, DriverError, ExecStream, Instance, InstanceState, MemberSpec,
};
use crate::member_user::{next_free_uid, reachable_by, Identity, MemberUserError, MemberUsers};
use crate::procfs;

/// Why the local driver cannot do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("cannot give {} to uid {uid}: {source}", path.display())]
    Chown { path: PathBuf, uid: u32, source: std::io::Error },
    #[error("cannot allocate a port on {host}: {source}")]
    Port { host: String, source: std::io::Error },
    #[error("the cartridge has no command for the local driver")]
    NoCommand,
    #[error("no agent command configured")]
    NoAgent,
    #[error("cannot run the agent {program:?}{}: {source}", uid.map(|u| format!(" as uid {u}")).unwrap_or_default())]
    Spawn { program: String, uid: Option<u32>, source: std::io::Error },
    #[error("the agent exited at once")]
    ExitedAtOnce,
    #[error("every uid from {first} to {last} is in use by a member")]
    NoFreeUid { first: u32, last: u32 },
    #[error("process group {0} survives SIGKILL")]
    Unkillable(i32),
    #[error("members run as {users} and cannot reach their directories: {source}; choose a --data-dir they can reach (e.g. under /var/lib), or --member-user")]
    Unreachable { users: String, source: MemberUserError },
    #[error("members run as {users} and cannot run the agent: {source}")]
    AgentNotRunnable { users: String, source: MemberUserError },
}

/// An I/O error with what was being done, and to which path.
fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LocalError {
    let path = path.to_path_buf();
    move |source| LocalError::Io { action, path, source }
}

/// How a member's agent process ended: exit code, and words for it.
type Exit = (Option<i32>, String);

pub struct LocalDriver {
    root: PathBuf,
    agent: Vec<String>,
    host: String,
    /// Who members run as.
    users: MemberUsers,
    /// The per-member uid handed out last.
    last_uid: Mutex<Option<u32>>,
    /// Exit of members this process started (others have no exit code to read).
    exits: Arc<Mutex<HashMap<String, Exit>>>,
    /// Where members' ports come from: this range, or the kernel's ephemeral ports.
    member_ports: Option<crate::PortRange>,
    /// The port of the range handed out last.
    last_port: Mutex<Option<u16>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    member_id: String,
    cluster_id: String,
    pid: i32,
    start_ticks: u64,
    address: String,
    ports: Vec<AllocatedPort>,
    started_at: u64,
    /// The platform that made the member (absent in records of earlier builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    platform_id: Option<String>,
    /// The uid the member runs as, when not the platform's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uid: Option<u32>,
    /// Where the member was placed (absent in records of earlier builds).
    #[serde(default)]
    network_partition_id: String,
    #[serde(default)]
    partition_id: String,
}

impl LocalDriver {
    /// Members live under `root`; `agent` is the command that runs the cartridge
    /// agent (`[path/to/stratos, agent]`).
    pub fn new(root: impl Into<PathBuf>, agent: Vec<String>) -> LocalDriver {
        LocalDriver {
            root: root.into(),
            agent,
            host: "127.0.0.1".into(),
            users: MemberUsers::Platform,
            last_uid: Mutex::new(None),
            exits: Default::default(),
            member_ports: None,
            last_port: Mutex::new(None),
        }
    }

    /// Members' ports come from `range` (`stratos up --member-ports`), not the kernel's
    /// ephemeral range: what a firewall can be opened for.
    pub fn with_member_ports(mut self, range: crate::PortRange) -> LocalDriver {
        self.member_ports = Some(range);
        self
    }

    /// A port for a member: the next free one of the range, or one the kernel chooses.
    fn allocate_port(&self) -> Result<u32, LocalError> {
        let Some(range) = self.member_ports else { return free_port(&self.host) };
        let mut last = self.last_port.lock().unwrap_or_else(|e| e.into_inner());
        for port in range.after(*last) {
            // Free now: nothing listens there (a member given it earlier that has not bound
            // it yet is passed over by the turn taken, not by this test).
            if TcpListener::bind((self.host.as_str(), port)).is_ok() {
                *last = Some(port);
                return Ok(u32::from(port));
            }
        }
        Err(LocalError::Port {
            host: self.host.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("every port of --member-ports {range} is in use"),
            ),
        })
    }

    /// Members run as `users` (see [`MemberUsers::for_platform`]).
    pub fn with_member_users(mut self, users: MemberUsers) -> LocalDriver {
        self.users = users;
        self
    }

    /// Before any member starts: makes the members' root traversable (not listable) by
    /// the users members run as, and the data directory above it too when it is the
    /// platform's own and shuts everyone out (a fresh temporary one); then checks that
    /// they can reach it and run the agent, so that a data directory under `/root` is a
    /// clear error at start, not every member failing.
    pub fn prepare(&self) -> Result<(), LocalError> {
        let probe = match &self.users {
            MemberUsers::Platform => return Ok(()),
            MemberUsers::Fixed { identity, .. } => *identity,
            MemberUsers::PerMember { first, .. } => Identity { uid: *first, gid: *first },
        };
        std::fs::create_dir_all(&self.root).map_err(io("create", &self.root))?;
        set_mode(&self.root, 0o711)?;
        if let Some(data_dir) = self.root.parent() {
            let meta = std::fs::metadata(data_dir).map_err(io("read the metadata of", data_dir))?;
            // SAFETY: geteuid(2) cannot fail.
            if meta.uid() == unsafe { libc::geteuid() } && meta.permissions().mode() & 0o001 == 0 {
                set_mode(data_dir, (meta.permissions().mode() & 0o7777) | 0o001)?;
                info!(dir = %data_dir.display(), "the data directory is now searchable (not readable) by members");
            }
        }
        reachable_by(&self.root, probe)
            .map_err(|source| LocalError::Unreachable { users: self.users.describe(), source })?;
        if let Some(program) = self.agent.first().map(Path::new).filter(|p| p.is_absolute()) {
            let runnable = program.parent().map_or(Ok(()), |dir| reachable_by(dir, probe)).and_then(|()| {
                let meta = std::fs::metadata(program)
                    .map_err(|source| MemberUserError::Inaccessible { path: program.to_path_buf(), source })?;
                if meta.permissions().mode() & 0o001 == 0 {
                    Err(MemberUserError::NotExecutable { path: program.to_path_buf() })
                } else {
                    Ok(())
                }
            });
            runnable.map_err(|source| LocalError::AgentNotRunnable { users: self.users.describe(), source })?;
        }
        Ok(())
    }

    /// Runs the member in `<dir>/work`, as the member's user when it is not the
    /// platform's: `work` is made theirs alone (the app and git write there); `dir`,
    /// with the record naming the process group the driver signals, stays the platform's.
    fn confine(&self, cmd: &mut tokio::process::Command, dir: &Path) -> Result<Option<Identity>, LocalError> {
        let work = dir.join(WORK_DIR);
        std::fs::create_dir_all(&work).map_err(io("create", &work))?;
        cmd.current_dir(&work);
        let (identity, name) = match &self.users {
            MemberUsers::Platform => return Ok(None),
            MemberUsers::Fixed { name, identity } => (*identity, name.clone()),
            MemberUsers::PerMember { first, count } => {
                let uid = self.allocate_uid(*first, *count)?;
                (Identity { uid, gid: uid }, format!("stratos-member-{uid}"))
            }
        };
        set_mode(dir, 0o711)?;
        set_mode(&dir.join("agent.log"), 0o600)?;
        std::os::unix::fs::chown(&work, Some(identity.uid), Some(identity.gid))
            .map_err(|source| LocalError::Chown { path: work.clone(), uid: identity.uid, source })?;
        set_mode(&work, 0o700)?;
        // std drops the supplementary groups too when it changes the uid.
        cmd.uid(identity.uid).gid(identity.gid).env("HOME", &work).env("USER", &name).env("LOGNAME", &name);
        Ok(Some(identity))
    }

    /// A uid no running member has, after the last one handed out (so that a uid comes
    /// back only once the range went round).
    fn allocate_uid(&self, first: u32, count: u32) -> Result<u32, LocalError> {
        let mut last = self.last_uid.lock().unwrap();
        let records = self.all_records();
        if last.is_none() {
            *last = records.iter().filter(|(_, live)| !live).filter_map(|(r, _)| r.uid).max();
        }
        let in_use: std::collections::HashSet<u32> =
            records.iter().filter(|(_, live)| *live).filter_map(|(r, _)| r.uid).collect();
        let uid = next_free_uid(first, count, *last, |u| in_use.contains(&u))
            .ok_or(LocalError::NoFreeUid { first, last: first + (count - 1) })?;
        *last = Some(uid);
        Ok(uid)
    }

    /// Every record under the root, with whether its member is live (not terminated).
    fn all_records(&self) -> Vec<(Record, bool)> {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return Vec::new() };
        let read = |path: PathBuf| std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok());
        entries
            .flatten()
            .flat_map(|e| {
                let dir = e.path();
                [(dir.join("member.json"), true), (dir.join("member.terminated.json"), false)]
            })
            .filter_map(|(path, live)| read(path).map(|r| (r, live)))
            .collect()
    }

    fn dir(&self, member_id: &str) -> PathBuf {
        self.root.join(member_id)
    }

    fn read(&self, member_id: &str) -> Option<Record> {
        let text = std::fs::read_to_string(self.dir(member_id).join("member.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn instance(&self, r: &Record) -> Instance {
        let exit = self.exits.lock().unwrap().get(&r.member_id).cloned();
        let state = match exit {
            Some((code, detail)) => InstanceState::Exited { code, detail },
            None if procfs::is_alive(r.pid, r.start_ticks) => InstanceState::Running,
            None => InstanceState::Exited { code: None, detail: "the member's process is gone".into() },
        };
        Instance {
            member_id: r.member_id.clone(),
            cluster_id: r.cluster_id.clone(),
            state,
            address: r.address.clone(),
            ports: r.ports.clone(),
            started_at: r.started_at,
            platform_id: r.platform_id.clone(),
            network_partition_id: r.network_partition_id.clone(),
            partition_id: r.partition_id.clone(),
        }
    }

    async fn start_member(&self, spec: &MemberSpec) -> Result<Instance, LocalError> {
        let dir = self.dir(&spec.member_id);
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let ports = spec
            .ports
            .iter()
            .map(|p| {
                let host_port = self.allocate_port()?;
                Ok(AllocatedPort { protocol: p.protocol, port: p.port, host_port, proxy_port: p.proxy_port })
            })
            .collect::<Result<Vec<_>, LocalError>>()?;
        if spec.command.is_empty() {
            return Err(LocalError::NoCommand);
        }
        let mut command = substitute_ports(&spec.command, &ports);
        // `stratos ...` cartridges (sample-http) run this very binary, on PATH or not.
        if command[0] == "stratos" {
            command[0] = self.agent[0].clone();
        }
        let log_path = dir.join("agent.log");
        let log = std::fs::File::create(&log_path).map_err(io("create", &log_path))?;
        let log2 = log.try_clone().map_err(io("open again", &log_path))?;
        let (program, args) = self.agent.split_first().ok_or(LocalError::NoAgent)?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .envs(&spec.env)
            .env("STRATOS_MEMBER_ID", &spec.member_id)
            .env("STRATOS_CLUSTER_ID", &spec.cluster_id)
            .env("STRATOS_SERVICE_NAME", &spec.service_name)
            .env("STRATOS_APP_ID", &spec.app_id)
            .env("STRATOS_TENANT_ID", spec.tenant_id.to_string())
            .env("STRATOS_NETWORK_PARTITION_ID", &spec.network_partition_id)
            .env("STRATOS_PARTITION_ID", &spec.partition_id)
            .env("STRATOS_BROKER", &spec.broker_url)
            .env("STRATOS_HOST", &self.host)
            // Members share this machine (and, if the platform runs in a container, its
            // cgroup): each measures its own process tree.
            .env("STRATOS_USAGE_SOURCE", "process-tree")
            .env("STRATOS_COMMAND", serde_json::to_string(&command).expect("strings serialise"))
            .env(
                "STRATOS_PORTS",
                serde_json::to_string(
                    &ports
                        .iter()
                        .map(|p| serde_json::json!({"protocol": p.protocol, "port": p.port, "hostPort": p.host_port}))
                        .collect::<Vec<_>>(),
                )
                .expect("ports serialise"),
            );
        if let Some(first) = ports.first() {
            cmd.env("PORT", first.host_port.to_string());
        }
        if let Some(repo) = &spec.artifact_repository {
            cmd.env("STRATOS_ARTIFACT_REPO", repo);
        }
        mark_platform(&mut cmd, spec);
        set_bus_credentials(&mut cmd, spec, &dir)?;
        let identity = self.confine(&mut cmd, &dir)?;
        self.attach_volumes(&mut cmd, spec, &dir, identity)?;
        let mut child = cmd.spawn().map_err(|source| LocalError::Spawn {
            program: program.clone(),
            uid: identity.map(|i| i.uid),
            source,
        })?;
        let pid = child.id().ok_or(LocalError::ExitedAtOnce)? as i32;
        let start_ticks = procfs::stat(pid).map(|(_, _, t)| t).unwrap_or(0);
        let record = Record {
            member_id: spec.member_id.clone(),
            cluster_id: spec.cluster_id.clone(),
            pid,
            start_ticks,
            address: self.host.clone(),
            ports,
            started_at: stratos_bus::now_millis(),
            platform_id: Some(spec.platform_id.clone()),
            uid: identity.map(|i| i.uid),
            network_partition_id: spec.network_partition_id.clone(),
            partition_id: spec.partition_id.clone(),
        };
        let record_path = dir.join("member.json");
        write_atomically(&record_path, &serde_json::to_vec_pretty(&record).expect("record serialises"))
            .map_err(io("write", &record_path))?;
        let exits = self.exits.clone();
        let member_id = spec.member_id.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let (code, detail) = match status {
                Ok(s) => (s.code(), describe_exit(s)),
                Err(e) => (None, format!("cannot wait for the agent: {e}")),
            };
            exits.lock().unwrap().insert(member_id, (code, detail));
        });
        info!(member_id = %spec.member_id, pid, dir = %dir.display(), "member process started");
        Ok(self.instance(&record))
    }

    async fn terminate_member(&self, member_id: &str, grace: Duration) -> Result<(), LocalError> {
        let Some(record) = self.read(member_id) else { return Ok(()) };
        let pgid = record.pid;
        let alive = || procfs::group_alive(pgid);
        if alive() {
            signal_group(pgid, libc::SIGTERM);
            let deadline = Instant::now() + grace;
            while alive() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if alive() {
                warn!(member_id, pgid, "member did not stop within {grace:?}; killing it");
                signal_group(pgid, libc::SIGKILL);
                let deadline = Instant::now() + Duration::from_secs(5);
                while alive() && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                if alive() {
                    return Err(LocalError::Unkillable(pgid));
                }
            }
        }
        // The directory keeps the member's logs; without its record the member is no longer listed.
        let dir = self.dir(member_id);
        let _ = std::fs::rename(dir.join("member.json"), dir.join("member.terminated.json"));
        // Its files stay for the platform's eyes only: a later member given the same uid
        // cannot reach them.
        let _ = set_mode(&dir, 0o700);
        self.exits.lock().unwrap().remove(member_id);
        info!(member_id, "member terminated");
        Ok(())
    }
}

impl Driver for LocalDriver {
    fn name(&self) -> &'static str {
        "local"
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
        Box::pin(async move {
            let entries = match std::fs::read_dir(&self.root) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(DriverError::List(io("read", &self.root)(e).into())),
            };
            let mut out: Vec<Instance> = entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|id| self.read(id)))
                .map(|r| self.instance(&r))
                .collect();
            out.sort_by(|a, b| a.member_id.cmp(&b.member_id));
            Ok(out)
        })
    }

    fn inspect<'a>(&'a self, member_id: &'a str) -> BoxFuture<'a, Result<Option<Instance>, DriverError>> {
        Box::pin(async move { Ok(self.read(member_id).map(|r| self.instance(&r))) })
    }

    /// As the member's user, in its work directory, with its agent's environment (which
    /// its app has too) less the bus credentials.
    fn exec<'a>(&'a self, member_id: &'a str, command: &'a [String]) -> BoxFuture<'a, Result<ExecStream, DriverError>> {
        Box::pin(async move {
            let failed = |reason: String| DriverError::Exec { member_id: member_id.to_string(), reason };
            let record = self.read(member_id).ok_or_else(|| failed("no such member on this machine".into()))?;
            if !procfs::is_alive(record.pid, record.start_ticks) {
                return Err(failed("its process is gone".into()));
            }
            let (program, args) = command.split_first().ok_or_else(|| failed("no command given".into()))?;
            let env = u32::try_from(record.pid)
                .ok()
                .and_then(stratos_procfs::environ)
                .ok_or_else(|| failed("cannot read its environment".into()))?;
            let work = self.dir(member_id).join(WORK_DIR);
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args)
                .env_clear()
                .envs(crate::exec::without_bus_credentials(env))
                .current_dir(&work)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            if record.uid.is_some() {
                // The member's own uid and gid, as its work directory is owned.
                let meta = std::fs::metadata(&work).map_err(|e| failed(format!("{}: {e}", work.display())))?;
                cmd.uid(meta.uid()).gid(meta.gid());
            }
            let child = cmd.spawn().map_err(|e| failed(format!("cannot start `{program}`: {e}")))?;
            info!(member_id, program = %program, "command run in the member");
            Ok(crate::exec::relay(child))
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
        Box::pin(async move { Ok(self.volumes()) })
    }

    fn remove_volume<'a>(&'a self, volume: &'a crate::volume::SlotVolume) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(async move {
            self.delete_volume(volume).map_err(|e| DriverError::Volume {
                action: "remove",
                volume: volume.name.clone(),
                reason: e.to_string(),
            })
        })
    }
}

/// Tells the member which platform made it; the same id goes into its `member.json`.
fn mark_platform(cmd: &mut tokio::process::Command, spec: &MemberSpec) {
    cmd.env("STRATOS_PLATFORM_ID", &spec.platform_id);
}

/// Where a member runs, inside its directory.
pub const WORK_DIR: &str = "work";

fn set_mode(path: &Path, mode: u32) -> Result<(), LocalError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io("set the mode of", path))
}

fn free_port(host: &str) -> Result<u32, LocalError> {
    let port = |source| LocalError::Port { host: host.to_string(), source };
    let listener = TcpListener::bind((host, 0)).map_err(port)?;
    Ok(listener.local_addr().map_err(port)?.port() as u32)
}

fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "exited".into(),
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

/// The member's own bus credentials, in its agent's environment (never on a command
/// line, which every user can read), and the CA it trusts for a `mqtts://` broker.
/// They override any `env.` property of the cartridge's with the same names, and the
/// platform's own (which the member would otherwise inherit from `stratos up`).
fn set_bus_credentials(cmd: &mut tokio::process::Command, spec: &MemberSpec, dir: &Path) -> Result<(), LocalError> {
    cmd.env_remove("STRATOS_BUS_USERNAME").env_remove("STRATOS_BUS_PASSWORD").env_remove("STRATOS_BUS_PASSWORD_FILE");
    if let Some(credentials) = &spec.bus_credentials {
        cmd.env("STRATOS_BUS_USERNAME", &credentials.username).env("STRATOS_BUS_PASSWORD", &credentials.password);
    }
    cmd.env_remove(stratos_bus::tls::CA_CERT_ENV);
    if let Some(ca) = &spec.bus_ca_cert {
        // A copy in the member's directory, readable by its user: the platform's data
        // directory is not (a certificate is public; its key stays there).
        let copy = dir.join(BUS_CA_FILE);
        std::fs::copy(ca, &copy).map_err(io("copy the bus CA for the member to", &copy))?;
        set_mode(&copy, 0o644)?;
        cmd.env(stratos_bus::tls::CA_CERT_ENV, &copy);
    }
    Ok(())
}

/// The bus CA's copy in a member's directory.
const BUS_CA_FILE: &str = "bus-ca.pem";
