//! `stratos up`: the all-in-one platform in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use stratos_bus::events::CompleteTopologyEvent;
use stratos_bus::{Bus, EmbeddedBroker};
use stratos_manager::quota::Limits;
use stratos_manager::tls::ApiTls;
use stratos_manager::{ApiConfig, AppState, DEFAULT_BODY_LIMIT};
use stratos_model::duration::{self, VALUE_NAME as DURATION};
use stratos_store::Store;

use crate::logging::LogFormat;
use crate::supervise::Supervisor;

/// The platform's bus secret in the data directory (mode 0600): the platform
/// components' password, and the key of members' credentials.
pub const BUS_PASSWORD_FILE: &str = "bus-password";

#[derive(Args)]
pub struct UpArgs {
    /// Address the REST API listens on. An address other than loopback needs TLS
    /// (--api-tls-cert/--api-tls-key or --api-tls-self-signed), or --api-insecure-http.
    #[arg(long, env = "STRATOS_API_LISTEN", default_value = "127.0.0.1:9443")]
    api_listen: SocketAddr,
    /// Serve the API in TLS with this certificate chain (PEM, leaf first); with --api-tls-key.
    #[arg(long, requires = "api_tls_key", conflicts_with = "api_tls_self_signed")]
    api_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --api-tls-cert.
    #[arg(long, requires = "api_tls_cert")]
    api_tls_key: Option<PathBuf>,
    /// Serve the API in TLS with a self-signed certificate, generated once into the data
    /// directory; its SHA-256 fingerprint is printed for clients to pin (--tls-fingerprint).
    #[arg(long)]
    api_tls_self_signed: bool,
    /// Allow plain HTTP on an address other than loopback: tokens and passwords then
    /// cross the network readable by anyone on the path. Only behind a TLS-terminating proxy.
    #[arg(long)]
    api_insecure_http: bool,
    /// A web origin (`https://console.example.com`) whose pages may call the API; repeatable.
    /// Requests carrying any other Origin are refused (none is allowed by default).
    #[arg(long = "api-allow-origin", value_name = "ORIGIN")]
    api_allow_origins: Vec<String>,
    /// A DNS name clients reach the API by (checked against Host, against DNS rebinding);
    /// repeatable. IP addresses and `localhost` are always accepted.
    #[arg(long = "api-name", value_name = "NAME")]
    api_names: Vec<String>,
    /// How long the token of a login lives (a login may ask for less); at least 1m.
    #[arg(long, value_name = DURATION, value_parser = duration::positive, default_value = "12h")]
    api_token_ttl: Duration,
    /// Default quota of members per tenant: its deployed clusters' cartridgeMax summed.
    #[arg(long, default_value_t = Limits::default().tenant_max_members)]
    tenant_max_members: u32,
    /// Default quota of deployed clusters per tenant.
    #[arg(long, default_value_t = Limits::default().tenant_max_clusters)]
    tenant_max_clusters: u32,
    /// The largest cartridgeMin/cartridgeMax any cluster may have, platform-wide.
    #[arg(long, default_value_t = Limits::default().max_cluster_size)]
    max_cluster_size: u32,
    /// Use this external MQTT broker (e.g. mqtt://127.0.0.1:1883) instead of starting the embedded one.
    /// The platform connects with --bus-username and the password of --bus-password-file (or
    /// STRATOS_BUS_PASSWORD); see README "The event bus" for Mosquitto's ACLs.
    #[arg(long, env = "STRATOS_BROKER")]
    broker: Option<String>,
    #[command(flatten)]
    bus_auth: stratos_lb::BusAuth,
    /// With --broker: the broker is a Mosquitto 2 with the dynamic-security plugin, whose admin
    /// is the platform's user; each member gets its own client and role there while it lives
    /// (README "The event bus"). Without it, members connect to an external broker without credentials.
    #[arg(long, requires = "broker")]
    mosquitto_dynsec: bool,
    /// Address the embedded MQTT broker listens on (ignored with --broker).
    #[arg(long, env = "STRATOS_MQTT_LISTEN", default_value = "127.0.0.1:1883")]
    mqtt_listen: SocketAddr,
    /// The embedded broker speaks only MQTT over TLS (mqtts://) with this certificate
    /// chain (PEM, leaf first); with --mqtt-tls-key. Components and members trust the CA
    /// in STRATOS_BUS_CA_CERT if set, else the system's roots.
    #[arg(long, requires = "mqtt_tls_key", conflicts_with_all = ["mqtt_tls_self_signed", "broker"])]
    mqtt_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --mqtt-tls-cert.
    #[arg(long, requires = "mqtt_tls_cert")]
    mqtt_tls_key: Option<PathBuf>,
    /// The embedded broker speaks only MQTT over TLS (mqtts://) with a self-signed
    /// certificate, generated once as mqtt-cert.pem in the data directory; components
    /// and members trust that file, other clients set STRATOS_BUS_CA_CERT to it.
    #[arg(long, conflicts_with = "broker")]
    mqtt_tls_self_signed: bool,
    /// Directory for the platform's data (the SQLite database, member working directories).
    #[arg(long, env = "STRATOS_DATA_DIR", default_value = ".stratos")]
    data_dir: PathBuf,
    /// The key file applications' secrets are sealed under (`stratos config set --secret`),
    /// created (0600) at first start; default `secrets.key` in --data-dir. Every process of
    /// a distributed install names the same file. `stratos config rotate-key` replaces the key.
    #[arg(long, env = "STRATOS_SECRETS_KEY_FILE")]
    secrets_key_file: Option<PathBuf>,
    /// Store URL: `postgres://user:pass@host/db` for PostgreSQL; default SQLite in --data-dir.
    #[arg(long, env = "STRATOS_STORE")]
    store: Option<String>,
    /// Largest request body the API accepts, in bytes.
    #[arg(long, default_value_t = DEFAULT_BODY_LIMIT)]
    body_limit: usize,
    /// Time between autoscaler evaluations (also how far ahead load is predicted); at least 1s.
    #[arg(long, env = "STRATOS_EVALUATION_INTERVAL", value_name = DURATION, value_parser = duration::positive, default_value = "15s")]
    evaluation_interval: Duration,
    /// Time between health summaries (over sliding windows of --health-window); at least 1s.
    #[arg(long, env = "STRATOS_HEALTH_INTERVAL", value_name = DURATION, value_parser = duration::positive, default_value = "15s")]
    health_interval: Duration,
    /// How much of the health statistics each average, gradient and second derivative covers; at least 2s.
    #[arg(long, env = "STRATOS_HEALTH_WINDOW", value_name = DURATION, value_parser = duration::positive, default_value = "60s")]
    health_window: Duration,
    /// How long a member may send no health statistics before it is declared faulty (and
    /// replaced): a frozen, paused or cut-off member.
    #[arg(long, env = "STRATOS_MEMBER_FAULT_AFTER", value_name = DURATION, value_parser = duration::positive, default_value = "60s")]
    member_fault_after: Duration,
    /// How long members on a place their driver cannot reach (a Docker Engine that does not
    /// answer: stopped, unreachable) are kept before they are given up and replaced where
    /// the deployment policy allows. Each engine is judged on its own: one down stops
    /// nothing on the others, and no new member is placed on it meanwhile. What it still
    /// runs when it answers again is removed.
    #[arg(long, env = "STRATOS_UNREACHABLE_GRACE", value_name = DURATION, value_parser = duration::positive, default_value = "30s")]
    unreachable_grace: Duration,
    /// Evaluations in a row asking for fewer members before one is removed.
    #[arg(long, default_value_t = 3)]
    scale_down_after: u32,
    /// Scale on current averages only, without predicting the next interval.
    #[arg(long)]
    no_prediction: bool,
    /// Who members of the local driver run as: `platform` (the platform's own user), NAME or
    /// UID[:GID] (every member as that user). By default, when the platform runs as root, each
    /// member gets a uid and group of its own from --member-uids, so that tenants' code never
    /// runs as root nor as another member (which it could signal or read); otherwise members
    /// run as the platform's user. The agent binary and the data directory must be reachable
    /// by them (checked at start). `root` or `platform` as root: only for code you trust.
    #[arg(long, env = "STRATOS_MEMBER_USER", value_parser = stratos_cloud::MemberUsers::parse)]
    member_user: Option<stratos_cloud::MemberUsers>,
    /// The uids (and gids) members get one each when the platform runs as root: FIRST-LAST,
    /// a range no account or subordinate id range uses.
    #[arg(long, env = "STRATOS_MEMBER_UIDS", value_parser = stratos_cloud::MemberUsers::parse_range, default_value = "1900000-1999999")]
    member_uids: (u32, u32),
    /// The TCP ports members of the local driver get, FIRST-LAST (e.g. 20000-29999), handed
    /// out in turn and skipping any in use: what a firewall can be opened for. By default
    /// the kernel chooses them from its ephemeral range.
    #[arg(long, env = "STRATOS_MEMBER_PORTS", value_name = "FIRST-LAST", value_parser = parse_port_range)]
    member_ports: Option<stratos_cloud::PortRange>,
    /// Let applications name artifact repositories on this machine (local paths, file:// URLs).
    /// Off by default: a tenant's repository would read the platform's own files. For a
    /// single-user machine and tests.
    #[arg(long, env = "STRATOS_ALLOW_LOCAL_REPOS")]
    allow_local_repos: bool,
    #[command(flatten)]
    lb: stratos_lb::LbConfig,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(flatten)]
    strangers: StrangerArgs,
    #[command(flatten)]
    docker: crate::docker::DockerArgs,
    #[command(flatten)]
    mock: crate::mock_iaas::MockArgs,
    #[command(flatten)]
    metrics: crate::metrics::MetricsArgs,
}

