//! The example definitions of `examples/`, shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use stratos_model::{parse, Definition, Definitions, Format, Kind, Problem};

/// `(path under examples/, text)`.
pub type Example = (&'static str, &'static str);

macro_rules! example {
    ($path:literal) => {
        ($path, include_str!(concat!("../../../../examples/", $path)))
    };
}

pub const NETWORK_PARTITIONS: &[Example] = &[
    example!("php-web/network-partition-np-local-1.json"),
    example!("php-web/network-partition-np-local-2.json"),
    example!("php-web/network-partition-np-docker-1.json"),
    example!("tcp-echo/network-partition-np-local-tcp.json"),
];

pub const CARTRIDGES: &[Example] = &[
    example!("php-web/cartridge-php.json"),
    example!("php-web/cartridge-python-api.json"),
    example!("tcp-echo/cartridge-tcp-echo.json"),
];

pub const AUTOSCALING_POLICIES: &[Example] =
    &[example!("php-web/autoscaling-policy-economy.json"), example!("tcp-echo/autoscaling-policy-tcp-load.json")];

pub const DEPLOYMENT_POLICIES: &[Example] = &[
    example!("php-web/deployment-policy-web-bursting.json"),
    example!("php-web/deployment-policy-web-docker.json"),
    example!("tcp-echo/deployment-policy-echo-round-robin.json"),
];

pub const APPLICATION_POLICIES: &[Example] = &[
    example!("php-web/application-policy-burst-local.json"),
    example!("php-web/application-policy-docker.json"),
    example!("tcp-echo/application-policy-echo-local.json"),
];

pub const APPLICATIONS: &[Example] = &[
    example!("php-web/application-php-web.json"),
    example!("php-web/application-php-web-docker.json"),
    example!("tcp-echo/application-tcp-echo.json"),
];

/// Every example with its kind.
pub fn all_examples() -> Vec<(Kind, Example)> {
    let mut out = Vec::new();
    for (kind, list) in [
        (Kind::NetworkPartition, NETWORK_PARTITIONS),
        (Kind::Cartridge, CARTRIDGES),
        (Kind::AutoscalingPolicy, AUTOSCALING_POLICIES),
        (Kind::DeploymentPolicy, DEPLOYMENT_POLICIES),
        (Kind::ApplicationPolicy, APPLICATION_POLICIES),
        (Kind::Application, APPLICATIONS),
    ] {
        out.extend(list.iter().map(|e| (kind, *e)));
    }
    out
}

/// Parses a definition, panicking with the file name and the problems.
pub fn load<T: DeserializeOwned>((path, text): Example) -> T {
    parse(text, Format::Json).unwrap_or_else(|p| panic!("examples/{path} does not parse:\n{p}"))
}

fn load_all<T: Definition + DeserializeOwned>(list: &[Example]) -> BTreeMap<String, T> {
    list.iter()
        .map(|e| {
            let def: T = load(*e);
            (def.id().to_string(), def)
        })
        .collect()
}

/// The catalog of every example definition.
pub fn example_defs() -> Definitions {
    Definitions {
        cartridges: load_all(CARTRIDGES),
        network_partitions: load_all(NETWORK_PARTITIONS),
        deployment_policies: load_all(DEPLOYMENT_POLICIES),
        autoscaling_policies: load_all(AUTOSCALING_POLICIES),
        application_policies: load_all(APPLICATION_POLICIES),
        applications: load_all(APPLICATIONS),
        ..Default::default()
    }
}

/// Parses `text` as a definition of `kind` and checks it against `defs`:
/// every problem found, parse errors included.
pub fn check_text(kind: Kind, format: Format, text: &str, defs: &Definitions) -> Vec<Problem> {
    fn go<T: Definition + DeserializeOwned>(text: &str, format: Format, defs: &Definitions) -> Vec<Problem> {
        match parse::<T>(text, format) {
            Ok(def) => def.check(defs).err().map(|p| p.0).unwrap_or_default(),
            Err(p) => p.0,
        }
    }
    match kind {
        Kind::Cartridge => go::<stratos_model::Cartridge>(text, format, defs),
        Kind::NetworkPartition => go::<stratos_model::NetworkPartition>(text, format, defs),
        Kind::DeploymentPolicy => go::<stratos_model::DeploymentPolicy>(text, format, defs),
        Kind::AutoscalingPolicy => go::<stratos_model::AutoscalingPolicy>(text, format, defs),
        Kind::ApplicationPolicy => go::<stratos_model::ApplicationPolicy>(text, format, defs),
        Kind::CartridgeGroup => go::<stratos_model::CartridgeGroup>(text, format, defs),
        Kind::Application => go::<stratos_model::Application>(text, format, defs),
    }
}

/// Removes the indentation common to every non-blank line, so that YAML can be
/// written indented inside the test source.
pub fn dedent(text: &str) -> String {
    let indent =
        text.lines().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    text.lines().map(|l| if l.len() >= indent { &l[indent..] } else { l.trim_start() }).collect::<Vec<_>>().join("\n")
        + "\n"
}
