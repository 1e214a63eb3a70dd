//! The REST client the CLI commands use: where the API is, the token it sends, and
//! how it trusts the API's certificate.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::credentials::{read_token_file, ApiRecord};

pub const DEFAULT_API: &str = "http://127.0.0.1:9443";

/// Where the API is and how to talk to it: shared by every client command.
#[derive(clap::Args, Clone, Debug)]
pub struct ApiArgs {
    /// Base URL of the Stratos API.
    #[arg(long, global = true, env = "STRATOS_API", default_value = DEFAULT_API)]
    pub api: String,
    /// Bearer token to send. Without it: the one `stratos login` saved for this API,
    /// else the admin token file a `stratos up` on this machine recorded for it.
    #[arg(long, global = true, env = "STRATOS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Trust this CA certificate (PEM) for an https:// API.
    #[arg(long, global = true, env = "STRATOS_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Trust the API's certificate by its SHA-256 fingerprint, as `stratos up` prints it
    /// (pinning: for a self-signed certificate).
    #[arg(long, global = true, env = "STRATOS_TLS_FINGERPRINT")]
    pub tls_fingerprint: Option<String>,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client for `args.api` with its token and trust settings resolved.
    pub fn new(args: &ApiArgs) -> Result<Client> {
        let record = ApiRecord::load(&args.api);
        let token = args.token.clone().or_else(|| record.token()).or_else(|| default_data_dir_token(&args.api));
        Client::with_token(args, &record, token)
    }

    /// A client that sends no token (logging in).
    pub fn anonymous(args: &ApiArgs) -> Result<Client> {
        Client::with_token(args, &ApiRecord::load(&args.api), None)
    }

    fn with_token(args: &ApiArgs, record: &ApiRecord, token: Option<String>) -> Result<Client> {
        let fingerprint = args.tls_fingerprint.clone().or_else(|| record.tls_fingerprint.clone());
        let ca_cert = args.ca_cert.clone().or_else(|| record.ca_cert.clone());
        let http = crate::trust::http_client(fingerprint.as_deref(), ca_cert.as_deref())?;
        Ok(Client { http, base: args.api.trim_end_matches('/').to_string(), token })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request: the answer's status and JSON body (`null` when empty), whatever
    /// the status; only a failure to reach the API is an error. For commands that report
    /// each refusal and go on (`apply`).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(String, &'static str)>,
    ) -> Result<(StatusCode, Value)> {
        let url = format!("{}{path}", self.base);
        let response = self.respond(&method, &url, body).await?;
        let status = response.status();
        let text = response.text().await.with_context(|| format!("reading the answer of {method} {url}"))?;
        if status == StatusCode::UNAUTHORIZED {
            bail!("{}\n  log in with `stratos login --api {} --user NAME`", describe_error(status, &text), self.base);
        }
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Sends a request; a non-2xx answer becomes an error with the server's problems listed.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(String, &'static str)>,
    ) -> Result<Option<Value>> {
        let url = format!("{}{path}", self.base);
        let response = self.respond(&method, &url, body).await?;
        let status = response.status();
        let text = response.text().await.with_context(|| format!("reading the answer of {method} {url}"))?;
        if status.is_success() {
            if status == StatusCode::NO_CONTENT || text.is_empty() {
                return Ok(None);
            }
            return serde_json::from_str(&text).map(Some).with_context(|| format!("{method} {url} answered non-JSON"));
        }
        let mut message = describe_error(status, &text);
        if status == StatusCode::UNAUTHORIZED {
            message.push_str(&format!(
                "\n  log in with `stratos login --api {} --user NAME`, or pass --token / STRATOS_TOKEN",
                self.base
            ));
        }
        bail!(message)
    }
}

impl Client {
    /// Sends a request to `url` with the token and the body, and gives the answer whatever
    /// its status; an API that cannot be reached is an error saying so.
    async fn respond(
        &self,
        method: &Method,
        url: &str,
        body: Option<(String, &'static str)>,
    ) -> Result<reqwest::Response> {
        let mut request = self.http.request(method.clone(), url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some((text, content_type)) = body {
            request = request.header("content-type", content_type).body(text);
        }
        request.send().await.map_err(|e| {
            anyhow!("cannot reach the Stratos API at {} (is `stratos up` running? set --api): {}", self.base, chain(&e))
        })
    }

    /// Sends a request and hands back a successful answer unread, for bodies that stream
    /// (`member exec`); a non-2xx answer becomes an error as in `call`.
    pub async fn stream(
        &self,
        method: Method,
        path: &str,
        body: Option<(String, &'static str)>,
    ) -> Result<reqwest::Response> {
        let url = format!("{}{path}", self.base);
        let response = self.respond(&method, &url, body).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.with_context(|| format!("reading the answer of {method} {url}"))?;
        bail!(describe_error(status, &text))
    }
}

/// The admin token file in `./.stratos`, the default data directory, when the API is
/// the default one: `stratos up` run here without flags.
fn default_data_dir_token(api: &str) -> Option<String> {
    if api.trim_end_matches('/') != DEFAULT_API {
        return None;
    }
    read_token_file(&PathBuf::from(".stratos").join(stratos_manager::bootstrap::TOKEN_FILE))
}

/// An error with its causes (a TLS failure is three levels down).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}

/// `invalid deployment policy "dp" (400)` followed by one line per problem.
pub fn describe_error(status: StatusCode, text: &str) -> String {
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
