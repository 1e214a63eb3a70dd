//! Every event of the platform as a typed value. The MQTT topic of an event is
//! its type path (`topology/MemberActivatedEvent`), as in Apache Stratos 4.1;
//! the body is the JSON of the struct.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use stratos_model::topology::{Cluster, Member, Port, ServiceType, Topology};
use stratos_model::Tenant;

/// A value that travels on the bus under its own topic.
pub trait Event: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    const TOPIC: &'static str;
    /// Retained events are delivered to subscribers that join later.
    const RETAIN: bool = false;
}

/// Names a member in the events about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRef {
    pub service_name: String,
    pub cluster_id: String,
    pub member_id: String,
    pub network_partition_id: String,
    pub partition_id: String,
}

impl From<&Member> for MemberRef {
    fn from(m: &Member) -> Self {
        MemberRef {
            service_name: m.service_name.clone(),
            cluster_id: m.cluster_id.clone(),
            member_id: m.member_id.clone(),
            network_partition_id: m.network_partition_id.clone(),
            partition_id: m.partition_id.clone(),
        }
    }
}

macro_rules! events {
    ($( $prefix:literal => { $( $(#[$meta:meta])* $name:ident $(retained $retain:literal)? { $($body:tt)* } )* } )*) => {
        $($(
            $(#[$meta])*
            #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
            #[serde(rename_all = "camelCase")]
            pub struct $name { $($body)* }

            impl Event for $name {
                const TOPIC: &'static str = concat!($prefix, "/", stringify!($name));
                $(const RETAIN: bool = $retain;)?
            }
        )*)*

        /// Any event, decoded from its topic; what a wildcard subscription yields.
        #[derive(Debug, Clone, PartialEq)]
        pub enum AnyEvent {
            $($( $name($name), )*)*
        }

        impl AnyEvent {
            /// Every topic the platform uses.
            pub const TOPICS: &'static [&'static str] = &[$($( <$name as Event>::TOPIC, )*)*];

            /// Decodes a message by its topic; `None` for a topic that is not ours.
            pub fn decode(topic: &str, payload: &[u8]) -> Option<Result<AnyEvent, serde_json::Error>> {
                $($(
                    if topic == <$name as Event>::TOPIC {
                        return Some(serde_json::from_slice(payload).map(AnyEvent::$name));
                    }
                )*)*
                None
            }

            /// Topic, JSON body and retain flag of the event.
            pub fn encode(&self) -> Result<(&'static str, Vec<u8>, bool), serde_json::Error> {
                match self { $($( AnyEvent::$name(e) => Ok((<$name as Event>::TOPIC, serde_json::to_vec(e)?, <$name as Event>::RETAIN)), )*)* }
            }

            pub fn topic(&self) -> &'static str {
                match self { $($( AnyEvent::$name(_) => <$name as Event>::TOPIC, )*)* }
            }
        }
    };
}

events! {
    "topology" => {
        ServiceCreatedEvent { pub service_name: String, pub service_type: ServiceType, pub ports: Vec<Port> }
        ServiceRemovedEvent { pub service_name: String }
        ClusterCreatedEvent { pub cluster: Cluster }
        ClusterRemovedEvent { pub service_name: String, pub cluster_id: String }
        MemberCreatedEvent { pub member: Member }
        MemberInitializedEvent {
            #[serde(flatten)] pub member: MemberRef,
            pub default_private_ip: Option<String>,
            pub ports: Vec<Port>,
        }
        MemberStartedEvent { #[serde(flatten)] pub member: MemberRef }
        MemberActivatedEvent {
            #[serde(flatten)] pub member: MemberRef,
            pub default_private_ip: Option<String>,
            pub ports: Vec<Port>,
        }
        MemberMaintenanceModeEvent { #[serde(flatten)] pub member: MemberRef }
        MemberReadyToShutdownEvent { #[serde(flatten)] pub member: MemberRef }
        /// The controller took the member out of service (its app stopped answering its
        /// health checks): load balancers stop routing to it at once; it is terminated
        /// and replaced.
        MemberSuspendedEvent { #[serde(flatten)] pub member: MemberRef, pub reason: String }
        MemberTerminatedEvent {
            #[serde(flatten)] pub member: MemberRef,
            /// Why the member went away (undeploy, scale-down, process exited, ...).
            pub reason: String,
        }
        CompleteTopologyEvent retained true { pub topology: Topology }
    }
    "instance/status" => {
        InstanceStartedEvent { #[serde(flatten)] pub member: MemberRef }
        InstanceActivatedEvent { #[serde(flatten)] pub member: MemberRef }
        InstanceMaintenanceModeEvent { #[serde(flatten)] pub member: MemberRef }
        InstanceReadyToShutdownEvent { #[serde(flatten)] pub member: MemberRef }
        InstanceStartFailedEvent { #[serde(flatten)] pub member: MemberRef, pub error: String }
        /// The agent's health checks of its app failed `failureThreshold` times in a row
        /// (repeated every 30 s while they keep failing).
        InstanceUnhealthyEvent { #[serde(flatten)] pub member: MemberRef, pub reason: String }
    }
    "instance/notifier" => {
        ArtifactUpdatedEvent {
            pub cluster_id: String,
            pub tenant_id: i64,
            #[serde(rename = "repoURL")] pub repo_url: String,
        }
        InstanceCleanupMemberEvent { pub member_id: String }
        InstanceCleanupClusterEvent { pub cluster_id: String }
    }
    "application" => {
        ApplicationCreatedEvent { pub application_id: String, pub tenant_id: i64 }
        ApplicationDeletedEvent { pub application_id: String, pub tenant_id: i64 }
        ApplicationDeployedEvent { pub application_id: String, pub tenant_id: i64, pub application_policy_id: String }
        ApplicationUndeployedEvent { pub application_id: String, pub tenant_id: i64 }
        /// The autoscaler's application monitor: every top-level group and cluster is active.
        ApplicationActivatedEvent { pub application_id: String, pub tenant_id: i64 }
        /// The autoscaler's application monitor: a top-level group or cluster that was active is not.
        ApplicationInactivatedEvent { pub application_id: String, pub tenant_id: i64 }
        /// The autoscaler's application monitor: the application is being undeployed.
        ApplicationTerminatingEvent { pub application_id: String, pub tenant_id: i64 }
        /// A group monitor: every cluster and nested group in it is active.
        GroupActivatedEvent { pub application_id: String, pub tenant_id: i64, pub group_alias: String }
        /// A group monitor: a cluster or nested group in it that was active is not.
        GroupInactivatedEvent { pub application_id: String, pub tenant_id: i64, pub group_alias: String }
        /// A group monitor: its application is being undeployed.
        GroupTerminatingEvent { pub application_id: String, pub tenant_id: i64, pub group_alias: String }
    }
    "cluster/status" => {
        ClusterStatusClusterActivatedEvent { pub app_id: String, pub service_name: String, pub cluster_id: String }
        ClusterStatusClusterInactivateEvent { pub app_id: String, pub service_name: String, pub cluster_id: String }
        ClusterStatusClusterTerminatedEvent { pub app_id: String, pub service_name: String, pub cluster_id: String }
    }
    "tenant" => {
        TenantCreatedEvent { pub tenant: Tenant }
        TenantUpdatedEvent { pub tenant: Tenant }
        TenantRemovedEvent { pub tenant_id: i64 }
        /// Every tenant, retained: a consumer that starts late, or missed a change,
        /// learns the tenants from the last snapshot instead of from history.
        CompleteTenantEvent retained true { pub tenants: Vec<Tenant> }
    }
    "health" => {
        /// Published by the agent every interval: load average per core ×100, memory %.
        MemberHealthStatEvent {
            #[serde(flatten)] pub member: MemberRef,
            pub load_average: Option<f64>,
            pub memory_consumption: Option<f64>,
            /// Milliseconds since the Unix epoch.
            pub timestamp: u64,
        }
        /// Published by load balancers: requests in flight per cluster and member.
        InFlightRequestsEvent {
            pub cluster_id: String,
            pub network_partition_id: String,
            pub member_id: Option<String>,
            pub in_flight: f64,
            pub timestamp: u64,
        }
        MemberFaultEvent { #[serde(flatten)] pub member: MemberRef, pub reason: String }
    }
    "summarized-health-stats" => {
        /// Everything the health service concluded about one cluster in one network
        /// partition over its window, once per interval: one message per cluster, not
        /// one per member and factor, so that 100k members cost 10k messages.
        ClusterHealthSummaryEvent {
            pub cluster_id: String,
            pub network_partition_id: String,
            /// Requests in flight as the load balancers report them for the cluster.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub requests_in_flight: Option<FactorSummary>,
            /// The mean over the members that reported a load average.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub load_average: Option<FactorSummary>,
            /// The mean over the members that reported their memory consumption.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub memory_consumption: Option<FactorSummary>,
            /// Each member with statistics in the window.
            pub members: Vec<MemberHealthSummary>,
            pub timestamp: u64,
        }
    }
    "autoscaler" => {
        /// One evaluation of a cluster: inputs, prediction and requirement per factor, and what was done.
        ScalingDecisionEvent {
            pub cluster_id: String,
            pub application_id: String,
            /// `none`, `scale-up` or `scale-down`.
            pub action: String,
            pub current: u32,
            pub desired: u32,
            /// The decision with every input it was based on.
            pub decision: serde_json::Value,
            pub timestamp: u64,
        }
    }
    "log" => {
        LogEvent {
            #[serde(flatten)] pub member: MemberRef,
            pub tenant_id: i64,
            /// `stdout` or `stderr`.
            pub stream: String,
            pub line: String,
            pub timestamp: u64,
        }
    }
}

/// Average, gradient (per second) and second derivative (per second²) of one
/// factor over the health window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FactorSummary {
    pub average: f64,
    pub gradient: f64,
    pub second_derivative: f64,
}

/// One member's factors inside its cluster's [`ClusterHealthSummaryEvent`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberHealthSummary {
    pub member_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_average: Option<FactorSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_consumption: Option<FactorSummary>,
}

/// Milliseconds since the Unix epoch, the time unit of every event.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
