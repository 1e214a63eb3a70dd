//! Typed records: every kind of document the components share names its collection
//! with its type, as `Event::TOPIC` does for events, and is read and written through
//! [`Store::get_record`](crate::Store::get_record) and its siblings.
//!
//! One policy for a document that does not decode as its type: an [`Unreadable`]
//! error naming the document (tenant, collection, id) and serde's reason. It is
//! never dropped and never read as "absent": `get_record` returns it as the error,
//! `list_records` beside the good records ([`Listed`]), so that a caller can hold
//! off whatever the document is about (the controller freezes its cluster).

use std::borrow::Cow;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use stratos_model::topology::{Cluster, Port, ServiceType};
use stratos_model::{
    ApplicationMonitorStatus, ClusterRestart, ClusterScale, Deployment, MockIaasConfig, Revision, Rollout,
    RolloutOutcome, Tenant,
};

/// A kind of stored document: its collection, and how a value names its document.
pub trait Record: Serialize + DeserializeOwned {
    /// The store collection every record of this kind lives in.
    const COLLECTION: &'static str;

    /// The document's id within its tenant and collection.
    fn id(&self) -> Cow<'_, str>;

    /// Called after decoding with the document's id, for records whose body does
    /// not hold their own key (the key alone names them).
    fn keyed(&mut self, _id: &str) {}
}

/// A stored document that does not decode as its record type (or is not JSON).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored document {collection}/{id} of tenant {tenant} cannot be read: {reason}")]
pub struct Unreadable {
    pub tenant: i64,
    pub collection: String,
    pub id: String,
    /// serde's words, with the line and column.
    pub reason: String,
}

impl Unreadable {
    /// Whether it is the document `id` of `R`'s collection.
    pub fn is<R: Record>(&self, id: &str) -> bool {
        self.collection == R::COLLECTION && self.id == id
    }

    /// Whether it is a document of `R`'s collection.
    pub fn of<R: Record>(&self) -> bool {
        self.collection == R::COLLECTION
    }
}

/// What a typed list read: the records that decoded, in id order, and an error
/// for each document that did not.
#[derive(Debug)]
pub struct Listed<R> {
    pub records: Vec<R>,
    pub unreadable: Vec<Unreadable>,
}

impl<R> Listed<R> {
    /// The records, or the first unreadable document as an error: for callers that
    /// cannot act on part of a collection.
    pub fn all(self) -> Result<Vec<R>, Unreadable> {
        match self.unreadable.into_iter().next() {
            Some(bad) => Err(bad),
            None => Ok(self.records),
        }
    }
}

/// Decodes one document's body as `R`, or says which document it is and why not.
pub(crate) fn decode<R: Record>(tenant: i64, id: &str, body: &str) -> Result<R, Unreadable> {
    match serde_json::from_str::<R>(body) {
        Ok(mut record) => {
            record.keyed(id);
            Ok(record)
        }
        Err(error) => Err(Unreadable {
            tenant,
            collection: R::COLLECTION.to_owned(),
            id: id.to_owned(),
            reason: error.to_string(),
        }),
    }
}

impl Record for Deployment {
    const COLLECTION: &'static str = "deployment";
    fn id(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.application_id)
    }
}

impl Record for ClusterScale {
    const COLLECTION: &'static str = "cluster-scale";
    fn id(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.cluster_id)
    }
}

impl Record for ClusterRestart {
    const COLLECTION: &'static str = "cluster-restart";
    fn id(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.cluster_id)
    }
}

/// Keyed `<cluster id>#<number>`; written once by the manager, never changed.
impl Record for Revision {
    const COLLECTION: &'static str = "revision";
    fn id(&self) -> Cow<'_, str> {
        Cow::Owned(Revision::key(&self.cluster_id, self.number))
    }
}

/// Keyed `<application id>#<number, 6 digits>`: a list reads them in order.
impl Record for Rollout {
    const COLLECTION: &'static str = "rollout";
    fn id(&self) -> Cow<'_, str> {
        Cow::Owned(Rollout::key(&self.application_id, self.number))
    }
}

/// Keyed as its rollout; written by the controller.
impl Record for RolloutOutcome {
    const COLLECTION: &'static str = "rollout-outcome";
    fn id(&self) -> Cow<'_, str> {
        Cow::Owned(Rollout::key(&self.application_id, self.number))
    }
}

impl Record for ApplicationMonitorStatus {
    const COLLECTION: &'static str = "application-status";
    fn id(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.application_id)
    }
}

/// One cluster of the topology, with its members (tenant [`SUPER_TENANT`](stratos_model::SUPER_TENANT)).
impl Record for Cluster {
    const COLLECTION: &'static str = "topology-cluster";
    fn id(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.cluster_id)
    }
}

/// One service of the topology without its clusters, which have their own documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopologyService {
    pub service_name: String,
    pub service_type: ServiceType,
    #[serde(default)]
    pub ports: Vec<Port>,
}

impl Record for TopologyService {
    const COLLECTION: &'static str = "topology-service";
    fn id(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.service_name)
    }
}

/// Tenants, keyed by their id in decimal (tenant [`SUPER_TENANT`](stratos_model::SUPER_TENANT)).
impl Record for Tenant {
    const COLLECTION: &'static str = "tenant";
    fn id(&self) -> Cow<'_, str> {
        Cow::Owned(self.tenant_id.to_string())
    }
}

/// The mock IaaS's patterns (tenant [`SUPER_TENANT`](stratos_model::SUPER_TENANT)): one
/// document, id [`MOCK_IAAS_ID`]; written by the manager (the API, and `stratos up` from
/// the data directory's file), read by the mock driver.
impl Record for MockIaasConfig {
    const COLLECTION: &'static str = "mock-iaas";
    fn id(&self) -> Cow<'_, str> {
        Cow::Borrowed(MOCK_IAAS_ID)
    }
}

/// The id of the one [`MockIaasConfig`] document.
pub const MOCK_IAAS_ID: &str = "config";

/// The store's platform id: one document, id `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformRecord {
    pub platform_id: String,
    #[serde(default)]
    pub created_at: u64,
}

impl PlatformRecord {
    pub const ID: &'static str = "id";
}

impl Record for PlatformRecord {
    const COLLECTION: &'static str = "platform";
    fn id(&self) -> Cow<'_, str> {
        Cow::Borrowed(Self::ID)
    }
}

/// A cluster's last scaling decisions (the autoscaler's `ScalingDecisionEvent`s),
/// oldest first; stored as the bare array, keyed by cluster id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScalingHistory {
    #[serde(skip)]
    pub cluster_id: String,
    pub decisions: Vec<serde_json::Value>,
}

impl Record for ScalingHistory {
    const COLLECTION: &'static str = "scaling-history";
    fn id(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.cluster_id)
    }
    fn keyed(&mut self, id: &str) {
        self.cluster_id = id.to_owned();
    }
}
