//! `POST /api/applications/{id}/run`: a one-off task (`stratos application run`), a
//! command run in a new member of one of the application's clusters, as deployed; its
//! output streamed as `member exec` streams it (newline-delimited JSON, last
//! `{"exit": CODE}` or `{"error": "..."}`), the task member removed when it ends or
//! the client goes away. The tenant's writers may run tasks, not its viewers.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use stratos_model::{Deployment, DeploymentStatus, Problems};

use crate::auth::Principal;
use crate::body::decode;
use crate::error::{ApiError, ApiResult};
use crate::member_exec::line;
use crate::state::AppState;

/// The task: its command (a program and its arguments, no shell) and the cluster, by
/// alias, when the application has more than one.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunRequest {
    pub command: Vec<String>,
    #[serde(default)]
    pub cluster: Option<String>,
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/applications/{id}/run", post(run))
}

async fn run(
    State(state): State<Arc<AppState>>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    p.require_write()?;
    let req: RunRequest = decode(&headers, body)?;
    if req.command.first().is_none_or(|c| c.is_empty()) {
        let mut problems = Problems::default();
        problems.push("command", "give the program to run, then its arguments");
        return Err(ApiError::invalid("nothing to run", problems));
    }
    let deployment = state
        .store
        .get_record::<Deployment>(p.tenant_id, &id)
        .await?
        .filter(|d| d.status == DeploymentStatus::Deployed)
        .ok_or_else(|| ApiError::not_found(format!("application {id:?} is not deployed")))?;
    let aliases = || deployment.clusters.iter().map(|c| c.alias.as_str()).collect::<Vec<_>>().join(", ");
    let spec = match &req.cluster {
        Some(alias) => {
            deployment.clusters.iter().find(|c| c.alias == *alias || c.cluster_id == *alias).ok_or_else(|| {
                let mut problems = Problems::default();
                problems.push("cluster", format!("application {id:?} has no cluster {alias:?} (it has {})", aliases()));
                ApiError::invalid("no such cluster", problems)
            })?
        }
        None if deployment.clusters.len() == 1 => &deployment.clusters[0],
        None => {
            let mut problems = Problems::default();
            problems.push("cluster", format!("application {id:?} has several clusters: name one of {}", aliases()));
            return Err(ApiError::invalid("which cluster?", problems));
        }
    };
    let Some(workloads) = state.workloads.clone() else {
        return Err(ApiError::new(StatusCode::NOT_IMPLEMENTED, "this API runs without drivers to run tasks"));
    };
    let program = req.command[0].clone();
    let frames = workloads
        .run_task(&deployment, spec, req.command)
        .await
        .map_err(|e| ApiError::conflict(format!("cannot run a task in cluster {:?}: {e}", spec.cluster_id)))?;
    // The program only: its arguments may hold what the operator would not see logged.
    tracing::info!(application_id = %id, cluster_id = %spec.cluster_id, program = %program, user = %p.user, tenant = p.tenant_id, "task run");
    let lines = futures_util::stream::unfold(frames, |mut frames| async move {
        let frame = frames.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(line(&frame))), frames))
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response())
}
