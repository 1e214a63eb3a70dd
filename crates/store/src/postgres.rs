//! PostgreSQL back end: one tokio-postgres connection (no TLS), statements prepared once.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls, Statement};

use crate::snapshot::RawDocument;
use crate::{Row, StoreError, Write, SCHEMA_VERSION};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Serialises concurrent first opens (two components starting together):
/// `CREATE TABLE IF NOT EXISTS` alone races on the catalog.
const SCHEMA_LOCK: i64 = 0x5374_7261_746f_7301; // "Stratos" 1

// `COLLATE "C"`: ids sort by bytes, as in SQLite, whatever the database's locale.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    tenant_id  BIGINT      NOT NULL,
    collection TEXT COLLATE "C" NOT NULL,
    id         TEXT COLLATE "C" NOT NULL,
    body       JSONB       NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, collection, id)
);
CREATE INDEX IF NOT EXISTS documents_by_collection ON documents (collection, tenant_id, id);
"#;

// Bodies travel as text both ways: no extra tokio-postgres features, and one
// parsing path (with its error naming the document) for both back ends.
const PUT: &str = "
INSERT INTO documents (tenant_id, collection, id, body, updated_at)
VALUES ($1, $2, $3, $4::text::jsonb, now())
ON CONFLICT (tenant_id, collection, id) DO UPDATE SET body = EXCLUDED.body, updated_at = EXCLUDED.updated_at";
const GET: &str = "SELECT body::text FROM documents WHERE tenant_id = $1 AND collection = $2 AND id = $3";
const LIST: &str = "SELECT id, body::text FROM documents WHERE tenant_id = $1 AND collection = $2 ORDER BY id";
const LIST_ALL: &str = "SELECT tenant_id, id, body::text FROM documents WHERE collection = $1 ORDER BY tenant_id, id";
const DELETE: &str = "DELETE FROM documents WHERE tenant_id = $1 AND collection = $2 AND id = $3";
const IDS: &str = "SELECT id FROM documents WHERE tenant_id = $1 AND collection = $2 ORDER BY id";
const SNAPSHOT: &str = "SELECT collection, tenant_id, id, body::text FROM documents ORDER BY collection, tenant_id, id";
const COUNT: &str = "SELECT count(*) FROM documents";
const IMPORT: &str = "
INSERT INTO documents (tenant_id, collection, id, body, updated_at)
SELECT u.tenant_id, u.collection, u.id, u.body::jsonb, now()
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS u(tenant_id, collection, id, body)";
/// Documents per statement of an import (all in one transaction).
const IMPORT_CHUNK: usize = 5_000;
// A batch is one statement (data-modifying CTEs run atomically): the connection is
// shared by every clone of the store, so a BEGIN ... COMMIT could take in other
// callers' statements. The caller makes the keys unique, as ON CONFLICT requires.
const WRITE_ALL: &str = "
WITH gone AS (
    DELETE FROM documents d
    USING unnest($2::text[], $3::text[]) AS x(collection, id)
    WHERE d.tenant_id = $1 AND d.collection = x.collection AND d.id = x.id
)
INSERT INTO documents (tenant_id, collection, id, body, updated_at)
SELECT $1, u.collection, u.id, u.body::jsonb, now()
FROM unnest($4::text[], $5::text[], $6::text[]) AS u(collection, id, body)
ON CONFLICT (tenant_id, collection, id) DO UPDATE SET body = EXCLUDED.body, updated_at = EXCLUDED.updated_at";

/// The PostgreSQL back end of [`Store`](crate::Store); cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// `postgres://host:port/db`, without user or password.
    describe: String,
    /// To open a connection of its own for a transaction (the shared one cannot hold one).
    config: Config,
    client: Client,
    put: Statement,
    get: Statement,
    list: Statement,
    list_all: Statement,
    delete: Statement,
    ids: Statement,
    write_all: Statement,
}

impl PostgresStore {
    pub(crate) async fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let mut config: Config =
            url.parse().map_err(|e| StoreError::InvalidPostgresUrl { url: redact(url), message: message(&e) })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let describe = describe(&config);

        let (mut client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| StoreError::ConnectPostgres { target: describe.clone(), message: message(&e) })?;
        let target = describe.clone();
        tokio::spawn(async move {
            // Ends without error when the last clone of the store is dropped.
            if let Err(e) = connection.await {
                tracing::error!(store = %target, error = %message(&e), "PostgreSQL connection lost");
            }
        });

