//! Request bodies in JSON or YAML, bounded in size.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use stratos_model::{parse, Format};

use crate::error::{ApiError, ApiResult};

/// Default largest request body: definitions are small, a megabyte is generous.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Reads the body as the format its Content-Type names (JSON unless it says YAML;
/// with no Content-Type, the text decides).
pub fn decode<T: DeserializeOwned>(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let body = body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                format!("request body is larger than the limit ({DEFAULT_BODY_LIMIT} bytes unless configured)"),
            )
        } else {
            ApiError::new(status, format!("cannot read the request body: {e}"))
        }
    })?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("request body is not UTF-8: {e}")))?;
    if text.trim().is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "request body is empty; send a definition in JSON or YAML"));
    }
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let format = if content_type.contains("yaml") {
        Format::Yaml
    } else if content_type.contains("json") {
        Format::Json
    } else if content_type.is_empty() {
        Format::sniff(text)
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type {content_type:?} is not supported; use application/json or application/yaml"),
        ));
    };
    parse(text, format).map_err(|p| ApiError::invalid("malformed definition", p))
}
