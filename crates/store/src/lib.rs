//! Stratos persistence: JSON documents keyed by `(tenant, collection, id)` in
//! SQLite (the default, one file) or PostgreSQL (a distributed install).
//!
//! Schema (created on open, idempotently):
//! `documents(tenant_id, collection, id, body, updated_at, PRIMARY KEY (tenant_id, collection, id))`
//! and `schema_version(version)`, so that a later migration has a place.
//! `body` is TEXT in SQLite and JSONB in PostgreSQL. Lists are ordered by id
//! bytewise on both back ends.
//!
//! Every kind of record the components share is a type implementing [`Record`], which
//! names its collection ([`Record::COLLECTION`]); [`Store::get_record`],
//! [`Store::put_record`], [`Store::list_records`] and [`Store::delete_record`] read and
//! write it, and a document that does not decode is an [`Unreadable`] error naming it
//! (see `record.rs`). The raw `get` / `put` / `list` / `delete` stay for definitions
//! (named by [`Kind`]) and for tests that write what a record type would refuse.
//!
//! What the typed helpers store where:
//! - definitions: tenant's own, collection [`Kind::name`] (`cartridge`, `deployment-policy`, …), id = definition id;
//!   the super tenant's cartridges, network partitions and public autoscaling policies
//!   are the platform's, which [`Store::load_definitions`] adds to every tenant's;
//! - topology: tenant [`SUPER_TENANT`]; one document per cluster (collection
//!   `topology-cluster`, id = cluster id, with its members) and one per service
//!   (collection `topology-service`, id = service name, without its clusters), so a
//!   change rewrites only the clusters it touched. Builds before this one kept the
//!   whole topology in collection `topology`, id `current`: [`Store::migrate_topology`]
//!   moves it once;
//! - tenants: tenant [`SUPER_TENANT`], collection `tenant`, id = the tenant id in decimal;
//! - the platform id: tenant [`SUPER_TENANT`], collection `platform`, id `id`
//!   (`{"platformId": ..., "createdAt": ms}`), made once by [`Store::create_platform_id`].
//! - identity (written by the manager): tenant [`SUPER_TENANT`], collections `user`
//!   (id = user name, the password as an argon2 hash), `api-token` (id = token id, the
//!   secret as its SHA-256) and `tenant-quota` (id = the tenant id in decimal).

pub mod backup;
mod error;
mod postgres;
mod record;
pub mod snapshot;
mod sqlite;

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;
use stratos_model::topology::{Cluster, Service, ServiceType, Topology};
use stratos_model::{Definitions, Kind, Tenant, SUPER_TENANT};

pub use error::StoreError;
pub use postgres::PostgresStore;
pub use record::{Listed, PlatformRecord, Record, ScalingHistory, TopologyService, Unreadable, MOCK_IAAS_ID};
pub use snapshot::Document;
pub use sqlite::SqliteStore;

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i64 = 1;

/// Where builds before per-cluster persistence kept the whole topology.
const LEGACY_TOPOLOGY: (&str, &str) = ("topology", "current");
const TOPOLOGY_SERVICES: &str = TopologyService::COLLECTION;
const TOPOLOGY_CLUSTERS: &str = <Cluster as Record>::COLLECTION;
/// Where [`Store::probe_write`] writes.
const HEALTH_PROBE: (&str, &str) = ("health-probe", "last");

/// A handle on the database; clones share one connection.
#[derive(Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// One stored row, before its body is parsed.
pub(crate) struct Row {
    pub(crate) tenant: i64,
    pub(crate) id: String,
    pub(crate) body: String,
}

/// One document to write (`body` Some) or delete (`body` None) in a batch.
pub(crate) struct Write {
    pub(crate) collection: String,
    pub(crate) id: String,
    pub(crate) body: Option<String>,
}

/// What changed in a topology since it was last saved: the names of services and
/// the ids of clusters that were created, changed or removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TopologyChanges {
    pub services: BTreeSet<String>,
    pub clusters: BTreeSet<String>,
}

impl TopologyChanges {
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.clusters.is_empty()
    }

    /// Adds `other`'s changes (after a failed save, so that the next one retries them).
    pub fn merge(&mut self, other: TopologyChanges) {
        self.services.extend(other.services);
        self.clusters.extend(other.clusters);
    }
}

