//! `GET /api/backup`: the platform's whole state as a backup file (`stratos backup`),
//! for platform admins only.
//!
//! The answer is JSON lines (`stratos_store::backup`): a header (format version, platform
//! id, time, store kind, counts), then every document of every collection and tenant as
//! stored, from one consistent snapshot. Password and token hashes and encrypted secrets
//! go as they are stored; the key files of the data directory do not go at all.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;
use stratos_store::backup::{document_line, header_line, BackupHeader};

use crate::auth::Principal;
use crate::error::ApiResult;
use crate::state::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/backup", get(backup))
}

async fn backup(State(state): State<Arc<AppState>>, p: Principal) -> ApiResult<Response> {
    p.require_platform_admin("back up the platform")?;
    let documents = state.store.snapshot().await?;
    let now = SystemTime::now();
    let header = BackupHeader::new(&documents, state.store.kind(), now);
    tracing::info!(
        documents = header.documents,
        collections = header.collections.len(),
        tenants = header.tenants,
        by = %p.user,
        "backup taken"
    );
    let name = format!("stratos-backup-{}.jsonl", header.created_at.replace(':', ""));
    let first = std::iter::once(header_line(&header));
    let lines = first.chain(documents.into_iter().map(|d| document_line(&d)));
    // Lines go out in chunks of about 64 KiB as the client reads them.
    let chunks = futures_util::stream::iter(Chunks { lines, size: 64 * 1024 }).map(Ok::<_, std::convert::Infallible>);
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

/// Lines gathered into chunks of at least `size` bytes (the last one smaller).
struct Chunks<I> {
    lines: I,
    size: usize,
}

impl<I: Iterator<Item = String>> Iterator for Chunks<I> {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let mut chunk = String::new();
        for line in self.lines.by_ref() {
            chunk.push_str(&line);
            if chunk.len() >= self.size {
                break;
            }
        }
        (!chunk.is_empty()).then(|| Bytes::from(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_chunked_whole() {
        let lines = (0..5).map(|i| format!("line {i}\n"));
        let chunks: Vec<Bytes> = Chunks { lines, size: 14 }.collect();
        assert_eq!(
            chunks,
            vec![Bytes::from("line 0\nline 1\n"), Bytes::from("line 2\nline 3\n"), Bytes::from("line 4\n")]
        );
        assert_eq!(Chunks { lines: std::iter::empty::<String>(), size: 4 }.count(), 0);
    }
}
