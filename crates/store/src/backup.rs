//! The backup file: JSON lines, pure (no I/O but the reader it is given).
//!
//! Line 1 is the [`BackupHeader`] (`"format": "stratos-backup"`, its version, the
//! store's schema version, the platform id, when, from which kind of store, and the
//! counts); every other line is one [`Document`] (`collection`, `tenant`, `id`, `body`
//! as stored: passwords and tokens as their hashes, secrets encrypted). The header's
//! count is checked against the lines read, so a file cut short is refused rather than
//! restored in part.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::snapshot::{self, Document};

/// What the header's `format` says.
pub const FORMAT: &str = "stratos-backup";
/// The version of the file format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The first line of a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupHeader {
    pub format: String,
    pub format_version: u32,
    /// The store schema the documents were read from ([`crate::SCHEMA_VERSION`]).
    pub schema_version: i64,
    /// The platform id in the store (its `platform`/`id` document), if it had one.
    pub platform_id: Option<String>,
    /// When the snapshot was taken, RFC 3339.
    pub created_at: String,
    /// `sqlite` or `postgres`.
    pub store: String,
    /// How many document lines follow.
    pub documents: usize,
    /// Documents per collection.
    pub collections: BTreeMap<String, usize>,
    /// How many tenants have documents (the super tenant counts).
    pub tenants: usize,
}

impl BackupHeader {
    /// The header of a backup of `documents`, taken at `at` from a `store` (`sqlite`/`postgres`).
    pub fn new(documents: &[Document], store: &str, at: SystemTime) -> BackupHeader {
        let platform_id = documents
            .iter()
            .find(|d| d.tenant == stratos_model::SUPER_TENANT && d.collection == "platform" && d.id == "id")
            .and_then(|d| d.body["platformId"].as_str())
            .map(str::to_owned);
        let tenants: std::collections::BTreeSet<i64> = documents.iter().map(|d| d.tenant).collect();
        BackupHeader {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            schema_version: crate::SCHEMA_VERSION,
            platform_id,
            created_at: humantime::format_rfc3339_seconds(at).to_string(),
            store: store.into(),
            documents: documents.len(),
            collections: snapshot::counts(documents),
            tenants: tenants.len(),
        }
    }
}

/// Why a file is not a backup this build can restore.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("cannot read the backup: {0}")]
    Io(#[from] std::io::Error),
    #[error("the backup is empty: no header line")]
    Empty,
    #[error("line 1 is not a Stratos backup header ({0}); a backup begins with {{\"format\":\"stratos-backup\",...}}")]
    NotABackup(String),
    #[error("the backup's format version {found} is newer than version {supported} that this build reads; restore with a newer Stratos")]
    FormatTooNew { found: u32, supported: u32 },
    #[error("the backup was taken from store schema version {found}, newer than version {supported} that this build knows; restore with a newer Stratos")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("line {line} is not a document ({error}); each line after the header is {{\"collection\",\"tenant\",\"id\",\"body\"}}")]
    BadLine { line: usize, error: serde_json::Error },
    #[error("the header announces {expected} documents but the file has {found}: it is incomplete or was changed")]
    CountMismatch { expected: usize, found: usize },
    #[error("document {collection}/{id} of tenant {tenant} appears twice")]
    Duplicate { collection: String, tenant: i64, id: String },
}

/// The header line (with its newline).
pub fn header_line(header: &BackupHeader) -> String {
    // A struct of plain fields always serialises.
    format!("{}\n", serde_json::to_string(header).unwrap_or_default())
}

/// One document's line (with its newline).
pub fn document_line(document: &Document) -> String {
    format!("{}\n", serde_json::to_string(document).unwrap_or_default())
}

/// The header alone, from the first line.
pub fn parse_header(line: &str) -> Result<BackupHeader, BackupError> {
    let header: BackupHeader = serde_json::from_str(line).map_err(|e| BackupError::NotABackup(e.to_string()))?;
    if header.format != FORMAT {
        return Err(BackupError::NotABackup(format!("format is {:?}", header.format)));
    }
    if header.format_version > FORMAT_VERSION {
        return Err(BackupError::FormatTooNew { found: header.format_version, supported: FORMAT_VERSION });
    }
    if header.schema_version > crate::SCHEMA_VERSION {
        return Err(BackupError::SchemaTooNew { found: header.schema_version, supported: crate::SCHEMA_VERSION });
    }
    Ok(header)
}

