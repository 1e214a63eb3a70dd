//! The admin listener of a standalone component (`--metrics-listen`): `GET /metrics`
//! with the scrape token, nothing else. Never a proxy port; never anonymous (401
//! without the token or with another, 404 for any other path).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::{Scrape, ScrapeToken, CONTENT_TYPE};

/// Serves `scrape` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, scrape: Scrape, token: ScrapeToken) {
    let shared = Arc::new((scrape, token));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(answer(&shared.0, &shared.1, &req, peer)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            let _ = conn.await;
        });
    }
}

/// Binds `addr` and serves there in a task; returns the address bound.
pub async fn start(addr: SocketAddr, scrape: Scrape, token: ScrapeToken) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(serve(listener, scrape, token));
    tracing::info!(listen = %bound, "metrics on /metrics (scrape token required)");
    Ok(bound)
}

fn answer(scrape: &Scrape, token: &ScrapeToken, req: &Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "only /metrics is served here\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n");
    }
    let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if !token.authorizes(authorization) {
        tracing::info!(%peer, "metrics scrape refused: no or wrong token");
        let mut response = plain(StatusCode::UNAUTHORIZED, "send `Authorization: Bearer <scrape token>`\n");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"stratos-metrics\""));
        return response;
    }
    let mut response = Response::new(Full::new(Bytes::from(scrape.render())));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