        let schema_err = |e: tokio_postgres::Error| StoreError::Schema { db: describe.clone(), message: message(&e) };
        let tx = client.transaction().await.map_err(schema_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await.map_err(schema_err)?;
        tx.batch_execute(SCHEMA).await.map_err(schema_err)?;
        let found: Option<i32> =
            tx.query_one("SELECT max(version) FROM schema_version", &[]).await.map_err(schema_err)?.get(0);
        match found.map(i64::from) {
            None => {
                let version = SCHEMA_VERSION as i32;
                tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&version])
                    .await
                    .map_err(schema_err)?;
            }
            Some(found) if found > SCHEMA_VERSION => {
                return Err(StoreError::SchemaTooNew { db: describe, found, supported: SCHEMA_VERSION });
            }
            Some(_) => {}
        }
        tx.commit().await.map_err(schema_err)?;

        let put = client.prepare(PUT).await.map_err(schema_err)?;
        let get = client.prepare(GET).await.map_err(schema_err)?;
        let list = client.prepare(LIST).await.map_err(schema_err)?;
        let list_all = client.prepare(LIST_ALL).await.map_err(schema_err)?;
        let delete = client.prepare(DELETE).await.map_err(schema_err)?;
        let ids = client.prepare(IDS).await.map_err(schema_err)?;
        let write_all = client.prepare(WRITE_ALL).await.map_err(schema_err)?;
        let inner = Inner { describe, config, client, put, get, list, list_all, delete, ids, write_all };
        Ok(PostgresStore { inner: Arc::new(inner) })
    }

    pub(crate) fn describe(&self) -> &str {
        &self.inner.describe
    }

    fn err(&self, action: String) -> impl FnOnce(tokio_postgres::Error) -> StoreError + '_ {
        move |e| StoreError::Database { db: self.inner.describe.clone(), action, message: message(&e) }
    }

    pub(crate) async fn put(&self, tenant: i64, collection: &str, id: &str, body: String) -> Result<(), StoreError> {
        let i = &self.inner;
        i.client
            .execute(&i.put, &[&tenant, &collection, &id, &body])
            .await
            .map_err(self.err(format!("store {collection}/{id} of tenant {tenant}")))?;
        Ok(())
    }

    pub(crate) async fn get(&self, tenant: i64, collection: &str, id: &str) -> Result<Option<String>, StoreError> {
        let i = &self.inner;
        let row = i
            .client
            .query_opt(&i.get, &[&tenant, &collection, &id])
            .await
            .map_err(self.err(format!("read {collection}/{id} of tenant {tenant}")))?;
        Ok(row.map(|r| r.get(0)))
    }

    pub(crate) async fn list(&self, tenant: i64, collection: &str) -> Result<Vec<Row>, StoreError> {
        let i = &self.inner;
        let rows = i
            .client
            .query(&i.list, &[&tenant, &collection])
            .await
            .map_err(self.err(format!("list {collection} of tenant {tenant}")))?;
        Ok(rows.into_iter().map(|r| Row { tenant, id: r.get(0), body: r.get(1) }).collect())
    }

    pub(crate) async fn list_all_tenants(&self, collection: &str) -> Result<Vec<Row>, StoreError> {
        let i = &self.inner;
        let rows = i
            .client
            .query(&i.list_all, &[&collection])
            .await
            .map_err(self.err(format!("list {collection} of all tenants")))?;
        Ok(rows.into_iter().map(|r| Row { tenant: r.get(0), id: r.get(1), body: r.get(2) }).collect())
    }

    pub(crate) async fn delete(&self, tenant: i64, collection: &str, id: &str) -> Result<bool, StoreError> {
        let i = &self.inner;
        let n = i
            .client
            .execute(&i.delete, &[&tenant, &collection, &id])
            .await
            .map_err(self.err(format!("delete {collection}/{id} of tenant {tenant}")))?;
        Ok(n > 0)
    }

    /// Applies every write in one statement: all or none.
    pub(crate) async fn write_all(&self, tenant: i64, writes: Vec<Write>) -> Result<(), StoreError> {
        let count = writes.len();
        let (mut del_c, mut del_i) = (Vec::new(), Vec::new());
        let (mut put_c, mut put_i, mut put_b) = (Vec::new(), Vec::new(), Vec::new());
        for w in writes {
            match w.body {
                Some(body) => {
                    put_c.push(w.collection);
                    put_i.push(w.id);
                    put_b.push(body);
                }
                None => {
                    del_c.push(w.collection);
                    del_i.push(w.id);
                }
            }
        }
        let i = &self.inner;
        i.client
            .execute(&i.write_all, &[&tenant, &del_c, &del_i, &put_c, &put_i, &put_b])
            .await
            .map_err(self.err(format!("write {count} document(s) of tenant {tenant}")))?;
        Ok(())
    }

    /// A connection of its own, for one transaction (the shared client is used by
    /// every clone of the store: a BEGIN there could take in others' statements).
    async fn own_connection(&self) -> Result<Client, StoreError> {
        let describe = self.inner.describe.clone();
        let (client, connection) = self
            .inner
            .config
            .connect(NoTls)
            .await
            .map_err(|e| StoreError::ConnectPostgres { target: describe.clone(), message: message(&e) })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(store = %describe, error = %message(&e), "PostgreSQL connection of a transaction lost");
            }
        });
        Ok(client)
    }

    /// Every document, in one read-only REPEATABLE READ transaction: one consistent state.
    pub(crate) async fn snapshot(&self) -> Result<Vec<RawDocument>, StoreError> {
        let mut client = self.own_connection().await?;
        let err = self.err("read every document".into());
        let run = async {
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let rows = tx.query(SNAPSHOT, &[]).await?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>(rows)
        };
        let rows = run.await.map_err(err)?;
        Ok(rows
            .into_iter()
            .map(|r| RawDocument { collection: r.get(0), tenant: r.get(1), id: r.get(2), body: r.get(3) })
            .collect())
    }

    pub(crate) async fn document_count(&self) -> Result<u64, StoreError> {
        let i = &self.inner;
        let n: i64 = i.client.query_one(COUNT, &[]).await.map_err(self.err("count the documents".into()))?.get(0);
        Ok(n.max(0) as u64)
    }

    /// Writes every document in one transaction, if the store holds none: the table is
    /// locked against other writers (SHARE ROW EXCLUSIVE) before it is counted.
    pub(crate) async fn import(&self, documents: Vec<RawDocument>) -> Result<(), StoreError> {
        let count = documents.len();
        let mut client = self.own_connection().await?;
        let found = {
            let run = async {
                let tx = client.transaction().await?;
                tx.batch_execute("LOCK TABLE documents IN SHARE ROW EXCLUSIVE MODE").await?;
                let found: i64 = tx.query_one(COUNT, &[]).await?.get(0);
                if found > 0 {
                    tx.rollback().await?;
                    return Ok(found as u64);
                }
                let insert = tx.prepare(IMPORT).await?;
                for chunk in documents.chunks(IMPORT_CHUNK) {
                    let tenants: Vec<i64> = chunk.iter().map(|d| d.tenant).collect();
                    let collections: Vec<&str> = chunk.iter().map(|d| d.collection.as_str()).collect();
                    let ids: Vec<&str> = chunk.iter().map(|d| d.id.as_str()).collect();
                    let bodies: Vec<&str> = chunk.iter().map(|d| d.body.as_str()).collect();
                    tx.execute(&insert, &[&tenants, &collections, &ids, &bodies]).await?;
                }
                tx.commit().await?;
                Ok::<_, tokio_postgres::Error>(0)
            };
            run.await.map_err(self.err(format!("import {count} document(s)")))?
        };
        if found > 0 {
            return Err(StoreError::NotEmpty { db: self.inner.describe.clone(), documents: found });
        }
        Ok(())
    }

    pub(crate) async fn ids(&self, tenant: i64, collection: &str) -> Result<Vec<String>, StoreError> {
        let i = &self.inner;
        let rows = i
            .client
            .query(&i.ids, &[&tenant, &collection])
            .await
            .map_err(self.err(format!("list ids of {collection} of tenant {tenant}")))?;
        Ok(rows.into_iter().map(|r| r.get(0)).collect())
    }
}

