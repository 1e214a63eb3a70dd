//! `stratos lb` and `stratos lb-extension`: a load balancer as a process of its own,
//! connected to the event bus with the platform's credentials.

use stratos_lb_extension::ExtensionConfig;

#[derive(clap::Args)]
pub struct LbArgs {
    /// The event bus: mqtt://HOST:PORT.
    #[arg(long, env = "STRATOS_BROKER", default_value = "mqtt://127.0.0.1:1883")]
    broker: String,
    #[command(flatten)]
    bus_auth: stratos_lb::BusAuth,
    #[command(flatten)]
    config: stratos_lb::LbConfig,
    #[command(flatten)]
    metrics: crate::metrics::MetricsArgs,
}

/// `stratos lb-extension`: the event bus and the extension's settings.
#[derive(clap::Args)]
pub struct ExtensionArgs {
    /// The event bus: mqtt://HOST:PORT.
    #[arg(long, env = "STRATOS_BROKER", default_value = "mqtt://127.0.0.1:1883")]
    broker: String,
    #[command(flatten)]
    bus_auth: stratos_lb::BusAuth,
    #[command(flatten)]
    config: ExtensionConfig,
    #[command(flatten)]
    metrics: crate::metrics::MetricsArgs,
}

/// Connects to `broker` as `client_id`, refusing a password in the URL.
async fn connect(broker: &str, bus_auth: &stratos_lb::BusAuth, client_id: &str) -> anyhow::Result<stratos_bus::Bus> {
    stratos_lb::check_broker_url(broker)?;
    let credentials = bus_auth.credentials()?;
    Ok(stratos_bus::Bus::connect_with(broker, client_id, credentials).await?)
}

/// Runs the built-in load balancer until the event bus goes away.
pub async fn run(args: LbArgs) -> anyhow::Result<()> {
    let bus = connect(&args.broker, &args.bus_auth, &format!("stratos-lb-{}", std::process::id())).await?;
    let mut metrics = stratos_metrics::Builder::default();
    let (lb, bus_metrics) = (metrics.lb(), metrics.bus());
    bus.count_into(bus_metrics.for_component("lb"));
    let served = args.metrics.serve(&metrics.finish()).await?;
    Ok(stratos_lb::run_with_metrics(bus, args.config, served.map(|_| lb)).await?)
}

/// Runs the extension until SIGTERM or Ctrl-C, then stops the proxy.
pub async fn run_extension(args: ExtensionArgs) -> anyhow::Result<()> {
    let client_id = format!("stratos-lb-{}-{}", args.config.kind, std::process::id());
    let bus = connect(&args.broker, &args.bus_auth, &client_id).await?;
    let mut metrics = stratos_metrics::Builder::default();
    let (extension_metrics, bus_metrics) = (metrics.extension(), metrics.bus());
    bus.count_into(bus_metrics.for_component("lb-extension"));
    let served = args.metrics.serve(&metrics.finish()).await?;
    let mut extension =
        stratos_lb_extension::start_with_metrics(bus, args.config, served.map(|_| extension_metrics)).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let finished = tokio::select! {
        result = extension.finished() => Some(result),
        _ = term.recv() => None,
        _ = tokio::signal::ctrl_c() => None,
    };
    match finished {
        Some(result) => Ok(result?),
        None => {
            tracing::info!("stopping the load balancer extension");
            extension.stop().await;
            Ok(())
        }
    }
}
