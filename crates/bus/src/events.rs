//! Every event of the platform as a typed value. The MQTT topic of an event is
//! its type path (`topology/MemberActivatedEvent`), as in Apache Stratos 4.1;
//! the body is the JSON of the struct (compressed for the types that carry a whole
//! collection: `body.rs`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use stratos_model::topology::{Cluster, Member, Port, ServiceType, Topology};
use stratos_model::Tenant;

/// A value that travels on the bus under its own topic.
///
/// An event's topic is `<prefix>/<Name>`, or `<prefix>/<scope>/<Name>` for an event
/// scoped to one member or cluster: the scope is the id in the event's own body
/// (`instance/status/<memberId>/InstanceActivatedEvent`), so that the broker can
/// confine a member to its own topics and a consumer can check that the body is
/// about the member its topic names.
pub trait Event: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The event type's name, the topic's last level.
    const NAME: &'static str;
    /// The topic before the scope and name (`instance/status`).
    const PREFIX: &'static str;
    /// A filter matching every topic of this event type (`instance/status/+/InstanceActivatedEvent`).
    const FILTER: &'static str;
    /// Retained events are delivered to subscribers that join later.
    const RETAIN: bool = false;
    /// The body goes compressed (`body.rs`): the event carries a whole collection,
    /// tens of MB of JSON on a large platform. Members never publish such events.
    const COMPRESSED: bool = false;

    /// The member or cluster id the topic is scoped by, if the event type is scoped.
    fn scope(&self) -> Option<&str>;

    /// The topic of this event type for one member or cluster (scoped types only).
    fn topic_for(scope: &str) -> String {
        format!("{}/{}/{}", Self::PREFIX, scope, Self::NAME)
    }

    /// The topic this event goes out on.
    fn topic(&self) -> String {
        match self.scope() {
            Some(id) => format!("{}/{}/{}", Self::PREFIX, id, Self::NAME),
            None => format!("{}/{}", Self::PREFIX, Self::NAME),
        }
    }
}