/// Running members the store does not know (another platform's, or the store is new
/// or was emptied) make `stratos up` refuse to start, so that they are not taken for
/// orphans and terminated. These say what to do with them instead.
#[derive(Args)]
#[group(multiple = false)]
struct StrangerArgs {
    /// Make this store the running members' platform (when they are all of one):
    /// the members its topology records are kept; the others are terminated as orphans.
    /// For a store restored from a copy of the platform's.
    #[arg(long)]
    adopt_members: bool,
    /// Terminate the running members this store does not know, then start.
    #[arg(long)]
    remove_members: bool,
}

impl StrangerArgs {
    fn choice(&self) -> stratos_cloud::Strangers {
        match (self.adopt_members, self.remove_members) {
            (true, _) => stratos_cloud::Strangers::Adopt,
            (_, true) => stratos_cloud::Strangers::Remove,
            _ => stratos_cloud::Strangers::Refuse,
        }
    }
}

pub async fn run(args: UpArgs) -> Result<()> {
    let member_users =
        args.member_user.clone().unwrap_or_else(|| stratos_cloud::MemberUsers::for_platform(Some(args.member_uids)));
    if member_users != stratos_cloud::MemberUsers::Platform {
        // Before the data directory and the store exist: members must not read them.
        stratos_cloud::member_user::keep_platform_files_private(&args.data_dir)?;
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data directory {}", args.data_dir.display()))?;

    let tls = api_tls(&args)?;
    let mqtt_tls = mqtt_tls(&args)?;
    if tls.is_none() && !args.api_listen.ip().is_loopback() && !args.api_insecure_http {
        anyhow::bail!(
            "--api-listen {} is not a loopback address: serve the API in TLS (--api-tls-cert and --api-tls-key, or \
             --api-tls-self-signed), or pass --api-insecure-http if a TLS proxy stands in front",
            args.api_listen
        );
    }

    let store = match &args.store {
        Some(url) => Store::open(url).await?,
        None => Store::open_sqlite(&args.data_dir.join("stratos.db")).await?,
    };
    let admin = crate::bootstrap::admin_credentials(&store, &args.data_dir).await?;
    let secrets_file =
        args.secrets_key_file.clone().unwrap_or_else(|| args.data_dir.join(stratos_store::sealed::KEY_FILE));
    let secrets = Arc::new(stratos_store::sealed::KeyRing::load_or_create(&secrets_file)?);
    if args.mock.enabled() {
        crate::mock_iaas::load_file(&store, &args.data_dir).await?;
    }

    let agent = std::env::current_exe().context("cannot find the stratos binary to run member agents")?;
    if member_users.is_root() {
        tracing::warn!("members run as root: tenants' code gets the machine (see --member-user)");
    } else {
        tracing::info!(users = %member_users.describe(), "local members' user");
    }
    let local = stratos_cloud::LocalDriver::new(
        args.data_dir.join("members"),
        vec![agent.display().to_string(), "agent".into()],
    )
    .with_member_users(member_users);
    let local = match args.member_ports {
        Some(range) => {
            tracing::info!(ports = %range, "local members' ports");
            local.with_member_ports(range)
        }
        None => local,
    };
    local.prepare()?;
    let local: Arc<dyn stratos_cloud::Driver> = Arc::new(local);
    // The docker driver lists only this platform's containers: none before the store has an id.
    let docker = args.docker.driver(&agent, &args.data_dir, store.platform_id().await?).await?;
    let mut drivers = vec![local];
    if let Some(docker) = &docker {
        drivers.push(docker.clone() as Arc<dyn stratos_cloud::Driver>);
    }
    let mut controller_config = stratos_cloud::ControllerConfig {
        allow_local_repos: args.allow_local_repos,
        strangers: args.strangers.choice(),
        unreachable_grace: args.unreachable_grace,
        secrets: Some(secrets.clone()),
        ..stratos_cloud::ControllerConfig::new(String::new())
    };
    if args.allow_local_repos {
        tracing::warn!("applications may name local artifact repositories (--allow-local-repos)");
    }
    // Before anything starts: the store must know the members that run, or say so.
    // What it read (the topology, the drivers' listing) is handed on to the bus and the
    // controller, so that each is read once.
    let established = stratos_cloud::ownership::establish(
        &store,
        &drivers,
        controller_config.strangers,
        controller_config.terminate_grace,
    )
    .await
    .map_err(|refusal| anyhow::anyhow!("not starting: {refusal}"))?;
    let platform_id = established.platform_id.clone();
    tracing::info!(platform_id = %platform_id, "platform id");
    if let Some(docker) = &docker {
        docker.set_platform_id(&platform_id);
    }

    // Every long-running component ends the platform when it ends (`supervise.rs`).
    let mut components = Supervisor::default();
    // The members the platform knows as live: only their bus credentials work (with those
    // it issues from now on), on the embedded broker's gate as on Mosquitto's dynamic security.
    // A cluster whose document cannot be read is left out (the controller freezes it; its
    // members are refused on the bus until it can be read again).
    for bad in &established.unreadable {
        tracing::error!(error = %bad, "a topology document cannot be read");
    }
    let live: Vec<(String, String)> =
        established.topology.members().map(|m| (m.cluster_id.clone(), m.member_id.clone())).collect();
    let live = || live.iter().map(|(c, m)| (c.as_str(), m.as_str()));

    // `broker_url` is what members are given (no credentials); `platform_url` carries the
    // platform's credentials, for the components in this process only, and is never printed.
    let mut embedded_broker = None;
    let (broker_url, platform_url, member_credentials, embedded) = match &args.broker {
        Some(url) => {
            stratos_lb::check_broker_url(url)?;
            let credentials = args.bus_auth.credentials()?;
            let platform_url = match &credentials {
                Some(credentials) => stratos_bus::with_credentials(url, credentials),
                None => url.clone(),
            };
            let member_credentials = match (&credentials, args.mosquitto_dynsec) {
                (Some(credentials), true) => {
                    // The platform password is also the key of members' credentials.
                    let secret = stratos_bus::PlatformSecret::new(credentials.password.clone());
                    let mut provisioner =
                        stratos_bus::mosquitto::MosquittoProvisioner::connect(url, credentials, secret.clone()).await?;
                    provisioner.reconcile(live()).await?;
                    components.spawn("Mosquitto provisioner", async move {
                        provisioner.run().await;
                        anyhow::Ok(())
                    });
                    Some(secret)
                }
                (None, true) => anyhow::bail!(
                    "--mosquitto-dynsec needs the platform's password: --bus-password-file or STRATOS_BUS_PASSWORD"
                ),
                (_, false) => None,
            };
            (url.clone(), platform_url, member_credentials, false)
        }
        None => {
            let secret_file = args.data_dir.join(BUS_PASSWORD_FILE);
            let secret = stratos_bus::PlatformSecret::load_or_create(&secret_file)?;
            let server_config = mqtt_tls.as_ref().map(|t| t.server_config.clone());
            let broker = EmbeddedBroker::start_tls(args.mqtt_listen, secret.clone(), server_config)
                .context("starting the embedded MQTT broker (use --mqtt-listen for another port, or --broker for an external one)")?;
            broker.admit_members(live());
            let urls = (broker.url(), broker.platform_url(), Some(secret), true);
            embedded_broker = Some(Arc::new(broker));
            urls
        }
    };
    // One registry for every component of this process, served once (`/api/metrics`,
    // and --metrics-listen if asked for).
    let mut metrics = stratos_metrics::Builder::default();
    let bus_metrics = metrics.bus();
    let (cloud_metrics, health_metrics, autoscaler_metrics) = (metrics.cloud(), metrics.health(), metrics.autoscaler());
    let (lb_metrics, api_metrics) = (metrics.lb(), metrics.api());
    let scrape = metrics.finish();
    let scrape_token = args.metrics.token()?;
    let metrics_listen = args.metrics.serve(&scrape).await?;
    // Every component in this process, and every member, trusts the same CA file.
    let bus_ca_cert = mqtt_tls.as_ref().and_then(|t| t.ca_cert.clone()).or_else(stratos_bus::tls::ca_cert_from_env);
    let connect_bus = |name: &str| {
        let client_id = format!("stratos-{name}-{}", std::process::id());
        let (platform_url, ca) = (platform_url.clone(), bus_ca_cert.clone());
        let counted = bus_metrics.for_component(name);
        async move {
            let bus = Bus::connect_trusting(&platform_url, &client_id, None, ca.as_deref()).await?;
            bus.count_into(counted);
            Ok::<_, stratos_bus::BusError>(bus)
        }
    };
    let bus = connect_bus("manager").await?;

    // Late joiners (load balancers, agents) read the topology from the retained snapshot.
    bus.publish(&CompleteTopologyEvent { topology: established.topology.clone() }).await?;

    // The mock IaaS's members live in this process only: it lists none at start, so it
    // joins the drivers after the start-up census, once the bus it plays agents on is up.
    if args.mock.enabled() {
        let patterns = Arc::new(stratos_cloud::MockPatterns::default());
        drivers.push(args.mock.driver(connect_bus("mock").await?, patterns.clone()).await);
        let store = store.clone();
        components.spawn("mock IaaS patterns", async move {
            stratos_cloud::mock_iaas::watch(store, patterns).await;
            anyhow::Ok(())
        });
    }
    // Every driver is in now (the mock IaaS joins last): deploys are checked against these.
    let driver_names: Vec<String> = drivers.iter().map(|d| d.name().to_string()).collect();
    controller_config.broker_url = broker_url.clone();
    controller_config.member_credentials = member_credentials;
    controller_config.bus_ca_cert = bus_ca_cert.clone();
    controller_config.metrics = Some(cloud_metrics);
    if let Some(docker) = &docker {
        docker.set_bus(args.docker.member_bus(embedded_broker.clone(), &broker_url));
    }
    // `stratos member exec` reaches members through the same drivers.
    let exec = Arc::new(crate::member_exec::DriversExec(drivers.clone()));
    // So do `stratos volume list` and `stratos application run`.
    let workloads = Arc::new(crate::workloads::DriversWorkloads { drivers: drivers.clone(), store: store.clone() });
    let controller =
        stratos_cloud::CloudController::new(store.clone(), connect_bus("cloud").await?, drivers, controller_config)
            .with_established(established);
    components.spawn("cloud controller", controller.run());
    let health_bus = connect_bus("health").await?;
    let health = stratos_health::HealthConfig {
        interval: args.health_interval.max(Duration::from_secs(1)),
        window: args.health_window.max(Duration::from_secs(2)),
        fault_after: args.member_fault_after,
    };
    components.spawn("health service", stratos_health::run_with_metrics(health_bus, health, Some(health_metrics)));
    let autoscaler_bus = connect_bus("autoscaler").await?;
    let autoscaler = stratos_autoscaler::AutoscalerConfig {
        interval: args.evaluation_interval.max(Duration::from_secs(1)),
        scale_down_after: args.scale_down_after,
        use_prediction: !args.no_prediction,
        metrics: Some(autoscaler_metrics),
        ..Default::default()
    };
    let autoscaler_store = store.clone();
    components.spawn("autoscaler", async move {
        stratos_autoscaler::run(autoscaler_store, autoscaler_bus, autoscaler).await.map_err(anyhow::Error::msg)
    });

    let lb_bus = connect_bus("lb").await?;
    let lb_config = args.lb.clone();
    components.spawn("load balancer", stratos_lb::run_with_metrics(lb_bus, lb_config, Some(lb_metrics)));

    let listener = tokio::net::TcpListener::bind(args.api_listen)
        .await
        .with_context(|| format!("cannot listen on {} for the API (use --api-listen)", args.api_listen))?;
    let api = listener.local_addr()?;
    let config = ApiConfig {
        allowed_origins: args.api_allow_origins.clone(),
        names: args.api_names.clone(),
        token_ttl: args.api_token_ttl.max(Duration::from_secs(60)),
        limits: Limits {
            tenant_max_members: args.tenant_max_members,
            tenant_max_clusters: args.tenant_max_clusters,
            max_cluster_size: args.max_cluster_size,
        },
        reserved_ports: reserved_ports(api, embedded.then_some(&broker_url)),
        ..ApiConfig::default()
    };
    let mut config = config;
    if let Some(addr) = metrics_listen {
        // No cartridge's proxy port may take the metrics listener's.
        config
            .reserved_ports
            .push(stratos_model::claims::ReservedPort { port: addr.port().into(), what: "metrics".into() });
    }
    let mut state = AppState::with_config(store.clone(), Some(bus.clone()), config);
    state.repo_policy = stratos_model::RepoUrlPolicy { allow_local: args.allow_local_repos };
    state.member_exec = Some(exec);
    state.secrets = Some(secrets.clone());
    state.workloads = Some(workloads);
    if let Some(docker) = &docker {
        state.deploy_checks.push(Arc::new(crate::docker::ImageCheck(docker.clone())));
    }
    // What deploys are checked against: the drivers this platform registered, by name.
    state.drivers = Some(driver_names.clone());
    state.metrics =
        Some(stratos_manager::metrics::ApiMetricsState { scrape, api: api_metrics, token: scrape_token.clone() });
    let state = Arc::new(state);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let client_url = format!("{scheme}://{}", crate::bootstrap::client_addr(api));
    crate::bootstrap::record_for_cli(&client_url, &admin.token_file, tls.as_ref().map(|t| t.fingerprint.as_str()));

    println!("Stratos is up");
    println!("  API        {scheme}://{api}/api   (OpenAPI: {scheme}://{api}/api/openapi.json)");
    if let Some(tls) = &tls {
        println!("  TLS        certificate {}", tls.cert_file.display());
        println!("             SHA-256 fingerprint {}", tls.fingerprint);
    }
    println!("  admin      token in {} (0600; the CLI on this machine finds it)", admin.token_file.display());
    if let Some(password_file) = &admin.password_file {
        println!(
            "             first platform admin {:?} created; its password is in {} (0600)",
            stratos_manager::bootstrap::FIRST_ADMIN,
            password_file.display()
        );
    }
    if embedded {
        println!(
            "  event bus  {broker_url}   (embedded broker; platform password in {}, for --bus-password-file)",
            args.data_dir.join(BUS_PASSWORD_FILE).display()
        );
    } else {
        println!("  event bus  {broker_url}");
    }
    if let Some(tls) = &mqtt_tls {
        println!("  bus TLS    certificate {}", tls.cert_file.display());
        println!("             SHA-256 fingerprint {}", tls.fingerprint);
        if let Some(ca) = &bus_ca_cert {
            println!("             bus clients trust {} (STRATOS_BUS_CA_CERT)", ca.display());
        }
    }
    println!("  store      {}   (platform {platform_id})", store.describe());
    println!(
        "  secrets    sealed under the key in {} (0600; key {})",
        secrets_file.display(),
        secrets.current_key_id()
    );
    println!("  members    {} (local driver)", args.data_dir.join("members").display());
    if docker.is_some() {
        println!(
            "             containers on {} (docker driver; a partition's dockerHost names another)",
            args.docker.host()
        );
    }
    if args.mock.enabled() {
        println!(
            "  mock IaaS  `mock` network partitions: members that run nothing, reporting the patterns of /api/mockIaas \
             (read at start from {})",
            args.data_dir.join(crate::mock_iaas::FILES[0]).display()
        );
    }
    println!("  load balancer on {} at each cartridge's proxy port (routing by Host header)", args.lb.listen_address);
    match (metrics_listen, &scrape_token) {
        (Some(addr), _) => {
            println!("  metrics    {scheme}://{api}/api/metrics and http://{addr}/metrics (scrape token)")
        }
        (None, Some(_)) => println!("  metrics    {scheme}://{api}/api/metrics (platform admins, or the scrape token)"),
        (None, None) => println!("  metrics    {scheme}://{api}/api/metrics (platform admins)"),
    }
    println!("Client commands use --api {client_url} (or STRATOS_API). Ctrl-C stops the platform.");

    let tls_config = tls.map(|t| t.config);
    // The API runs here until a signal asks it to stop; a component that ends first ends
    // the platform (the API is dropped, and the other components with the runtime).
    let api = stratos_manager::serve_with(listener, tls_config, state, args.body_limit, shutdown_signal());
    let ended = tokio::select! {
        served = api => {
            served?;
            None
        }
        error = components.first_end() => Some(error),
    };
    bus.close().await;
    match ended {
        None => {
            tracing::info!("stopped");
            Ok(())
        }
        Some(error) => Err(error),
    }
}

/// The ports this platform listens on, which no cartridge's proxy port may take: the
/// API's, and the embedded broker's (the load balancer has no listener but the proxy ports).
fn reserved_ports(
    api: std::net::SocketAddr,
    embedded_bus: Option<&String>,
) -> Vec<stratos_model::claims::ReservedPort> {
    let mut reserved = vec![stratos_model::claims::ReservedPort { port: api.port().into(), what: "the API".into() }];
    if let Some(Ok((_, port))) = embedded_bus.map(|url| stratos_bus::parse_broker_url(url)) {
        reserved.push(stratos_model::claims::ReservedPort { port: port.into(), what: "the event bus".into() });
    }
    reserved
}

/// The API's certificate, if it is served in TLS.
fn api_tls(args: &UpArgs) -> Result<Option<ApiTls>> {
    if let (Some(cert), Some(key)) = (&args.api_tls_cert, &args.api_tls_key) {
        return Ok(Some(ApiTls::from_files(cert, key)?));
    }
    if args.api_tls_self_signed {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("cannot create the data directory {}", args.data_dir.display()))?;
        let tls = ApiTls::self_signed(&args.data_dir, &args.api_names, &[args.api_listen.ip()])?;
        return Ok(Some(tls));
    }
    Ok(None)
}