/// A whole backup: its header and its documents, checked (the count, no duplicate).
pub fn read(reader: impl BufRead) -> Result<(BackupHeader, Vec<Document>), BackupError> {
    let mut lines = reader.lines();
    let first = lines.next().ok_or(BackupError::Empty)??;
    let header = parse_header(&first)?;
    let mut documents = Vec::with_capacity(header.documents);
    for (i, line) in lines.enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let document = serde_json::from_str(&line).map_err(|error| BackupError::BadLine { line: i + 2, error })?;
        documents.push(document);
    }
    if documents.len() != header.documents {
        return Err(BackupError::CountMismatch { expected: header.documents, found: documents.len() });
    }
    if let Some((collection, tenant, id)) = snapshot::first_duplicate(&documents) {
        return Err(BackupError::Duplicate { collection, tenant, id });
    }
    Ok((header, documents))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn documents() -> Vec<Document> {
        vec![
            Document {
                collection: "platform".into(),
                tenant: -1234,
                id: "id".into(),
                body: json!({"platformId": "abc", "createdAt": 1}),
            },
            Document { collection: "cartridge".into(), tenant: 3, id: "php".into(), body: json!({"type": "php"}) },
            Document { collection: "user".into(), tenant: -1234, id: "admin".into(), body: json!({"hash": "$argon2"}) },
        ]
    }

    fn file(documents: &[Document]) -> String {
        let mut out = header_line(&BackupHeader::new(documents, "sqlite", SystemTime::UNIX_EPOCH));
        for d in documents {
            out.push_str(&document_line(d));
        }
        out
    }

    #[test]
    fn round_trip_with_header_and_counts() {
        let docs = documents();
        let (header, read_back) = read(file(&docs).as_bytes()).unwrap();
        assert_eq!(read_back, docs);
        assert_eq!(header.platform_id.as_deref(), Some("abc"));
        assert_eq!(header.created_at, "1970-01-01T00:00:00Z");
        assert_eq!((header.documents, header.tenants, header.store.as_str()), (3, 2, "sqlite"));
        assert_eq!(header.collections["cartridge"], 1);
        assert_eq!(header.format_version, FORMAT_VERSION);
    }

    #[test]
    fn a_file_cut_short_is_refused() {
        let text = file(&documents());
        let cut: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
        let err = read(cut.as_bytes()).unwrap_err();
        assert!(matches!(err, BackupError::CountMismatch { expected: 3, found: 2 }), "{err}");
        // Cut in the middle of a line.
        let err = read(&text.as_bytes()[..text.len() - 5]).unwrap_err();
        assert!(matches!(err, BackupError::BadLine { line: 4, .. }), "{err}");
    }

    #[test]
    fn what_is_not_a_backup_is_named() {
        assert!(matches!(read(&b""[..]).unwrap_err(), BackupError::Empty));
        assert!(matches!(read(&b"{\"type\": \"php\"}\n"[..]).unwrap_err(), BackupError::NotABackup(_)));
        let mut header = BackupHeader::new(&[], "sqlite", SystemTime::UNIX_EPOCH);
        header.format_version = FORMAT_VERSION + 1;
        let err = read(header_line(&header).as_bytes()).unwrap_err();
        assert!(matches!(err, BackupError::FormatTooNew { .. }), "{err}");
        header.format_version = FORMAT_VERSION;
        header.schema_version = crate::SCHEMA_VERSION + 1;
        assert!(matches!(read(header_line(&header).as_bytes()).unwrap_err(), BackupError::SchemaTooNew { .. }));
        let mut docs = documents();
        docs.push(docs[1].clone());
        assert!(matches!(read(file(&docs).as_bytes()).unwrap_err(), BackupError::Duplicate { tenant: 3, .. }));
    }
}
