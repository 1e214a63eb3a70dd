//! The REST client the CLI commands use.

use anyhow::{anyhow, Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const DEFAULT_API: &str = "http://127.0.0.1:9443";

pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client { http: reqwest::Client::new(), base: base.trim_end_matches('/').to_string() }
    }

    /// Sends a request; a non-2xx answer becomes an error with the server's problems listed.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(String, &'static str)>,
    ) -> Result<Option<Value>> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        if let Some((text, content_type)) = body {
            request = request.header("content-type", content_type).body(text);
        }
        let response = request.send().await.with_context(|| {
            format!("cannot reach the Stratos API at {} (is `stratos up` running? set --api)", self.base)
        })?;
        let status = response.status();
        let text = response.text().await.with_context(|| format!("reading the answer of {method} {url}"))?;
        if status.is_success() {
            if status == StatusCode::NO_CONTENT || text.is_empty() {
                return Ok(None);
            }
            return serde_json::from_str(&text).map(Some).with_context(|| format!("{method} {url} answered non-JSON"));
        }
        Err(anyhow!(describe_error(status, &text)))
    }
}

/// `invalid deployment policy "dp" (400)` followed by one line per problem.
fn describe_error(status: StatusCode, text: &str) -> String {
    let Ok(body) = serde_json::from_str::<Value>(text) else {
        return format!("{status}: {text}");
    };
    let mut out = format!("{} ({})", body["error"].as_str().unwrap_or("request failed"), status.as_u16());
    for p in body["problems"].as_array().into_iter().flatten() {
        let path = p["path"].as_str().unwrap_or("");
        let message = p["message"].as_str().unwrap_or("");
        if path.is_empty() {
            out.push_str(&format!("\n  {message}"));
        } else {
            out.push_str(&format!("\n  {path}: {message}"));
        }
    }
    out
}
