//! `POST /api/members/{id}/exec`: a command run in a member's environment
//! (`stratos member exec`), its output streamed back as it comes.
//!
//! The answer is newline-delimited JSON, one object a line: `{"stdout": "..."}`,
//! `{"stderr": "..."}` (text, invalid UTF-8 replaced), and last `{"exit": CODE}`
//! (`null` when a signal ended it) or `{"error": "..."}`. The member's tenant's writers
//! may run commands, not its viewers; another tenant's member is a 404. The driver runs
//! the command without the member's bus credentials in its environment.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use stratos_model::topology::Member;
use stratos_model::Problems;
use tokio::sync::mpsc;

use crate::auth::Principal;
use crate::body::decode;
use crate::deploy_checks::BoxFuture;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// What a command gives, as it comes.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecFrame {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The exit code (`None`: ended by a signal); the last frame.
    Exit(Option<i32>),
}

/// Runs commands in members: `stratos up` gives the manager its drivers through this.
pub trait MemberExec: Send + Sync {
    /// Runs `command` in member `member_id` of the driver `provider`; `Err` says why not.
    fn exec<'a>(
        &'a self,
        provider: &'a str,
        member_id: &'a str,
        command: Vec<String>,
    ) -> BoxFuture<'a, Result<mpsc::Receiver<ExecFrame>, String>>;
}

/// The command to run, as a program and its arguments (no shell).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecRequest {
    pub command: Vec<String>,
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/members/{id}/exec", post(exec))
}

/// The member with its provider, if the caller's tenant has it.
async fn member_of(state: &AppState, tenant: i64, id: &str) -> ApiResult<Member> {
    let (topology, _unreadable) = state.store.read_topology().await?;
    topology
        .services
        .values()
        .flat_map(|s| s.clusters.values())
        .filter(|c| c.tenant_id == tenant)
        .find_map(|c| c.members.get(id))
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("member {id:?} does not exist")))
}

async fn exec(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    p.require_write()?;
    let req: ExecRequest = decode(&headers, body)?;
    if req.command.first().is_none_or(|c| c.is_empty()) {
        let mut problems = Problems::default();
        problems.push("command", "give the program to run, then its arguments");
        return Err(ApiError::invalid("nothing to run", problems));
    }
    let member = member_of(&state, p.tenant_id, &id).await?;
    let provider = member.properties.iter().find(|p| p.name == "provider").map(|p| p.value.clone()).unwrap_or_default();
    let Some(runner) = state.member_exec.clone() else {
        return Err(ApiError::new(StatusCode::NOT_IMPLEMENTED, "this API runs without drivers to run commands"));
    };
    let program = req.command[0].clone();
    let frames = runner
        .exec(&provider, &id, req.command)
        .await
        .map_err(|e| ApiError::conflict(format!("cannot run a command in member {id:?}: {e}")))?;
    // The program only: its arguments may hold what the operator would not see logged.
    tracing::info!(member_id = %id, program = %program, user = %p.user, tenant = p.tenant_id, "member exec");
    let lines = futures_util::stream::unfold(frames, |mut frames| async move {
        let frame = frames.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(line(&frame))), frames))
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response())
}

/// One frame as a line of JSON (`tasks.rs` streams the same).
pub(crate) fn line(frame: &ExecFrame) -> String {
    let value = match frame {
        ExecFrame::Stdout(b) => serde_json::json!({"stdout": String::from_utf8_lossy(b)}),
        ExecFrame::Stderr(b) => serde_json::json!({"stderr": String::from_utf8_lossy(b)}),
        ExecFrame::Exit(code) => serde_json::json!({"exit": code}),
    };
    format!("{value}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_json_lines() {
        assert_eq!(line(&ExecFrame::Stdout(b"a \"b\"\n".to_vec())), "{\"stdout\":\"a \\\"b\\\"\\n\"}\n");
        assert_eq!(line(&ExecFrame::Stderr(vec![0xff])), "{\"stderr\":\"\u{fffd}\"}\n");
        assert_eq!(line(&ExecFrame::Exit(Some(3))), "{\"exit\":3}\n");
        assert_eq!(line(&ExecFrame::Exit(None)), "{\"exit\":null}\n");
    }
}
