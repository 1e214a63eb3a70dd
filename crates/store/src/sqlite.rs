//! SQLite back end: one connection behind a mutex, every call on tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::snapshot::RawDocument;
use crate::{Row, StoreError, Write, SCHEMA_VERSION};

/// How long a statement waits for another connection (another process) to release its lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    tenant_id  INTEGER NOT NULL,
    collection TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    updated_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (tenant_id, collection, id)
);
CREATE INDEX IF NOT EXISTS documents_by_collection ON documents (collection, tenant_id, id);
";

const PUT: &str = "
INSERT INTO documents (tenant_id, collection, id, body, updated_at)
VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
ON CONFLICT (tenant_id, collection, id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at";
const GET: &str = "SELECT body FROM documents WHERE tenant_id = ?1 AND collection = ?2 AND id = ?3";
const LIST: &str = "SELECT id, body FROM documents WHERE tenant_id = ?1 AND collection = ?2 ORDER BY id";
const LIST_ALL: &str = "SELECT tenant_id, id, body FROM documents WHERE collection = ?1 ORDER BY tenant_id, id";
const DELETE: &str = "DELETE FROM documents WHERE tenant_id = ?1 AND collection = ?2 AND id = ?3";
const IDS: &str = "SELECT id FROM documents WHERE tenant_id = ?1 AND collection = ?2 ORDER BY id";
const SNAPSHOT: &str = "SELECT collection, tenant_id, id, body FROM documents ORDER BY collection, tenant_id, id";
const COUNT: &str = "SELECT count(*) FROM documents";
const INSERT: &str = "INSERT INTO documents (tenant_id, collection, id, body) VALUES (?1, ?2, ?3, ?4)";

/// The SQLite back end of [`Store`](crate::Store); cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// `sqlite:/absolute/path`.
    describe: String,
    conn: Mutex<Connection>,
}

