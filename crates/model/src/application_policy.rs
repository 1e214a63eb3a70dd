//! Application policy: the network partitions (clouds) an application may use,
//! in the order it bursts into them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::property::{check_properties, Property};
use crate::{Definition, Definitions, Kind, Problems};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationPolicy {
    #[schemars(pattern(crate::ID_PATTERN), length(min = 1, max = 128))]
    pub id: String,
    pub algorithm: ApplicationAlgorithm,
    /// Network partition ids, in bursting order.
    pub network_partitions: Vec<String>,
    #[serde(default, alias = "property")]
    pub properties: Vec<Property>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ApplicationAlgorithm {
    /// Use the next network partition only once the previous ones are full (cloud bursting).
    OneAfterAnother,
    /// Use every network partition at once.
    AllAtOnce,
}

impl Definition for ApplicationPolicy {
    const KIND: Kind = Kind::ApplicationPolicy;

    fn id(&self) -> &str {
        &self.id
    }

    fn validate(&self, p: &mut Problems) {
        p.check_id("id", &self.id);
        if self.network_partitions.is_empty() {
            p.push("networkPartitions", "an application policy needs at least one network partition");
        }
        for (i, np) in self.network_partitions.iter().enumerate() {
            p.check_id(&format!("networkPartitions[{i}]"), np);
        }
        p.check_unique(
            self.network_partitions.iter().enumerate().map(|(i, x)| (format!("networkPartitions[{i}]"), x.as_str())),
        );
        check_properties(&self.properties, "properties", p);
    }

    fn check_references(&self, defs: &Definitions, p: &mut Problems) {
        for (i, np) in self.network_partitions.iter().enumerate() {
            if !defs.network_partitions.contains_key(np) {
                p.push(format!("networkPartitions[{i}]"), format!("network partition {np:?} is not defined"));
            }
        }
    }

    fn references(&self) -> Vec<(Kind, String)> {
        self.network_partitions.iter().map(|np| (Kind::NetworkPartition, np.clone())).collect()
    }
}
