//! Deployment policy: where a cluster's members may go, and in what order.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Definition, Definitions, Kind, Problems};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentPolicy {
    #[schemars(pattern(crate::ID_PATTERN), length(min = 1, max = 128))]
    pub id: String,
    pub network_partitions: Vec<NetworkPartitionRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPartitionRef {
    /// Id of a defined network partition.
    #[schemars(pattern(crate::ID_PATTERN), length(min = 1, max = 128))]
    pub id: String,
    pub partition_algo: PartitionAlgorithm,
    pub partitions: Vec<PartitionRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartitionRef {
    /// Id of a partition of the enclosing network partition.
    #[schemars(pattern(crate::ID_PATTERN), length(min = 1, max = 128))]
    pub id: String,
    /// Most members this policy puts in the partition.
    #[serde(deserialize_with = "crate::lenient::u32")]
    pub partition_max: u32,
}

/// How new members are spread over a network partition's partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionAlgorithm {
    /// Fill each partition to its max before using the next.
    OneAfterAnother,
    /// Spread members evenly.
    RoundRobin,
}

impl Definition for DeploymentPolicy {
    const KIND: Kind = Kind::DeploymentPolicy;

    fn id(&self) -> &str {
        &self.id
    }

    fn validate(&self, p: &mut Problems) {
        p.check_id("id", &self.id);
        if self.network_partitions.is_empty() {
            p.push("networkPartitions", "a deployment policy needs at least one network partition");
        }
        for (i, np) in self.network_partitions.iter().enumerate() {
            let at = format!("networkPartitions[{i}]");
            p.check_id(&format!("{at}.id"), &np.id);
            if np.partitions.is_empty() {
                p.push(format!("{at}.partitions"), "needs at least one partition");
            }
            for (j, part) in np.partitions.iter().enumerate() {
                p.check_id(&format!("{at}.partitions[{j}].id"), &part.id);
                if part.partition_max == 0 {
                    p.push(format!("{at}.partitions[{j}].partitionMax"), "must be at least 1");
                }
            }
            p.check_unique(
                np.partitions.iter().enumerate().map(|(j, x)| (format!("{at}.partitions[{j}].id"), x.id.as_str())),
            );
        }
        p.check_unique(
            self.network_partitions
                .iter()
                .enumerate()
                .map(|(i, x)| (format!("networkPartitions[{i}].id"), x.id.as_str())),
        );
    }

    fn check_references(&self, defs: &Definitions, p: &mut Problems) {
        for (i, np) in self.network_partitions.iter().enumerate() {
            let Some(defined) = defs.network_partitions.get(&np.id) else {
                p.push(format!("networkPartitions[{i}].id"), format!("network partition {:?} is not defined", np.id));
                continue;
            };
            for (j, part) in np.partitions.iter().enumerate() {
                if defined.partition(&part.id).is_none() {
                    p.push(
                        format!("networkPartitions[{i}].partitions[{j}].id"),
                        format!("network partition {:?} has no partition {:?}", np.id, part.id),
                    );
                }
            }
        }
    }

    fn references(&self) -> Vec<(Kind, String)> {
        self.network_partitions.iter().map(|np| (Kind::NetworkPartition, np.id.clone())).collect()
    }
}
