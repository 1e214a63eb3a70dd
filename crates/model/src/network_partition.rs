//! Network partition: one "cloud" (an IaaS region, a Docker host, a data centre)
//! and the partitions (zones) members can be placed in.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::property::{check_properties, property, Property};
use crate::{Definition, Definitions, Kind, Problems};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPartition {
    #[schemars(pattern(crate::ID_PATTERN), length(min = 1, max = 128))]
    pub id: String,
    /// The IaaS driver that starts members here (`local`, `docker`, `kubernetes`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub partitions: Vec<Partition>,
    #[serde(default, alias = "properties")]
    pub property: Vec<Property>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Partition {
    #[schemars(pattern(crate::ID_PATTERN), length(min = 1, max = 128))]
    pub id: String,
    /// Overrides the network partition's provider for this partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Upper bound on members in this partition, whatever a deployment policy says.
    #[serde(default, deserialize_with = "crate::lenient::opt_u32", skip_serializing_if = "Option::is_none")]
    pub partition_max: Option<u32>,
    /// `region` and `zone` go here, as in Apache Stratos.
    #[serde(default, alias = "properties")]
    pub property: Vec<Property>,
}

impl Partition {
    pub fn region(&self) -> Option<&str> {
        property(&self.property, "region")
    }
    pub fn zone(&self) -> Option<&str> {
        property(&self.property, "zone")
    }
}

impl NetworkPartition {
    pub fn partition(&self, id: &str) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.id == id)
    }

    /// The driver that starts members in `partition`.
    pub fn provider_of<'a>(&'a self, partition: &'a Partition) -> Option<&'a str> {
        partition.provider.as_deref().or(self.provider.as_deref())
    }
}

impl Definition for NetworkPartition {
    const KIND: Kind = Kind::NetworkPartition;

    fn id(&self) -> &str {
        &self.id
    }

    fn validate(&self, p: &mut Problems) {
        p.check_id("id", &self.id);
        if self.partitions.is_empty() {
            p.push("partitions", "a network partition needs at least one partition");
        }
        for (i, part) in self.partitions.iter().enumerate() {
            let at = format!("partitions[{i}]");
            p.check_id(&format!("{at}.id"), &part.id);
            if part.partition_max == Some(0) {
                p.push(format!("{at}.partitionMax"), "must be at least 1");
            }
            if self.provider.is_none() && part.provider.is_none() {
                p.push(format!("{at}.provider"), "no provider here nor on the network partition");
            }
            check_properties(&part.property, &format!("{at}.property"), p);
        }
        p.check_unique(self.partitions.iter().enumerate().map(|(i, x)| (format!("partitions[{i}].id"), x.id.as_str())));
        check_properties(&self.property, "property", p);
    }

    fn check_references(&self, _defs: &Definitions, _p: &mut Problems) {}

    fn references(&self) -> Vec<(Kind, String)> {
        Vec::new()
    }
}