impl SqliteStore {
    pub(crate) async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        let describe = format!("sqlite:{}", path.display());
        tokio::task::spawn_blocking(move || open_blocking(path))
            .await
            .map_err(|e| StoreError::Task { db: describe, message: e.to_string() })?
    }

    pub(crate) fn describe(&self) -> &str {
        &self.inner.describe
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with<T, F>(&self, action: String, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let result = tokio::task::spawn_blocking(move || {
            // A panic while the lock was held cannot leave a transaction open
            // (rusqlite rolls back on drop), so the connection is still usable.
            let conn = inner.conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Task { db: self.inner.describe.clone(), message: e.to_string() })?;
        result.map_err(|e| StoreError::Database { db: self.inner.describe.clone(), action, message: e.to_string() })
    }

    pub(crate) async fn put(&self, tenant: i64, collection: &str, id: &str, body: String) -> Result<(), StoreError> {
        let (c, i) = (collection.to_owned(), id.to_owned());
        self.with(format!("store {collection}/{id} of tenant {tenant}"), move |conn| {
            conn.prepare_cached(PUT)?.execute(params![tenant, c, i, body])?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn get(&self, tenant: i64, collection: &str, id: &str) -> Result<Option<String>, StoreError> {
        let (c, i) = (collection.to_owned(), id.to_owned());
        self.with(format!("read {collection}/{id} of tenant {tenant}"), move |conn| {
            conn.prepare_cached(GET)?.query_row(params![tenant, c, i], |r| r.get(0)).optional()
        })
        .await
    }

    pub(crate) async fn list(&self, tenant: i64, collection: &str) -> Result<Vec<Row>, StoreError> {
        let c = collection.to_owned();
        self.with(format!("list {collection} of tenant {tenant}"), move |conn| {
            let mut stmt = conn.prepare_cached(LIST)?;
            let rows = stmt.query_map(params![tenant, c], |r| Ok(Row { tenant, id: r.get(0)?, body: r.get(1)? }))?;
            rows.collect()
        })
        .await
    }

    pub(crate) async fn list_all_tenants(&self, collection: &str) -> Result<Vec<Row>, StoreError> {
        let c = collection.to_owned();
        self.with(format!("list {collection} of all tenants"), move |conn| {
            let mut stmt = conn.prepare_cached(LIST_ALL)?;
            let rows = stmt.query_map(params![c], |r| Ok(Row { tenant: r.get(0)?, id: r.get(1)?, body: r.get(2)? }))?;
            rows.collect()
        })
        .await
    }

    pub(crate) async fn delete(&self, tenant: i64, collection: &str, id: &str) -> Result<bool, StoreError> {
        let (c, i) = (collection.to_owned(), id.to_owned());
        self.with(format!("delete {collection}/{id} of tenant {tenant}"), move |conn| {
            Ok(conn.prepare_cached(DELETE)?.execute(params![tenant, c, i])? > 0)
        })
        .await
    }

    /// Applies every write in one transaction: all or none.
    pub(crate) async fn write_all(&self, tenant: i64, writes: Vec<Write>) -> Result<(), StoreError> {
        self.with(format!("write {} document(s) of tenant {tenant}", writes.len()), move |conn| {
            // The connection is this call's alone (behind the mutex), so a plain transaction is safe.
            let tx = conn.unchecked_transaction()?;
            {
                let mut put = tx.prepare_cached(PUT)?;
                let mut delete = tx.prepare_cached(DELETE)?;
                for w in writes {
                    match w.body {
                        Some(body) => put.execute(params![tenant, w.collection, w.id, body])?,
                        None => delete.execute(params![tenant, w.collection, w.id])?,
                    };
                }
            }
            tx.commit()
        })
        .await
    }

    /// Every document, in one read transaction.
    pub(crate) async fn snapshot(&self) -> Result<Vec<RawDocument>, StoreError> {
        self.with("read every document".into(), |conn| {
            let tx = conn.unchecked_transaction()?;
            let documents = {
                let mut stmt = tx.prepare(SNAPSHOT)?;
                let rows = stmt.query_map([], |r| {
                    Ok(RawDocument { collection: r.get(0)?, tenant: r.get(1)?, id: r.get(2)?, body: r.get(3)? })
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.commit()?;
            Ok(documents)
        })
        .await
    }

    pub(crate) async fn document_count(&self) -> Result<u64, StoreError> {
        self.with("count the documents".into(), |conn| conn.query_row(COUNT, [], |r| r.get::<_, i64>(0)))
            .await
            .map(|n| n.max(0) as u64)
    }

    /// Writes every document in one transaction, if the store holds none.
    pub(crate) async fn import(&self, documents: Vec<RawDocument>) -> Result<(), StoreError> {
        let count = documents.len();
        let found = self
            .with(format!("import {count} document(s)"), move |conn| {
                let tx = conn.unchecked_transaction()?;
                let found: i64 = tx.query_row(COUNT, [], |r| r.get(0))?;
                if found > 0 {
                    return Ok(found as u64);
                }
                {
                    let mut insert = tx.prepare(INSERT)?;
                    for d in documents {
                        insert.execute(params![d.tenant, d.collection, d.id, d.body])?;
                    }
                }
                tx.commit()?;
                Ok(0)
            })
            .await?;
        if found > 0 {
            return Err(StoreError::NotEmpty { db: self.inner.describe.clone(), documents: found });
        }
        Ok(())
    }

    /// The ids of a tenant's documents in one collection, without their bodies.
    pub(crate) async fn ids(&self, tenant: i64, collection: &str) -> Result<Vec<String>, StoreError> {
        let c = collection.to_owned();
        self.with(format!("list ids of {collection} of tenant {tenant}"), move |conn| {
            let mut stmt = conn.prepare_cached(IDS)?;
            let rows = stmt.query_map(params![tenant, c], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }
}

fn open_blocking(path: PathBuf) -> Result<SqliteStore, StoreError> {
    let open_err = |error| StoreError::OpenSqlite { path: path.clone(), error };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|error| StoreError::CreateDir { path: parent.to_path_buf(), error })?;
    }
    check_writable(&path)?;
    let mut conn = Connection::open(&path).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    // One process owns the file while it runs. In EXCLUSIVE locking mode, set before
    // WAL mode, SQLite keeps the WAL index in this process's heap instead of mapping
    // `<db>-shm`: a shared-memory file truncated or replaced under a running platform
    // killed it with SIGBUS (the mapping's pages vanished), with no word of why. It
    // also keeps a second platform from opening the store while the first runs (it
    // waits the busy timeout, then fails with "database is locked"). The lock is taken
    // at the first access below and held until the store is dropped.
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE").map_err(open_err)?;
    // WAL: a write appends to the log; a crash loses nothing committed.
    // In-memory databases stay "memory".
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), journal_mode = %mode, "SQLite database is not in WAL mode");
    }

    // IMMEDIATE: two processes opening a new file at once take turns.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(open_err)?;
    tx.execute_batch(SCHEMA).map_err(open_err)?;
    let found: Option<i64> =
        tx.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0)).map_err(open_err)?;
    let describe = format!("sqlite:{}", std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone()).display());
    match found {
        None => {
            tx.execute("INSERT INTO schema_version (version) VALUES (?1)", [SCHEMA_VERSION]).map_err(open_err)?;
        }
        Some(found) if found > SCHEMA_VERSION => {
            return Err(StoreError::SchemaTooNew { db: describe, found, supported: SCHEMA_VERSION });
        }
        Some(_) => {}
    }
    tx.commit().map_err(open_err)?;

    Ok(SqliteStore { inner: Arc::new(Inner { describe, conn: Mutex::new(conn) }) })
}

/// Refuses a database whose files this process cannot write, naming the file.
///
/// A database or `-wal` it cannot write would fail every write (500s while reads
/// work); a directory it cannot write, the creation of the `-wal`. Refused here, with
/// the file's name, before SQLite sees them.
fn check_writable(path: &Path) -> Result<(), StoreError> {
    // (No `-shm`: in EXCLUSIVE locking mode SQLite never uses it.)
    for suffix in ["", "-wal"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::OpenOptions::new().read(true).write(true).open(&file) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(StoreError::NotWritable { path: file, error }),
        }
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let probe = dir.join(format!(".stratos-write-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        // Left by a process of the same id that died: still proof the directory is writable.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(StoreError::NotWritable { path: dir, error }),
    }
}
