//! The response timeout, against members that hang: a member that never answers gets
//! the client a 504 naming it, on both HTTP/1 paths; a member that stops half-way
//! through a body gets the client connection closed; the proxy lets go of the hung
//! member connections; and a slow member within the limit is served as usual.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratos_lb::LbConfig;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// Far above the test members' own delays, so that a loaded machine does not turn them into 504s.
const LIMIT: Duration = Duration::from_millis(1500);

/// What a hanging member has seen: connections accepted, and closed by the proxy.
#[derive(Default)]
struct Seen {
    accepted: AtomicUsize,
    closed_by_proxy: AtomicUsize,
}

/// A member that reads requests and answers with `answer` (maybe nothing), then
/// waits, reading, until the proxy closes the connection.
async fn hanging_member(answer: &'static [u8]) -> (u16, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let counts = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            counts.accepted.fetch_add(1, Ordering::SeqCst);
            let counts = counts.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut answered = false;
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) if !answered => {
                            answered = true;
                            let _ = stream.write_all(answer).await;
                        }
                        Ok(_) => {}
                    }
                }
                counts.closed_by_proxy.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (port, seen)
}

async fn env_with(members: &[(&str, u16)]) -> Env {
    // No active checks: the members count only the connections requests make.
    let config = LbConfig { response_timeout: LIMIT, active_check_interval: Duration::ZERO, ..LbConfig::default() };
    Env::start(web_topology(members), config).await
}

/// Sends `request` on a new connection and reads until the proxy closes it or `wait` ends.
async fn exchange(addr: std::net::SocketAddr, request: &[u8], wait: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + wait).into(), stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                got.extend_from_slice(&chunk[..n]);
                // A 504 on a kept-alive connection: its body is all there is to wait for.
                let text = String::from_utf8_lossy(&got);
                if text.starts_with("HTTP/1.1 504") && text.ends_with('}') {
                    break;
                }
            }
            _ => break,
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_never_answers_gets_the_client_a_504_naming_it() {
    let (silent, seen) = hanging_member(b"").await;
    let env = env_with(&[("silent.test", silent)]).await;
    let addr = env.addr(HTTP_PORT);

    // The forwarding path (a plain GET) and hyper's (a chunked upload).
    let requests: [&[u8]; 2] = [
        b"GET /slow HTTP/1.1\r\nHost: silent.test\r\n\r\n",
        b"POST /slow HTTP/1.1\r\nHost: silent.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ];
    for request in requests {
        let (answer, took) = exchange(addr, request, Duration::from_secs(10)).await;
        assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
        assert!(answer.contains("member silent.test-1 of cluster silent.web did not answer within 1.5s"), "{answer}");
        assert!(took >= LIMIT && took < LIMIT * 5, "answered after {took:?}");
    }
    // Slow is not dead: the member still gets requests (a 504 again, not a 503).
    let (answer, _) = exchange(addr, requests[0], Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");

    // The proxy closed every connection it had opened to the hung member.
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.closed_by_proxy.load(Ordering::SeqCst) < seen.accepted.load(Ordering::SeqCst)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (accepted, closed) = (seen.accepted.load(Ordering::SeqCst), seen.closed_by_proxy.load(Ordering::SeqCst));
    assert!(accepted >= 3 && closed == accepted, "{closed} of {accepted} member connections closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_stalling_mid_body_gets_the_client_connection_closed() {
    let (stalling, seen) = hanging_member(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf-").await;
    let env = env_with(&[("stall.test", stalling)]).await;
    // The forwarding path (a GET), and hyper's (a chunked upload).
    let requests: [&[u8]; 2] = [
        b"GET / HTTP/1.1\r\nHost: stall.test\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: stall.test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    ];
    for (n, request) in requests.into_iter().enumerate() {
        let (answer, took) = exchange(env.addr(HTTP_PORT), request, Duration::from_secs(10)).await;
        // The head and the bytes that came went through; then the connection closed, cut
        // short, so the client can tell the response is incomplete.
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nhalf-"), "{answer}");
        assert!(took >= LIMIT && took < LIMIT * 5, "closed after {took:?}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.closed_by_proxy.load(Ordering::SeqCst) < n + 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(seen.closed_by_proxy.load(Ordering::SeqCst), n + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_member_within_the_limit_is_served() {
    let slow = Backend::start("slow").await;
    slow.delay_ms.store(300, Ordering::SeqCst);
    let env = env_with(&[("slow.test", slow.port())]).await;
    let client = client();
    for _ in 0..3 {
        let r = get(&client, env.addr(HTTP_PORT), "slow.test", "/", None).await.unwrap();
        assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "slow"));
    }
}

/// A member that reads a request's whole body before it answers with the body's length.
async fn counting_member() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let service = hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                use http_body_util::BodyExt;
                let body = req.into_body().collect().await.map(|b| b.to_bytes().len()).unwrap_or(0);
                Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                    hyper::body::Bytes::from(format!("got {body} bytes")),
                )))
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
        }
    });
    port
}

/// The member's time starts once it has the whole request: an upload slower than the
/// limit (chunked, so hyper's path streams it) is answered, not cut short with a 504.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_slower_than_the_limit_is_not_a_timeout() {
    let env = env_with(&[("upload.test", counting_member().await)]).await;
    let mut stream = TcpStream::connect(env.addr(HTTP_PORT)).await.unwrap();
    stream
        .write_all(b"POST /up HTTP/1.1\r\nHost: upload.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    for _ in 0..6 {
        stream.write_all(b"5\r\nhello\r\n").await.unwrap();
        tokio::time::sleep(LIMIT / 2).await;
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    assert!(started.elapsed() > LIMIT * 2);
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer)).await.unwrap().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("got 30 bytes"), "{answer}");
}