/// Why a message on one of the platform's topics was not taken as an event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed body: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("unreadable compressed body: {0}")]
    Compressed(#[from] crate::body::ExpandError),
    /// The body names another member or cluster than the topic it came on: the
    /// broker lets a member publish only on its own topics, so such a body is forged.
    #[error("the body is about {body:?} but came on the topic of {topic:?}")]
    ScopeMismatch { topic: String, body: String },
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
    ($( $prefix:literal $scope:tt => { $( $(#[$meta:meta])* $name:ident $(retained $retain:literal)? $(compressed $compressed:literal)? { $($body:tt)* } )* } )*) => {
        $($(
            $(#[$meta])*
            #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
            #[serde(rename_all = "camelCase")]
            pub struct $name { $($body)* }

            impl Event for $name {
                const NAME: &'static str = stringify!($name);
                const PREFIX: &'static str = $prefix;
                const FILTER: &'static str = events!(@filter $prefix, $scope, $name);
                $(const RETAIN: bool = $retain;)?
                $(const COMPRESSED: bool = $compressed;)?

                fn scope(&self) -> Option<&str> {
                    events!(@scope self, $scope)
                }
            }
        )*)*

        /// Any event, decoded from its topic; what a wildcard subscription yields.
        #[derive(Debug, Clone, PartialEq)]
        pub enum AnyEvent {
            $($( $name($name), )*)*
        }

        impl AnyEvent {
            /// A filter for every topic the platform uses, one per event type.
            pub const FILTERS: &'static [&'static str] = &[$($( <$name as Event>::FILTER, )*)*];

            /// Decodes a message by its topic; `None` for a topic that is not ours. A
            /// scoped event whose body names another id than its topic is an error.
            pub fn decode(topic: &str, payload: &[u8]) -> Option<Result<AnyEvent, DecodeError>> {
                $($(
                    if let Some(scope) = matches_topic::<$name>(topic) {
                        return Some(decode_checked::<$name>(scope, payload).map(AnyEvent::$name));
                    }
                )*)*
                None
            }

            /// Topic, body (its JSON, compressed for some types) and retain flag of the event.
            pub fn encode(&self) -> Result<(String, Vec<u8>, bool), serde_json::Error> {
                match self { $($( AnyEvent::$name(e) => Ok((e.topic(), encode_body(e)?, <$name as Event>::RETAIN)), )*)* }
            }

            /// The topic the event goes out on.
            pub fn topic(&self) -> String {
                match self { $($( AnyEvent::$name(e) => e.topic(), )*)* }
            }

            /// The event type's name.
            pub fn name(&self) -> &'static str {
                match self { $($( AnyEvent::$name(_) => <$name as Event>::NAME, )*)* }
            }
        }
    };
    (@filter $prefix:literal, global, $name:ident) => { concat!($prefix, "/", stringify!($name)) };
    (@filter $prefix:literal, ($($field:ident).+), $name:ident) => { concat!($prefix, "/+/", stringify!($name)) };
    (@scope $e:ident, global) => { None };
    (@scope $e:ident, ($($field:ident).+)) => { Some($e.$($field).+.as_str()) };
}

/// The scope id in `topic` if it is a topic of `E` (`None` if not; `Some("")` for an
/// unscoped one). A scope is one non-empty level without wildcards.
fn matches_topic<E: Event>(topic: &str) -> Option<&str> {
    let rest = topic.strip_prefix(E::PREFIX)?.strip_prefix('/')?;
    if E::FILTER.contains('+') {
        let (scope, name) = rest.split_once('/')?;
        let valid = !scope.is_empty() && !scope.contains(['+', '#']);
        (valid && name == E::NAME).then_some(scope)
    } else {
        (rest == E::NAME).then_some("")
    }
}

/// The body of `event` on the wire: its JSON, compressed if its type says so.
pub fn encode_body<E: Event>(event: &E) -> Result<Vec<u8>, serde_json::Error> {
    crate::body::encode(event, E::COMPRESSED)
}

fn decode_checked<E: Event>(topic_scope: &str, payload: &[u8]) -> Result<E, DecodeError> {
    // Only the types that go compressed are taken compressed; plain JSON always.
    let event: E = if E::COMPRESSED && crate::body::is_compressed(payload) {
        serde_json::from_slice(&crate::body::expand(payload)?)?
    } else {
        serde_json::from_slice(payload)?
    };
    match event.scope() {
        Some(body) if body != topic_scope => {
            Err(DecodeError::ScopeMismatch { topic: topic_scope.to_string(), body: body.to_string() })
        }
        _ => Ok(event),
    }
}

events! {
    "topology" global => {
        ServiceCreatedEvent { pub service_name: String, pub service_type: ServiceType, pub ports: Vec<Port> }
        ServiceRemovedEvent { pub service_name: String }
        ClusterCreatedEvent { pub cluster: Cluster }
        ClusterRemovedEvent { pub service_name: String, pub cluster_id: String }
        CompleteTopologyEvent retained true compressed true { pub topology: Topology }
    }
    // What the controller says about one member, on that member's topics: its agent
    // may read these (the maintenance mode it waits for), and no other member's.
    "topology/member" (member.member_id) => {
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
    }
    // What a member's agent says about its own member: the only block (with its
    // health statistics and logs) a member may publish, each member on its own topics.
    "instance/status" (member.member_id) => {
        InstanceStartedEvent { #[serde(flatten)] pub member: MemberRef }
        InstanceActivatedEvent { #[serde(flatten)] pub member: MemberRef }
        InstanceMaintenanceModeEvent { #[serde(flatten)] pub member: MemberRef }
        InstanceReadyToShutdownEvent { #[serde(flatten)] pub member: MemberRef }
        InstanceStartFailedEvent { #[serde(flatten)] pub member: MemberRef, pub error: String }
        /// The agent's health checks of its app failed `failureThreshold` times in a row
        /// (repeated every 30 s while they keep failing).
        InstanceUnhealthyEvent { #[serde(flatten)] pub member: MemberRef, pub reason: String }
    }
    "instance/notifier/member" (member_id) => {
        InstanceCleanupMemberEvent { pub member_id: String }
    }
    "instance/notifier/cluster" (cluster_id) => {
        ArtifactUpdatedEvent {
            pub cluster_id: String,
            pub tenant_id: i64,
            #[serde(rename = "repoURL")] pub repo_url: String,
        }
        InstanceCleanupClusterEvent { pub cluster_id: String }
    }
    "application" global => {
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
    "cluster/status" global => {
        ClusterStatusClusterActivatedEvent { pub app_id: String, pub service_name: String, pub cluster_id: String }
        ClusterStatusClusterInactivateEvent { pub app_id: String, pub service_name: String, pub cluster_id: String }
        ClusterStatusClusterTerminatedEvent { pub app_id: String, pub service_name: String, pub cluster_id: String }
    }
    "tenant" global => {
        TenantCreatedEvent { pub tenant: Tenant }
        TenantUpdatedEvent { pub tenant: Tenant }
        TenantRemovedEvent { pub tenant_id: i64 }
        /// Every tenant, retained: a consumer that starts late, or missed a change,
        /// learns the tenants from the last snapshot instead of from history.
        CompleteTenantEvent retained true { pub tenants: Vec<Tenant> }
    }
    "health/member" (member.member_id) => {
        /// Published by the agent every interval: load average per core ×100, memory %.
        MemberHealthStatEvent {
            #[serde(flatten)] pub member: MemberRef,
            pub load_average: Option<f64>,
            pub memory_consumption: Option<f64>,
            /// Milliseconds since the Unix epoch.
            pub timestamp: u64,
        }
    }
    "health" global => {
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
    "summarized-health-stats" global => {
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
    "autoscaler" global => {
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
    "log" (member.member_id) => {
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