/// `postgres://host:port/db`: where, without credentials.
fn describe(config: &Config) -> String {
    let ports = config.get_ports();
    let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
    let mut hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| match h {
            Host::Tcp(name) => format!("{name}:{}", port(i)),
            #[cfg(unix)]
            Host::Unix(dir) => format!("{}:{}", dir.display(), port(i)),
        })
        .collect();
    if hosts.is_empty() {
        hosts = config.get_hostaddrs().iter().enumerate().map(|(i, a)| format!("{a}:{}", port(i))).collect();
    }
    if hosts.is_empty() {
        hosts.push(format!("localhost:{}", port(0)));
    }
    // PostgreSQL's default database is the user's name.
    let db = config.get_dbname().or(config.get_user()).unwrap_or("");
    format!("postgres://{}/{db}", hosts.join(","))
}

/// The error and its causes on one line; tokio-postgres keeps the useful part
/// ("password authentication failed", "Connection refused") in the causes.
fn message(e: &tokio_postgres::Error) -> String {
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string().replace('\n', " "));
        cause = c.source();
    }
    out
}

/// The connection string with its password masked, for messages: the
/// `user:password@` of a URL, and any `password=` parameter (URL query or key=value form).
pub(crate) fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let start = scheme_end + 3;
        let authority_end = out[start..].find(['/', '?']).map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..authority_end].rfind('@') {
            if let Some(colon) = out[start..start + at].find(':') {
                out.replace_range(start + colon + 1..start + at, "***");
            }
        }
    }
    let mut from = 0;
    while let Some(i) = out[from..].find("password=") {
        let value_start = from + i + "password=".len();
        let value_end = out[value_start..].find(['&', ' ']).map_or(out.len(), |j| value_start + j);
        out.replace_range(value_start..value_end, "***");
        from = value_start + 3;
    }
    out
}
