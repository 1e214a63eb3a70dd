//! `stratos`: runs the platform (`stratos up`) and talks to it (`stratos cartridge add ...`).

mod applications;
mod apply;
mod apply_plan;
mod backup;
mod bootstrap;
mod client;
mod clusters;
mod config;
mod credentials;
mod definitions;
mod docker;
mod image;
mod key_files;
mod lb;
mod legacy_flags;
mod logging;
mod member_exec;
mod members;
mod metrics;
mod mock_iaas;
mod mock_patterns;
mod output;
mod restore;
mod rollouts;
mod sample_http;
mod session;
mod supervise;
mod tenants;
mod top;
mod trust;
mod up;
mod usage;
mod users;
mod workloads;

use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: at 100k members the platform's resident memory
/// was about twice its live heap under glibc (fragmentation across its per-thread
/// arenas) and a third less with mimalloc (`controller_scale` bench, same run).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "stratos",
    version,
    about = "Stratos: a Platform-as-a-Service that runs any service elastically on any infrastructure",
    long_about = "Stratos runs cartridges (service runtimes) as members of clusters, scales them on load, and routes traffic to them.\n\n\
                  Start the all-in-one platform with `stratos up`, then register definitions with the client commands, e.g.\n  \
                  stratos network-partition add examples/php-web/network-partition-np-local-1.json"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the all-in-one platform: REST API, event bus (embedded MQTT broker) and store.
    // Boxed (as `Agent`): their flags make them much the largest variants.
    Up(Box<up::UpArgs>),
    /// Manage cartridges: service runtime types (a web server, a TCP service, ...).
    Cartridge(definitions::DefinitionArgs),
    /// Manage network partitions: clouds and the partitions (zones) members go to.
    #[command(name = "network-partition")]
    NetworkPartition(definitions::DefinitionArgs),
    /// Manage deployment policies: which partitions a cluster uses, and how it fills them.
    #[command(name = "deployment-policy")]
    DeploymentPolicy(definitions::DefinitionArgs),
    /// Manage autoscaling policies: the load thresholds a cluster scales on.
    #[command(name = "autoscaling-policy")]
    AutoscalingPolicy(definitions::DefinitionArgs),
    /// Manage application policies: the network partitions an application may burst into.
    #[command(name = "application-policy")]
    ApplicationPolicy(definitions::DefinitionArgs),
    /// Manage cartridge groups: cartridges (and nested groups) that applications subscribe to together.
    #[command(name = "cartridge-group")]
    CartridgeGroup(definitions::DefinitionArgs),
    /// Manage applications (clusters of cartridges with their dependencies): define, deploy, undeploy, status.
    Application(applications::ApplicationArgs),
    /// Inspect clusters: the autoscaler's decisions.
    Cluster(clusters::ClusterArgs),
    /// An application's configuration: environment variables of its members, plain or
    /// secret (encrypted at rest, never shown), app-wide or per cluster; a change replaces
    /// the affected members one at a time.
    Config(config::ConfigArgs),
    /// Inspect members: the running copies of cartridges.
    Member(members::MemberArgs),
    /// Inspect persistent volumes: cartridges' `persistence`, one per member slot.
    Volume(workloads::VolumeArgs),
    /// Clusters and members live in the terminal: status, live and desired members,
    /// requests in flight, load and memory (as the autoscaler last saw them), redrawn every
    /// --interval; `q` or Ctrl-C quits, --once prints one frame.
    Top(top::TopArgs),
    /// Log in to an API: saves a token (0600) in the user's config directory for later commands.
    Login(session::LoginArgs),
    /// Log out of an API: revokes and forgets the token `stratos login` saved.
    Logout(session::SessionArgs),
    /// Show who the CLI acts as on an API: user, tenant and role.
    Whoami(session::SessionArgs),
    /// Manage users: add (with a role), list, remove.
    User(users::UserArgs),
    /// Manage tenants and their quotas (platform admins).
    Tenant(tenants::TenantArgs),
    /// Create or update definitions of any kind from files or directories (JSON or YAML,
    /// Apache Stratos 4.1's as they are), each after those it names; one line per
    /// definition: created, updated, unchanged or refused (with the field). `--prune` also
    /// removes the platform's definitions that no file has.
    Apply(apply::ApplyArgs),
    /// What `apply` would do with the same files: `+` new, `~` changed (each field, now →
    /// in the file), `=` equal; with `--prune`, `-` for those it would remove.
    Diff(apply::ApplyArgs),
    /// The mock IaaS's health-statistics patterns (platform admins): what members of `mock`
    /// network partitions report, per cartridge type and factor.
    #[command(name = "mock-iaas")]
    MockIaas(mock_patterns::MockIaasArgs),
    /// Write the platform's whole state (definitions, deployments, tenants, users, encrypted
    /// secrets: every document of its store, from one consistent snapshot) to standard
    /// output, through the API (platform admins): `stratos backup > FILE`. The data
    /// directory's key files are not in it; `stratos restore` names them.
    Backup(backup::BackupArgs),
    /// Restore a backup into the empty store of a platform that is not running (offline,
    /// straight into its SQLite file or PostgreSQL database), then say which key files to
    /// copy from the old data directory. `stratos up` on it then adopts the members still
    /// running and starts again those that are gone.
    Restore(restore::RestoreArgs),
    /// A tiny HTTP server to try the platform with (the sample cartridges' app).
    #[command(name = "sample-http")]
    SampleHttp(sample_http::SampleHttpArgs),
    /// Run the load balancer on its own, following the topology on the event bus.
    Lb(lb::LbArgs),
    /// Run HAProxy or nginx as the load balancer: configured from the topology on the event bus, reloaded gracefully.
    #[command(name = "lb-extension")]
    LbExtension(lb::ExtensionArgs),
    /// Run the cartridge agent: the entry point of every member (started by IaaS drivers, not by hand).
    Agent(Box<stratos_agent::AgentConfig>),
    /// Build cartridges' Docker images on the engine, with no registry: from a FROM-scratch Dockerfile or Debian packages.
    Image(image::ImageArgs),
    /// Print a member's CPU and memory figures as its agent measures them (its container's cgroup, or a process tree).
    Usage(usage::UsageArgs),
}

