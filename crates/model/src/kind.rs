use std::fmt;
use std::str::FromStr;

/// The kinds of definition a user registers with the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Cartridge,
    NetworkPartition,
    DeploymentPolicy,
    AutoscalingPolicy,
    ApplicationPolicy,
    CartridgeGroup,
    Application,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Cartridge,
        Kind::NetworkPartition,
        Kind::DeploymentPolicy,
        Kind::AutoscalingPolicy,
        Kind::ApplicationPolicy,
        Kind::CartridgeGroup,
        Kind::Application,
    ];

    /// The REST collection, as Apache Stratos 4.1 names it (`/api/<resource>`).
    pub fn resource(self) -> &'static str {
        match self {
            Kind::Cartridge => "cartridges",
            Kind::NetworkPartition => "networkPartitions",
            Kind::DeploymentPolicy => "deploymentPolicies",
            Kind::AutoscalingPolicy => "autoscalingPolicies",
            Kind::ApplicationPolicy => "applicationPolicies",
            Kind::CartridgeGroup => "cartridgeGroups",
            Kind::Application => "applications",
        }
    }

    /// The name used in the CLI, the store and messages (`deployment-policy`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Cartridge => "cartridge",
            Kind::NetworkPartition => "network-partition",
            Kind::DeploymentPolicy => "deployment-policy",
            Kind::AutoscalingPolicy => "autoscaling-policy",
            Kind::ApplicationPolicy => "application-policy",
            Kind::CartridgeGroup => "cartridge-group",
            Kind::Application => "application",
        }
    }

    /// The field that holds a definition's id.
    pub fn id_field(self) -> &'static str {
        match self {
            Kind::Cartridge => "type",
            Kind::Application => "applicationId",
            Kind::CartridgeGroup => "name",
            _ => "id",
        }
    }

    /// Human words for messages: "deployment policy".
    pub fn words(self) -> String {
        self.name().replace('-', " ")
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL.into_iter().find(|k| k.name() == s || k.resource() == s).ok_or_else(|| format!("unknown kind {s:?}"))
    }
}
