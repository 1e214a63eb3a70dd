//! Stratos persistence: JSON documents keyed by `(tenant, collection, id)` in
//! SQLite (the default, one file) or PostgreSQL (a distributed install).
//!
//! Schema (created on open, idempotently):
//! `documents(tenant_id, collection, id, body, updated_at, PRIMARY KEY (tenant_id, collection, id))`
//! and `schema_version(version)`, so that a later migration has a place.
//! `body` is TEXT in SQLite and JSONB in PostgreSQL. Lists are ordered by id
//! bytewise on both back ends.
//!
//! What the typed helpers store where:
//! - definitions: tenant's own, collection [`Kind::name`] (`cartridge`, `deployment-policy`, …), id = definition id;
//! - topology: tenant [`SUPER_TENANT`], collection `topology`, id `current`;
//! - tenants: tenant [`SUPER_TENANT`], collection `tenant`, id = the tenant id in decimal.

mod error;
mod postgres;
mod sqlite;

use std::fmt;
use std::path::Path;

use serde_json::Value;
use stratos_model::topology::Topology;
use stratos_model::{Definitions, Kind, Tenant, SUPER_TENANT};

pub use error::StoreError;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// The schema version this build creates and understands.
const SCHEMA_VERSION: i64 = 1;

const TOPOLOGY: (&str, &str) = ("topology", "current");
const TENANTS: &str = "tenant";

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

impl Row {
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

    /// Opens (creating it and its directory if needed) a SQLite database in WAL mode.
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

    /// `(id, body)` of a tenant's documents in one collection, ordered by id.
    async fn rows(&self, tenant: i64, collection: &str) -> Result<Vec<(String, Value)>, StoreError> {
        let rows = match self {
            Store::Sqlite(s) => s.list(tenant, collection).await?,
            Store::Postgres(p) => p.list(tenant, collection).await?,
        };
        rows.into_iter().map(|row| row.parse(collection).map(|(_, id, v)| (id, v))).collect()
    }

    /// Every definition of a tenant, from the collections named [`Kind::name`].
    pub async fn load_definitions(&self, tenant: i64) -> Result<Definitions, StoreError> {
        let mut defs = Definitions::default();
        for kind in Kind::ALL {
            let collection = kind.name();
            for (id, value) in self.rows(tenant, collection).await? {
                defs.insert_json(kind, value).map_err(|error| StoreError::InvalidDocument {
                    tenant,
                    collection: collection.to_owned(),
                    id,
                    what: kind.words(),
                    error,
                })?;
            }
        }
        Ok(defs)
    }

    pub async fn save_topology(&self, t: &Topology) -> Result<(), StoreError> {
        let (collection, id) = TOPOLOGY;
        let value =
            serde_json::to_value(t).map_err(|error| StoreError::Encode { what: "the topology".into(), error })?;
        self.put(SUPER_TENANT, collection, id, &value).await
    }

    /// The saved topology, or an empty one if none was saved.
    pub async fn load_topology(&self) -> Result<Topology, StoreError> {
        let (collection, id) = TOPOLOGY;
        match self.get(SUPER_TENANT, collection, id).await? {
            None => Ok(Topology::default()),
            Some(value) => serde_json::from_value(value).map_err(|error| StoreError::InvalidDocument {
                tenant: SUPER_TENANT,
                collection: collection.into(),
                id: id.into(),
                what: "topology".into(),
                error,
            }),
        }
    }

    /// Creates or replaces a tenant (keyed by its id).
    pub async fn put_tenant(&self, t: &Tenant) -> Result<(), StoreError> {
        let id = t.tenant_id.to_string();
        let value = serde_json::to_value(t)
            .map_err(|error| StoreError::Encode { what: format!("tenant {}", t.tenant_id), error })?;
        self.put(SUPER_TENANT, TENANTS, &id, &value).await
    }

    /// Every tenant, ordered by tenant id.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let mut tenants = self
            .rows(SUPER_TENANT, TENANTS)
            .await?
            .into_iter()
            .map(|(id, value)| {
                serde_json::from_value::<Tenant>(value).map_err(|error| StoreError::InvalidDocument {
                    tenant: SUPER_TENANT,
                    collection: TENANTS.into(),
                    id,
                    what: "tenant".into(),
                    error,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        tenants.sort_by_key(|t| t.tenant_id);
        Ok(tenants)
    }
}