/// The embedded broker's TLS, if it speaks TLS: the server's configuration (the API's
/// certificate code, without the API's ALPN), and the CA file its clients trust.
struct MqttTls {
    server_config: Arc<rustls::ServerConfig>,
    cert_file: PathBuf,
    fingerprint: String,
    /// The self-signed certificate itself (absolute: members run elsewhere); `None`
    /// for a given certificate, whose CA comes from STRATOS_BUS_CA_CERT or the system.
    ca_cert: Option<PathBuf>,
}

fn mqtt_tls(args: &UpArgs) -> Result<Option<MqttTls>> {
    let (tls, self_signed) = if let (Some(cert), Some(key)) = (&args.mqtt_tls_cert, &args.mqtt_tls_key) {
        (ApiTls::from_files(cert, key).context("--mqtt-tls-cert/--mqtt-tls-key")?, false)
    } else if args.mqtt_tls_self_signed {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("cannot create the data directory {}", args.data_dir.display()))?;
        (ApiTls::self_signed_as("mqtt", &args.data_dir, &[], &[args.mqtt_listen.ip()])?, true)
    } else {
        return Ok(None);
    };
    let mut server_config = (*tls.config).clone();
    server_config.alpn_protocols.clear();
    let ca_cert = if self_signed {
        let path = std::fs::canonicalize(&tls.cert_file)
            .with_context(|| format!("cannot resolve {}", tls.cert_file.display()))?;
        Some(path)
    } else {
        None
    };
    Ok(Some(MqttTls {
        server_config: Arc::new(server_config),
        cert_file: tls.cert_file,
        fingerprint: tls.fingerprint,
        ca_cert,
    }))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

/// `--member-ports`: a range of at least one port, for clap (its error names the flag).
fn parse_port_range(text: &str) -> Result<stratos_cloud::PortRange, String> {
    text.parse()
}
