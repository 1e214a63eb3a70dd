//! API errors: JSON bodies naming the field and the reason, the right 4xx for bad input.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use stratos_model::{Problem, Problems};

/// Every error the API answers, whatever its status: `problems` is always there
/// (empty when no field is at fault), as the OpenAPI document says.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ErrorBody {
    /// The HTTP status, again.
    pub status: u16,
    /// What went wrong, in words.
    pub error: String,
    /// Each field at fault, with its path in the request body.
    pub problems: Vec<Problem>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: String,
    pub problems: Vec<Problem>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError { status, error: error.into(), problems: Vec::new() }
    }

    pub fn invalid(what: impl Into<String>, problems: Problems) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, error: what.into(), problems: problems.0 }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, what)
    }

    pub fn conflict(what: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, what)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "this route does not take that method; see /api/openapi.json")
    }

    /// Prefixes the message with what was being done.
    pub fn context(mut self, doing: impl std::fmt::Display) -> Self {
        self.error = format!("{doing}: {}", self.error);
        self
    }
}

impl From<stratos_store::StoreError> for ApiError {
    fn from(e: stratos_store::StoreError) -> Self {
        tracing::error!(error = %e, "store failure");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, format!("store: {e}"))
    }
}

impl From<stratos_store::Unreadable> for ApiError {
    fn from(e: stratos_store::Unreadable) -> Self {
        stratos_store::StoreError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { status: self.status.as_u16(), error: self.error, problems: self.problems };
        (self.status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
