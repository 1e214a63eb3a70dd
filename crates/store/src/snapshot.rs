//! The whole store as one list of documents, and back: what `stratos backup` takes and
//! `stratos restore` puts into an empty store.
//!
//! Generic over collections: every row of `documents` is in it, whatever record kind
//! wrote it (definitions, the topology, users and token hashes, tenants, encrypted
//! secrets, kinds added later), with its body as stored. A snapshot is read in one read
//! transaction, so it is one consistent state; an import is one write transaction into
//! a store that holds no document, so it is all or nothing, and never merges into
//! another platform's state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One stored document: where it is and its body as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub collection: String,
    pub tenant: i64,
    pub id: String,
    pub body: Value,
}

/// Documents per collection.
pub fn counts(documents: &[Document]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for d in documents {
        *counts.entry(d.collection.clone()).or_insert(0) += 1;
    }
    counts
}

/// The first `(collection, tenant, id)` that appears twice, if any: an import refuses it
/// (the primary key would make one replace the other silently).
pub fn first_duplicate(documents: &[Document]) -> Option<(String, i64, String)> {
    let mut seen = std::collections::HashSet::with_capacity(documents.len());
    documents
        .iter()
        .find(|d| !seen.insert((d.collection.as_str(), d.tenant, d.id.as_str())))
        .map(|d| (d.collection.clone(), d.tenant, d.id.clone()))
}

/// A raw row of a snapshot, before its body is parsed.
pub(crate) struct RawDocument {
    pub(crate) collection: String,
    pub(crate) tenant: i64,
    pub(crate) id: String,
    pub(crate) body: String,
}

impl RawDocument {
    pub(crate) fn parse(self) -> Result<Document, crate::StoreError> {
        match serde_json::from_str(&self.body) {
            Ok(body) => Ok(Document { collection: self.collection, tenant: self.tenant, id: self.id, body }),
            Err(error) => Err(crate::StoreError::CorruptDocument {
                tenant: self.tenant,
                collection: self.collection,
                id: self.id,
                error,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(collection: &str, tenant: i64, id: &str) -> Document {
        Document { collection: collection.into(), tenant, id: id.into(), body: json!({}) }
    }

    #[test]
    fn counts_per_collection() {
        let docs = [doc("user", -1234, "admin"), doc("cartridge", 1, "php"), doc("cartridge", 2, "php")];
        assert_eq!(counts(&docs), BTreeMap::from([("cartridge".into(), 2), ("user".into(), 1)]));
    }

    #[test]
    fn duplicates_are_found_by_collection_tenant_and_id() {
        let docs = [doc("cartridge", 1, "php"), doc("cartridge", 2, "php"), doc("tenant", 1, "php")];
        assert_eq!(first_duplicate(&docs), None);
        let docs = [doc("cartridge", 1, "php"), doc("user", 1, "a"), doc("cartridge", 1, "php")];
        assert_eq!(first_duplicate(&docs), Some(("cartridge".into(), 1, "php".into())));
    }
}