impl Row {
    /// The body as a `T`, or an error naming the document.
    fn typed<T: DeserializeOwned>(&self, collection: &str, what: &str) -> Result<T, StoreError> {
        serde_json::from_str(&self.body).map_err(|error| StoreError::InvalidDocument {
            tenant: self.tenant,
            collection: collection.to_owned(),
            id: self.id.clone(),
            what: what.to_owned(),
            error,
        })
    }

    fn parse(self, collection: &str) -> Result<(i64, String, Value), StoreError> {
        match serde_json::from_str(&self.body) {
            Ok(value) => Ok((self.tenant, self.id, value)),
            Err(error) => Err(StoreError::CorruptDocument {
                tenant: self.tenant,
                collection: collection.to_owned(),
                id: self.id,
                error,
            }),
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Store").field(&self.describe()).finish()
    }
}

impl Store {
    /// Opens the store at `url`: `postgres://…` or `postgresql://…` for
    /// PostgreSQL; `sqlite://PATH` (`sqlite:///abs/path.db` for an absolute
    /// path) or a plain file path for SQLite.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Store::open_postgres(url).await;
        }
        let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            return Err(StoreError::UnsupportedUrl { url: postgres::redact(url) });
        }
        Store::open_sqlite(Path::new(path)).await
    }

    /// Opens (creating it and its directory if needed) a SQLite database in WAL mode,
    /// for this process alone while the store lives (EXCLUSIVE locking: no `-shm` is
    /// mapped; another process opening it waits the busy timeout, then fails).
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        let store = Store::Sqlite(SqliteStore::open(path).await?);
        tracing::info!(store = %store.describe(), schema_version = SCHEMA_VERSION, "store opened");
        Ok(store)
    }

    /// Connects to PostgreSQL (no TLS) and creates the tables if needed.
    /// The connection runs as a task on the current tokio runtime, which must
    /// outlive the store.
    pub async fn open_postgres(url: &str) -> Result<Store, StoreError> {
        let store = Store::Postgres(PostgresStore::open(url).await?);
        tracing::info!(store = %store.describe(), schema_version = SCHEMA_VERSION, "store opened");
        Ok(store)
    }

    /// Where the data lives: `sqlite:/path/stratos.db` or `postgres://host:port/db`, never a password.
    pub fn describe(&self) -> String {
        match self {
            Store::Sqlite(s) => s.describe().to_owned(),
            Store::Postgres(p) => p.describe().to_owned(),
        }
    }

    /// Creates or replaces one document, atomically.
    pub async fn put(&self, tenant: i64, collection: &str, id: &str, body: &Value) -> Result<(), StoreError> {
        let text = serde_json::to_string(body)
            .map_err(|error| StoreError::Encode { what: format!("{collection}/{id}"), error })?;
        match self {
            Store::Sqlite(s) => s.put(tenant, collection, id, text).await,
            Store::Postgres(p) => p.put(tenant, collection, id, text).await,
        }
    }

    pub async fn get(&self, tenant: i64, collection: &str, id: &str) -> Result<Option<Value>, StoreError> {
        let body = match self {
            Store::Sqlite(s) => s.get(tenant, collection, id).await?,
            Store::Postgres(p) => p.get(tenant, collection, id).await?,
        };
        body.map(|body| Row { tenant, id: id.to_owned(), body }.parse(collection).map(|(_, _, v)| v)).transpose()
    }

    /// A tenant's documents of one collection, ordered by id.
    pub async fn list(&self, tenant: i64, collection: &str) -> Result<Vec<Value>, StoreError> {
        Ok(self.rows(tenant, collection).await?.into_iter().map(|(_, v)| v).collect())
    }

    /// The documents of one collection across every tenant, ordered by tenant then id.
    pub async fn list_all_tenants(&self, collection: &str) -> Result<Vec<(i64, Value)>, StoreError> {
        let rows = match self {
            Store::Sqlite(s) => s.list_all_tenants(collection).await?,
            Store::Postgres(p) => p.list_all_tenants(collection).await?,
        };
        rows.into_iter().map(|row| row.parse(collection).map(|(tenant, _, v)| (tenant, v))).collect()
    }

    /// Removes one document; true if it existed.
    pub async fn delete(&self, tenant: i64, collection: &str, id: &str) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.delete(tenant, collection, id).await,
            Store::Postgres(p) => p.delete(tenant, collection, id).await,
        }
    }

    /// One record of a tenant; `None` when there is no such document, an
    /// [`Unreadable`] error (as [`StoreError::Unreadable`]) when it does not decode.
    pub async fn get_record<R: Record>(&self, tenant: i64, id: &str) -> Result<Option<R>, StoreError> {
        let body = match self {
            Store::Sqlite(s) => s.get(tenant, R::COLLECTION, id).await?,
            Store::Postgres(p) => p.get(tenant, R::COLLECTION, id).await?,
        };
        Ok(body.map(|body| record::decode(tenant, id, &body)).transpose()?)
    }

    /// Creates or replaces one record of a tenant, under its own id.
    pub async fn put_record<R: Record>(&self, tenant: i64, record: &R) -> Result<(), StoreError> {
        let id = record.id();
        let body = serde_json::to_string(record)
            .map_err(|error| StoreError::Encode { what: format!("{}/{id}", R::COLLECTION), error })?;
        match self {
            Store::Sqlite(s) => s.put(tenant, R::COLLECTION, &id, body).await,
            Store::Postgres(p) => p.put(tenant, R::COLLECTION, &id, body).await,
        }
    }

    /// Removes one record of a tenant; true if it existed (readable or not).
    pub async fn delete_record<R: Record>(&self, tenant: i64, id: &str) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.delete(tenant, R::COLLECTION, id).await,
            Store::Postgres(p) => p.delete(tenant, R::COLLECTION, id).await,
        }
    }

    /// A tenant's records of one kind, ordered by id, and the documents that did not decode.
    pub async fn list_records<R: Record>(&self, tenant: i64) -> Result<Listed<R>, StoreError> {
        Ok(decode_rows(self.raw_rows(tenant, R::COLLECTION).await?))
    }

    /// The records of one kind of every tenant, ordered by tenant then id, and the
    /// documents that did not decode.
    pub async fn list_records_all_tenants<R: Record>(&self) -> Result<Listed<R>, StoreError> {
        let rows = match self {
            Store::Sqlite(s) => s.list_all_tenants(R::COLLECTION).await?,
            Store::Postgres(p) => p.list_all_tenants(R::COLLECTION).await?,
        };
        Ok(decode_rows(rows))
    }

    /// `(id, body)` of a tenant's documents in one collection, ordered by id.
    async fn rows(&self, tenant: i64, collection: &str) -> Result<Vec<(String, Value)>, StoreError> {
        let rows = match self {
            Store::Sqlite(s) => s.list(tenant, collection).await?,
            Store::Postgres(p) => p.list(tenant, collection).await?,
        };
        rows.into_iter().map(|row| row.parse(collection).map(|(_, id, v)| (id, v))).collect()
    }

    /// The definitions a tenant works with: its own, and the platform's that are
    /// shared with every tenant ([`shared_with_tenants`]). A tenant's own definition
    /// hides a platform one of the same kind and id. What deploys and checks
    /// references use.
    pub async fn load_definitions(&self, tenant: i64) -> Result<Definitions, StoreError> {
        let mut defs = self.load_own_definitions(tenant).await?;
        if tenant == SUPER_TENANT {
            return Ok(defs);
        }
        for kind in Kind::ALL {
            for (id, value) in self.rows(SUPER_TENANT, kind.name()).await? {
                if shared_with_tenants(kind, &value) && !has(&defs, kind, &id) {
                    insert(&mut defs, SUPER_TENANT, kind, id, value)?;
                }
            }
        }
        Ok(defs)
    }

    /// A tenant's own definitions only, from the collections named [`Kind::name`].
    pub async fn load_own_definitions(&self, tenant: i64) -> Result<Definitions, StoreError> {
        let mut defs = Definitions::default();
        for kind in Kind::ALL {
            for (id, value) in self.rows(tenant, kind.name()).await? {
                insert(&mut defs, tenant, kind, id, value)?;
            }
        }
        Ok(defs)
    }

    /// Writes documents and deletes others (`None` body) of one tenant in one
    /// transaction: all or none. An id may appear once per collection.
    pub async fn write_batch(
        &self,
        tenant: i64,
        writes: Vec<(String, String, Option<Value>)>,
    ) -> Result<(), StoreError> {
        let writes = writes
            .into_iter()
            .map(|(collection, id, body)| {
                let body = body
                    .map(|b| serde_json::to_string(&b))
                    .transpose()
                    .map_err(|error| StoreError::Encode { what: format!("{collection}/{id}"), error })?;
                Ok(Write { collection, id, body })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.write_all(tenant, writes).await
    }

    async fn write_all(&self, tenant: i64, writes: Vec<Write>) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        match self {
            Store::Sqlite(s) => s.write_all(tenant, writes).await,
            Store::Postgres(p) => p.write_all(tenant, writes).await,
        }
    }

    async fn ids(&self, tenant: i64, collection: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Sqlite(s) => s.ids(tenant, collection).await,
            Store::Postgres(p) => p.ids(tenant, collection).await,
        }
    }

    async fn raw_rows(&self, tenant: i64, collection: &str) -> Result<Vec<Row>, StoreError> {
        match self {
            Store::Sqlite(s) => s.list(tenant, collection).await,
            Store::Postgres(p) => p.list(tenant, collection).await,
        }
    }

    /// Every document of every collection and tenant, read in one read transaction (one
    /// consistent state), ordered by collection, tenant and id; a body that is not JSON
    /// is the error, naming it.
    pub async fn snapshot(&self) -> Result<Vec<Document>, StoreError> {
        let rows = match self {
            Store::Sqlite(s) => s.snapshot().await?,
            Store::Postgres(p) => p.snapshot().await?,
        };
        rows.into_iter().map(snapshot::RawDocument::parse).collect()
    }

    /// Writes `documents` into this store in one write transaction, if it holds no
    /// document ([`StoreError::NotEmpty`] otherwise, and nothing written); returns how
    /// many were written. Bodies are written as they are (no record type checks them).
    pub async fn import(&self, documents: Vec<Document>) -> Result<usize, StoreError> {
        if let Some((collection, tenant, id)) = snapshot::first_duplicate(&documents) {
            return Err(StoreError::DuplicateDocument { collection, tenant, id });
        }
        let rows = documents
            .into_iter()
            .map(|d| {
                let body = serde_json::to_string(&d.body).map_err(|error| StoreError::Encode {
                    what: format!("{}/{} of tenant {}", d.collection, d.id, d.tenant),
                    error,
                })?;
                Ok(snapshot::RawDocument { collection: d.collection, tenant: d.tenant, id: d.id, body })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let count = rows.len();
        match self {
            Store::Sqlite(s) => s.import(rows).await?,
            Store::Postgres(p) => p.import(rows).await?,
        }
        tracing::info!(documents = count, store = %self.describe(), "documents imported into an empty store");
        Ok(count)
    }

    /// How many documents the store holds, in every collection and tenant.
    pub async fn document_count(&self) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.document_count().await,
            Store::Postgres(p) => p.document_count().await,
        }
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Replaces the stored topology with `t`, whole.
    pub async fn save_topology(&self, t: &Topology) -> Result<(), StoreError> {
        let mut everything = TopologyChanges::default();
        everything.services.extend(self.ids(SUPER_TENANT, TOPOLOGY_SERVICES).await?);
        everything.clusters.extend(self.ids(SUPER_TENANT, TOPOLOGY_CLUSTERS).await?);
        everything.services.extend(t.services.keys().cloned());
        everything.clusters.extend(t.services.values().flat_map(|s| s.clusters.keys().cloned()));
        let mut writes = topology_writes(t, &everything)?;
        let (collection, id) = LEGACY_TOPOLOGY;
        writes.push(Write { collection: collection.into(), id: id.into(), body: None });
        self.write_all(SUPER_TENANT, writes).await
    }

    /// Saves what `changes` names of `t`, in one transaction: the services and
    /// clusters it still has are written, the others deleted.
    pub async fn save_topology_changes(&self, t: &Topology, changes: &TopologyChanges) -> Result<(), StoreError> {
        self.write_all(SUPER_TENANT, topology_writes(t, changes)?).await
    }

    /// Moves a topology saved whole by an earlier build into per-cluster documents
    /// (one transaction); true if there was one. The whole document wins over any
    /// per-cluster rows: only an earlier build, run after this one, can have written it.
    pub async fn migrate_topology(&self) -> Result<bool, StoreError> {
        let Some(legacy) = self.legacy_topology().await? else { return Ok(false) };
        self.save_topology(&legacy).await?;
        tracing::info!(
            clusters = legacy.services.values().map(|s| s.clusters.len()).sum::<usize>(),
            "moved the topology saved as one document into one document per cluster"
        );
        Ok(true)
    }

    async fn legacy_topology(&self) -> Result<Option<Topology>, StoreError> {
        let (collection, id) = LEGACY_TOPOLOGY;
        let Some(body) = (match self {
            Store::Sqlite(s) => s.get(SUPER_TENANT, collection, id).await?,
            Store::Postgres(p) => p.get(SUPER_TENANT, collection, id).await?,
        }) else {
            return Ok(None);
        };
        Row { tenant: SUPER_TENANT, id: id.into(), body }.typed(collection, "topology").map(Some)
    }

    /// The saved topology, or an empty one if none was saved; the first unreadable
    /// service or cluster document is the error. A topology an earlier build saved
    /// whole is read as it is, until the controller migrates it.
    pub async fn load_topology(&self) -> Result<Topology, StoreError> {
        let (topology, unreadable) = self.read_topology().await?;
        match unreadable.into_iter().next() {
            Some(bad) => Err(bad.into()),
            None => Ok(topology),
        }
    }

    /// The saved topology without the documents that do not decode, and an error
    /// naming each of those: a cluster named there is neither in the topology nor
    /// absent from the store, and must not be acted on as if it were gone.
    pub async fn read_topology(&self) -> Result<(Topology, Vec<Unreadable>), StoreError> {
        if let Some(legacy) = self.legacy_topology().await? {
            return Ok((legacy, Vec::new()));
        }
        let mut t = Topology::default();
        let services = self.list_records::<TopologyService>(SUPER_TENANT).await?;
        for s in services.records {
            let service = Service {
                service_name: s.service_name,
                service_type: s.service_type,
                ports: s.ports,
                clusters: Default::default(),
            };
            t.services.insert(service.service_name.clone(), service);
        }
        let clusters = self.list_records::<Cluster>(SUPER_TENANT).await?;
        for cluster in clusters.records {
            // Written in one transaction with its service; read in two queries, so a
            // service created in between may be missing: the next read has it.
            let service = t.services.entry(cluster.service_name.clone()).or_insert_with(|| Service {
                service_name: cluster.service_name.clone(),
                service_type: ServiceType::SingleTenant,
                ports: Vec::new(),
                clusters: Default::default(),
            });
            service.clusters.insert(cluster.cluster_id.clone(), cluster);
        }
        let mut unreadable = services.unreadable;
        unreadable.extend(clusters.unreadable);
        Ok((t, unreadable))
    }

    /// One cluster of the saved topology, with its members; `None` if it is not saved.
    /// For a reader that follows changes cluster by cluster (the autoscaler) rather
    /// than reading the whole topology again.
    pub async fn load_cluster(&self, cluster_id: &str) -> Result<Option<Cluster>, StoreError> {
        if let Some(legacy) = self.legacy_topology().await? {
            return Ok(legacy.cluster(cluster_id).cloned());
        }
        let body = match self {
            Store::Sqlite(s) => s.get(SUPER_TENANT, TOPOLOGY_CLUSTERS, cluster_id).await?,
            Store::Postgres(p) => p.get(SUPER_TENANT, TOPOLOGY_CLUSTERS, cluster_id).await?,
        };
        body.map(|body| {
            Row { tenant: SUPER_TENANT, id: cluster_id.to_owned(), body }.typed(TOPOLOGY_CLUSTERS, "cluster")
        })
        .transpose()
    }

    /// The id of the platform this store belongs to; `None` in a new (or emptied)
    /// store, and in one written by a build before platform ids.
    pub async fn platform_id(&self) -> Result<Option<String>, StoreError> {
        let record = self.get_record::<PlatformRecord>(SUPER_TENANT, PlatformRecord::ID).await?;
        Ok(record.map(|r| r.platform_id))
    }

    /// Makes the store's platform id once: a new random id, or `adopt` (the id of
    /// members an operator adopts into this store). An id already there is kept
    /// unless `adopt` names another, which replaces it.
    pub async fn create_platform_id(&self, adopt: Option<&str>) -> Result<String, StoreError> {
        let existing = self.platform_id().await?;
        let id = match (existing, adopt) {
            (Some(id), None) => return Ok(id),
            (Some(id), Some(adopt)) if id == adopt => return Ok(id),
            (_, Some(adopt)) => adopt.to_string(),
            (None, None) => new_platform_id(),
        };
        self.put_record(SUPER_TENANT, &PlatformRecord { platform_id: id.clone(), created_at: now_millis() }).await?;
        tracing::info!(platform_id = %id, store = %self.describe(), "platform id recorded in the store");
        Ok(id)
    }

    /// Writes (and commits) one small document: whether the store takes writes now.
    /// A read alone passes with an unwritable WAL or a locked database.
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        let (collection, id) = HEALTH_PROBE;
        self.put(SUPER_TENANT, collection, id, &serde_json::json!({ "at": now_millis() })).await
    }

    /// Creates or replaces a tenant (keyed by its id).
    pub async fn put_tenant(&self, t: &Tenant) -> Result<(), StoreError> {
        self.put_record(SUPER_TENANT, t).await
    }

    /// Every tenant, ordered by tenant id; an unreadable tenant document is the error.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let mut tenants = self.list_records::<Tenant>(SUPER_TENANT).await?.all()?;
        tenants.sort_by_key(|t| t.tenant_id);
        Ok(tenants)
    }
}

