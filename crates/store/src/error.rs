use std::path::PathBuf;

/// Everything that can go wrong in the store.
///
/// Every message names what was being done and where (the database as
/// [`Store::describe`](crate::Store::describe) prints it, never with a
/// password), and ends with the underlying cause. The cause is part of the
/// message rather than a `source()`, so that error reports do not print it twice.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(
        "unsupported store URL {url:?}: expected postgres://…, postgresql://…, sqlite://PATH or the path of a SQLite file"
    )]
    UnsupportedUrl { url: String },

    #[error("cannot create directory {} for the SQLite database: {error}", path.display())]
    CreateDir { path: PathBuf, error: std::io::Error },

    /// A file of the SQLite database (or its directory) this process cannot write.
    #[error(
        "{} is not writable by this process ({error}); SQLite needs to write the database, its -wal file and their directory: fix their owner or permissions",
        path.display()
    )]
    NotWritable { path: PathBuf, error: std::io::Error },

    #[error("cannot open SQLite database {}: {error}", path.display())]
    OpenSqlite { path: PathBuf, error: rusqlite::Error },

    /// `url` has its password masked.
    #[error("invalid PostgreSQL URL {url}: {message}")]
    InvalidPostgresUrl { url: String, message: String },

    #[error("cannot connect to PostgreSQL {target}: {message}")]
    ConnectPostgres { target: String, message: String },

    #[error("cannot prepare the Stratos tables in {db}: {message}")]
    Schema { db: String, message: String },

    #[error(
        "{db} has Stratos schema version {found}, newer than version {supported} that this build knows; upgrade Stratos"
    )]
    SchemaTooNew { db: String, found: i64, supported: i64 },

    /// A statement failed: `action` is e.g. "store cartridge/php of tenant 1".
    #[error("{db}: cannot {action}: {message}")]
    Database { db: String, action: String, message: String },

    /// A row's body is not JSON at all.
    #[error("stored document {collection}/{id} of tenant {tenant} is not valid JSON: {error}")]
    CorruptDocument { tenant: i64, collection: String, id: String, error: serde_json::Error },

    /// A row's body is JSON but not the type a typed helper expects.
    #[error("stored document {collection}/{id} of tenant {tenant} is not a valid {what}: {error}")]
    InvalidDocument { tenant: i64, collection: String, id: String, what: String, error: serde_json::Error },

    /// A record's document does not decode as its type: it names the document.
    #[error(transparent)]
    Unreadable(#[from] crate::Unreadable),

    #[error("cannot encode {what} as JSON: {error}")]
    Encode { what: String, error: serde_json::Error },

    /// An import into a store that already holds documents.
    #[error(
        "{db} holds {documents} document(s): a backup is restored only into an empty store (a new --data-dir, or an empty database)"
    )]
    NotEmpty { db: String, documents: u64 },

    /// An import naming one document twice.
    #[error("document {collection}/{id} of tenant {tenant} appears twice in the import")]
    DuplicateDocument { collection: String, tenant: i64, id: String },

    /// The blocking task that ran a SQLite statement panicked or was cancelled.
    #[error("{db}: the SQLite worker task failed: {message}")]
    Task { db: String, message: String },
}