impl Command {
    /// Client commands print and end: a reader that goes away (`| head -3`) ends them.
    /// The platform's long-running commands keep Rust's default (a closed pipe or socket
    /// is an error to handle, never a signal that kills the process).
    fn is_client(&self) -> bool {
        !matches!(
            self,
            Command::Up(_) | Command::Agent(_) | Command::Lb(_) | Command::LbExtension(_) | Command::SampleHttp(_)
        )
    }
}

/// Restores SIGPIPE's default action, as other Unix command-line tools have it: writing to
/// a pipe whose reader closed (`stratos application status APP | head -3`) ends the process
/// silently, where Rust's ignored SIGPIPE made `println!` panic with "Broken pipe". Sockets
/// are unaffected: the standard library sends with MSG_NOSIGNAL.
fn exit_quietly_on_closed_pipe() {
    // SAFETY: signal(2) with SIG_DFL installs no handler; called before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    // Old spellings of duration flags, rewritten before clap reads them (single-threaded
    // here, so the environment may be changed), and warned about once the log is set up.
    let legacy =
        legacy_flags::modernize(&Cli::command(), std::env::args_os().collect(), |name| std::env::var(name).ok());
    legacy.apply_vars();
    let cli = Cli::parse_from(legacy.args.clone());
    if cli.command.is_client() {
        exit_quietly_on_closed_pipe();
    }
    let log_format = match &cli.command {
        Command::Up(args) => Some(args.log_format),
        Command::SampleHttp(_) | Command::Lb(_) | Command::LbExtension(_) | Command::Image(_) | Command::Agent(_) => {
            Some(logging::LogFormat::Text)
        }
        // Client commands log nothing, but what they were told that is deprecated.
        _ => (!legacy.deprecations.is_empty()).then_some(logging::LogFormat::Text),
    };
    if let Some(format) = log_format {
        logging::init(format);
    }
    legacy.warn();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => up::run(*args).await,
            Command::Cartridge(a) => definitions::run(stratos_model::Kind::Cartridge, a).await,
            Command::NetworkPartition(a) => definitions::run(stratos_model::Kind::NetworkPartition, a).await,
            Command::DeploymentPolicy(a) => definitions::run(stratos_model::Kind::DeploymentPolicy, a).await,
            Command::AutoscalingPolicy(a) => definitions::run(stratos_model::Kind::AutoscalingPolicy, a).await,
            Command::ApplicationPolicy(a) => definitions::run(stratos_model::Kind::ApplicationPolicy, a).await,
            Command::CartridgeGroup(a) => definitions::run(stratos_model::Kind::CartridgeGroup, a).await,
            Command::Application(a) => applications::run(a).await,
            Command::Member(a) => members::run(a).await,
            Command::Volume(a) => workloads::run(a).await,
            Command::Cluster(a) => clusters::run(a).await,
            Command::Config(a) => config::run(a).await,
            Command::Top(a) => top::run(a).await,
            Command::Login(a) => session::login(a).await,
            Command::Logout(a) => session::logout(a).await,
            Command::Whoami(a) => session::whoami(a).await,
            Command::User(a) => users::run(a).await,
            Command::Tenant(a) => tenants::run(a).await,
            Command::MockIaas(a) => mock_patterns::run(a).await,
            Command::Backup(a) => backup::run(a).await,
            Command::Restore(a) => restore::run(a).await,
            Command::Apply(a) => apply::apply(a).await,
            Command::Diff(a) => apply::diff(a).await,
            Command::SampleHttp(a) => sample_http::run(a).await,
            Command::Lb(a) => lb::run(a).await,
            Command::LbExtension(a) => lb::run_extension(a).await,
            Command::Image(a) => image::run(a).await,
            Command::Usage(a) => usage::run(a).await,
            Command::Agent(config) => Ok(stratos_agent::run(*config).await?),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