/// `(collection, id, body)` that writes one record in a [`Store::write_batch`].
pub fn record_write<R: Record>(record: &R) -> Result<(String, String, Option<Value>), StoreError> {
    let id = record.id().into_owned();
    let body = serde_json::to_value(record)
        .map_err(|error| StoreError::Encode { what: format!("{}/{id}", R::COLLECTION), error })?;
    Ok((R::COLLECTION.to_owned(), id, Some(body)))
}

fn decode_rows<R: Record>(rows: Vec<Row>) -> Listed<R> {
    let mut listed = Listed { records: Vec::with_capacity(rows.len()), unreadable: Vec::new() };
    for row in rows {
        match record::decode(row.tenant, &row.id, &row.body) {
            Ok(r) => listed.records.push(r),
            Err(bad) => listed.unreadable.push(bad),
        }
    }
    listed
}

fn now_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// 16 random bytes from the kernel, in hex (the time and process id if it has none).
fn new_platform_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        let seed = now_millis() as u128 ^ ((std::process::id() as u128) << 64);
        bytes = seed.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a definition of the platform (the super tenant) is shared with every tenant,
/// read-only: cartridges, network partitions, and autoscaling policies marked `isPublic`
/// (as in Apache Stratos 4.1). Deployment and application policies and applications
/// stay the platform's own.
pub fn shared_with_tenants(kind: Kind, definition: &Value) -> bool {
    match kind {
        Kind::Cartridge | Kind::NetworkPartition => true,
        Kind::AutoscalingPolicy => definition["isPublic"] == Value::Bool(true),
        // A tenant's cartridge groups are its own, as its policies are.
        Kind::DeploymentPolicy | Kind::ApplicationPolicy | Kind::CartridgeGroup | Kind::Application => false,
    }
}

