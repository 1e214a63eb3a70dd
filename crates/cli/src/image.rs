//! `stratos image build`: a cartridge's Docker image made on the engine itself, with no
//! registry (`stratos_image`), showing the builder's progress and saying "up to date" when
//! the image already carries its inputs' hash.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use stratos_image::{ImageSpec, Outcome};
use stratos_model::Cartridge;

#[derive(clap::Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(clap::Subcommand)]
enum ImageCommand {
    /// Build the image of each cartridge's docker iaasProvider, unless it is up to date.
    ///
    /// The image's name is the provider's imageId; one of its properties says how to make it:
    /// IMAGE_DOCKERFILE (a Dockerfile starting FROM scratch, relative to the cartridge file; its
    /// directory is the build context) or IMAGE_DEBIAN_PACKAGES (Debian packages, space- or
    /// comma-separated, installed by mmdebstrap into a minimal root filesystem that is then
    /// imported; IMAGE_DEBIAN_SUITE, default bookworm, and IMAGE_DEBIAN_MIRROR). Nothing is
    /// pulled. The image is labelled with the hash of its inputs and rebuilt only when they change.
    Build(BuildArgs),
}

#[derive(clap::Args)]
struct BuildArgs {
    /// Cartridge definition files (JSON or YAML), as given to `stratos cartridge add`.
    #[arg(required = true)]
    cartridges: Vec<PathBuf>,
    /// The Docker Engine: unix:///path/to/docker.sock or tcp://HOST:PORT (default: DOCKER_HOST, else the local socket).
    #[arg(long, env = "STRATOS_DOCKER_HOST")]
    docker_host: Option<String>,
    /// Build even when the image is up to date (to take Debian's newer packages).
    #[arg(long)]
    force: bool,
}

pub async fn run(args: ImageArgs) -> Result<()> {
    match args.command {
        ImageCommand::Build(args) => build(args).await,
    }
}

async fn build(args: BuildArgs) -> Result<()> {
    // Every file is read and checked before the first build starts.
    let mut specs = Vec::new();
    for file in &args.cartridges {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        let cartridge: Cartridge = stratos_model::parse(&text, stratos_model::Format::sniff(&text))
            .map_err(|problems| anyhow::anyhow!("{}: {problems}", file.display()))?;
        let base = file.parent().map(PathBuf::from).unwrap_or_default();
        let spec = ImageSpec::from_cartridge(&cartridge, &base).with_context(|| format!("{}", file.display()))?;
        specs.push(spec);
    }
    let docker = stratos_image::engine::connect(args.docker_host.as_deref()).await?;
    let mut failed = 0;
    for spec in &specs {
        println!("{}: {}", spec.name, spec.describe());
        let started = Instant::now();
        let mut progress = |line: &str| println!("  | {line}");
        match stratos_image::build(&docker, spec, args.force, &mut progress).await {
            Ok(Outcome::UpToDate { id, inputs }) => {
                println!(
                    "{}: up to date ({}, inputs {})",
                    spec.name,
                    short_id(&id),
                    stratos_image::inputs::short(&inputs)
                )
            }
            Ok(Outcome::Built { id, inputs }) => println!(
                "{}: built {} in {:.0?} (inputs {})",
                spec.name,
                short_id(&id),
                started.elapsed(),
                stratos_image::inputs::short(&inputs)
            ),
            Err(e) => {
                eprintln!("error: {}: {e}", spec.name);
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} images failed to build", specs.len());
    }
    Ok(())
}

fn short_id(id: &str) -> String {
    stratos_image::inputs::short(id).to_owned()
}
