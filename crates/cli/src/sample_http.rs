//! `stratos sample-http`: a tiny HTTP server to try the platform with, no runtime to install.
//! Every GET answers `member <id> path <path>` (then ` version <v>` with `--version`), so one
//! sees which member (and version) served a request;
//! `--cpu-work` burns CPU per request to make the autoscaler act on load average;
//! `--delay` holds each request without CPU, so requests pile up in flight.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::get;
use axum::Router;
use stratos_model::duration::{self, VALUE_NAME as DURATION};

#[derive(clap::Args, Debug)]
pub struct SampleHttpArgs {
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Busy-loop this long per request, to create CPU load (e.g. 20ms).
    #[arg(long, value_name = DURATION, value_parser = duration::parse, default_value = "0s")]
    pub cpu_work: Duration,
    /// Sleep this long per request (no CPU), to keep requests in flight (e.g. 200ms).
    #[arg(long, value_name = DURATION, value_parser = duration::parse, default_value = "0s")]
    pub delay: Duration,
    /// A version to name in every answer (`... version V`), to tell a rollout's old
    /// members from its new ones.
    #[arg(long, env = "SAMPLE_HTTP_VERSION")]
    pub version: Option<String>,
}

struct Sample {
    member: String,
    /// Named after the path in every answer, if given.
    version: Option<String>,
    cpu_work: Duration,
    delay: Duration,
}

/// The server's routes: `GET /health` answers `ok`, every other GET names the member and the path,
/// after `delay` (asleep) and `cpu_work` (busy).
pub fn router(member: String, cpu_work: Duration, delay: Duration, version: Option<String>) -> Router {
    let sample = Arc::new(Sample { member, version, cpu_work, delay });
    Router::new().route("/health", get(|| async { "ok" })).fallback(move |method: Method, uri: Uri| {
        let sample = sample.clone();
        async move {
            if method != Method::GET && method != Method::HEAD {
                return (StatusCode::METHOD_NOT_ALLOWED, "only GET\n".to_string());
            }
            if !sample.delay.is_zero() {
                tokio::time::sleep(sample.delay).await;
            }
            if !sample.cpu_work.is_zero() {
                let work = sample.cpu_work;
                // On a blocking thread: busy requests load the CPU without stalling the others.
                let _ = tokio::task::spawn_blocking(move || busy(work)).await;
            }
            let version = sample.version.as_ref().map(|v| format!(" version {v}")).unwrap_or_default();
            (StatusCode::OK, format!("member {} path {}{version}\n", sample.member, uri.path()))
        }
    })
}

fn busy(work: Duration) {
    let start = Instant::now();
    let mut x: u64 = 1;
    while start.elapsed() < work {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407));
        }
    }
}

/// Serves until SIGTERM or Ctrl-C, then finishes the requests in flight.
pub async fn run(args: SampleHttpArgs) -> anyhow::Result<()> {
    let member = std::env::var("STRATOS_MEMBER_ID").ok().filter(|m| !m.is_empty()).unwrap_or_else(|| "unknown".into());
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(%addr, %member, cpu_work = ?args.cpu_work, delay = ?args.delay, "sample HTTP server listening");
    let app = router(member, args.cpu_work, args.delay, args.version);
    axum::serve(listener, app).with_graceful_shutdown(stop_signal()).await.context("serving HTTP")?;
    tracing::info!("sample HTTP server stopped");
    Ok(())
}

async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let code = response.split_whitespace().nth(1).unwrap().parse().unwrap();
        (code, response.split_once("\r\n\r\n").unwrap().1.to_string())
    }

    #[tokio::test]
    async fn answers_with_the_member_and_the_path() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router("m-7".into(), Duration::from_millis(20), Duration::ZERO, None)).await.unwrap();
        });
        assert_eq!(request(addr, "GET", "/a/b?x=1").await, (200, "member m-7 path /a/b\n".into()));
        assert_eq!(request(addr, "GET", "/health").await, (200, "ok".into()));
        let start = Instant::now();
        assert_eq!(request(addr, "GET", "/").await.0, 200);
        assert!(start.elapsed() >= Duration::from_millis(20), "the CPU work was skipped");
        assert_eq!(request(addr, "POST", "/").await.0, 405);
        server.abort();
    }

    #[tokio::test]
    async fn delay_holds_requests_without_blocking_others() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router("m-8".into(), Duration::ZERO, Duration::from_millis(200), None))
                .await
                .unwrap();
        });
        let start = Instant::now();
        // Eight at once: asleep, not busy, they end together after one delay.
        let answers = futures_join(addr, 8).await;
        let took = start.elapsed();
        assert!(answers.iter().all(|(code, body)| *code == 200 && body == "member m-8 path /slow\n"), "{answers:?}");
        assert!(took >= Duration::from_millis(200), "the delay was skipped: {took:?}");
        assert!(took < Duration::from_millis(1500), "delayed requests ran one after another: {took:?}");
        assert_eq!(request(addr, "GET", "/health").await, (200, "ok".into()), "/health is not delayed");
        server.abort();
    }

    async fn futures_join(addr: SocketAddr, n: usize) -> Vec<(u16, String)> {
        let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(async move { request(addr, "GET", "/slow").await })).collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }
}