fn has(defs: &Definitions, kind: Kind, id: &str) -> bool {
    defs.contains(kind, id)
}

fn insert(defs: &mut Definitions, tenant: i64, kind: Kind, id: String, value: Value) -> Result<(), StoreError> {
    let collection = kind.name();
    defs.insert_json(kind, value).map_err(|error| StoreError::InvalidDocument {
        tenant,
        collection: collection.to_owned(),
        id,
        what: kind.words(),
        error,
    })
}

/// The writes that save `changes` of `t`: what it has is written, what it lacks deleted.
fn topology_writes(t: &Topology, changes: &TopologyChanges) -> Result<Vec<Write>, StoreError> {
    let encode = |what: &str, id: &str, r: serde_json::Result<String>| {
        r.map_err(|error| StoreError::Encode { what: format!("{what} {id}"), error })
    };
    let mut writes = Vec::with_capacity(changes.services.len() + changes.clusters.len());
    for name in &changes.services {
        let body = match t.services.get(name) {
            Some(s) => Some(encode(
                "service",
                name,
                serde_json::to_string(&TopologyService {
                    service_name: s.service_name.clone(),
                    service_type: s.service_type,
                    ports: s.ports.clone(),
                }),
            )?),
            None => None,
        };
        writes.push(Write { collection: TOPOLOGY_SERVICES.into(), id: name.clone(), body });
    }
    for id in &changes.clusters {
        let body = t.cluster(id).map(|c| encode("cluster", id, serde_json::to_string(c))).transpose()?;
        writes.push(Write { collection: TOPOLOGY_CLUSTERS.into(), id: id.clone(), body });
    }
    Ok(writes)
}
