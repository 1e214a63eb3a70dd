//! HTTP/1.1 message handling through the proxy, against real members: request bodies,
//! every response framing, pipelining, and the requests handed to the general path
//! (chunked and `Expect` bodies, HTTP/1.0).

mod support;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use stratos_lb::LbConfig;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A body sent as the chunks given (hyper frames it chunked: it has no length).
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }
}

type Either = http_body_util::Either<Full<Bytes>, Chunks>;

/// A member that echoes request bodies (`/echo`), answers in chunks (`/chunked`) or
/// with a large body (`/big`), and says how the request reached it.
async fn echo_member() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let path = req.uri().path().to_string();
                let method = req.method().to_string();
                let length = req.headers().get("content-length").map(|v| v.to_str().unwrap().to_string());
                let chunked_in = req.headers().contains_key("transfer-encoding");
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let body: Either = match path.as_str() {
                    "/chunked" => Either::Right(Chunks(
                        [&b"first,"[..], b"second,", b"third"].into_iter().map(Bytes::from_static).collect(),
                    )),
                    "/big" => Either::Left(Full::new(Bytes::from(vec![b'x'; 1 << 20]))),
                    _ => Either::Left(Full::new(body)),
                };
                let response = Response::builder()
                    .header("x-seen-method", method)
                    .header("x-seen-length", length.unwrap_or_else(|| "none".into()))
                    .header("x-seen-chunked", chunked_in.to_string())
                    .body(body)
                    .unwrap();
                Ok::<_, Infallible>(response)
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    port
}

/// A member that reads one request per connection and answers `body` with no length:
/// the response ends when it closes the connection (an old-style server).
async fn closing_member(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = stream.write_all(format!("HTTP/1.1 200 OK\r\nX-Old: yes\r\n\r\n{body}").as_bytes()).await;
            });
        }
    });
    port
}

async fn env(members: Vec<(&str, u16)>) -> Env {
    Env::start(web_topology(&members), LbConfig::default()).await
}

/// Reads one response from `stream` (`Content-Length` or `Transfer-Encoding: chunked`
/// bodies): its head and its body, decoded.
async fn read_response(stream: &mut TcpStream, buffered: &mut Vec<u8>) -> (String, Vec<u8>) {
    async fn fill(stream: &mut TcpStream, buffered: &mut Vec<u8>) {
        let mut chunk = [0u8; 65536];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "closed mid-response; have {:?}", String::from_utf8_lossy(buffered));
        buffered.extend_from_slice(&chunk[..n]);
    }
    let head_end = loop {
        if let Some(i) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        fill(stream, buffered).await;
    };
    let head = String::from_utf8(buffered.drain(..head_end).collect()).unwrap();
    let header = |name: &str| {
        head.lines().find_map(|l| l.split_once(": ").filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v))
    };
    let mut body = Vec::new();
    if let Some(length) = header("content-length") {
        let length: usize = length.parse().unwrap();
        while buffered.len() < length {
            fill(stream, buffered).await;
        }
        body.extend(buffered.drain(..length));
    } else if header("transfer-encoding") == Some("chunked") {
        loop {
            let line_end = loop {
                if let Some(i) = buffered.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                fill(stream, buffered).await;
            };
            let size = usize::from_str_radix(std::str::from_utf8(&buffered[..line_end]).unwrap(), 16).unwrap();
            buffered.drain(..line_end + 2);
            while buffered.len() < size + 2 {
                fill(stream, buffered).await;
            }
            body.extend(buffered.drain(..size));
            buffered.drain(..2);
            if size == 0 {
                break;
            }
        }
    }
    (head, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_framings_and_pipelined_requests_are_relayed_whole() {
    let env = env(vec![("echo.test", echo_member().await)]).await;
    let mut stream = TcpStream::connect(env.addr(HTTP_PORT)).await.unwrap();
    let mut buffered = Vec::new();

    // A body with a length, larger than one read, on a keep-alive connection.
    let upload: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let head = format!("POST /echo HTTP/1.1\r\nHost: echo.test\r\nContent-Length: {}\r\n\r\n", upload.len());
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&upload).await.unwrap();
    let (head, body) = read_response(&mut stream, &mut buffered).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("x-seen-length: 300000"), "{head}");
    assert_eq!(body, upload, "the body came back changed");

    // A chunked response is relayed chunked; a 1 MiB one whole; HEAD has no body.
    stream.write_all(b"GET /chunked HTTP/1.1\r\nHost: echo.test\r\n\r\n").await.unwrap();
    let (head, body) = read_response(&mut stream, &mut buffered).await;
    assert!(head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
    assert_eq!(body, b"first,second,third");
    stream.write_all(b"GET /big HTTP/1.1\r\nHost: echo.test\r\n\r\n").await.unwrap();
    let (_, body) = read_response(&mut stream, &mut buffered).await;
    assert_eq!(body.len(), 1 << 20);
    stream.write_all(b"HEAD /big HTTP/1.1\r\nHost: echo.test\r\n\r\n").await.unwrap();
    let mut head_only = Vec::new();
    while !head_only.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1);
        head_only.push(byte[0]);
    }
    let head_only = String::from_utf8(head_only).unwrap();
    assert!(head_only.contains("content-length: 1048576"), "{head_only}");

    // Three requests in one write: three answers, in order.
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: echo.test\r\nContent-Length: 3\r\n\r\none\
              POST /echo HTTP/1.1\r\nHost: echo.test\r\nContent-Length: 3\r\n\r\ntwo\
              GET /echo HTTP/1.1\r\nHost: echo.test\r\n\r\n",
        )
        .await
        .unwrap();
    assert_eq!(read_response(&mut stream, &mut buffered).await.1, b"one");
    assert_eq!(read_response(&mut stream, &mut buffered).await.1, b"two");
    let (head, body) = read_response(&mut stream, &mut buffered).await;
    assert!(head.contains("x-seen-method: GET"), "{head}");
    assert!(body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_expect_and_http10_requests_are_served_too() {
    let env = env(vec![("echo.test", echo_member().await)]).await;
    let addr = env.addr(HTTP_PORT);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut buffered = Vec::new();

    // A plain request first, then a chunked upload on the same connection, then another.
    stream.write_all(b"GET /echo HTTP/1.1\r\nHost: echo.test\r\n\r\n").await.unwrap();
    assert!(read_response(&mut stream, &mut buffered).await.0.starts_with("HTTP/1.1 200"));
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: echo.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = read_response(&mut stream, &mut buffered).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"hello world");
    stream.write_all(b"POST /echo HTTP/1.1\r\nHost: echo.test\r\nContent-Length: 4\r\n\r\nnext").await.unwrap();
    assert_eq!(read_response(&mut stream, &mut buffered).await.1, b"next");

    // Expect: 100-continue gets the interim answer, then the echo.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: echo.test\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).await.unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"data").await.unwrap();
    let (head, body) = read_response(&mut stream, &mut Vec::new()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"data");

    // HTTP/1.0.
    let answer = raw(addr, b"GET /echo HTTP/1.0\r\nHost: echo.test\r\n\r\n", Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_ending_with_its_connection_closes_the_client_connection_after_it() {
    let env = env(vec![("old.test", closing_member("the whole story").await)]).await;
    let answer = raw(env.addr(HTTP_PORT), b"GET / HTTP/1.1\r\nHost: old.test\r\n\r\n", Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("X-Old: yes\r\n"), "{answer}");
    // No length to tell where the body ends: the proxy closes, as the member did.
    assert!(answer.contains("Connection: close\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nthe whole story"), "{answer}");
    // And the member's closed connection is not reused for the next request.
    for _ in 0..3 {
        let answer =
            raw(env.addr(HTTP_PORT), b"GET / HTTP/1.1\r\nHost: old.test\r\n\r\n", Duration::from_secs(5)).await;
        assert!(answer.ends_with("the whole story"), "{answer}");
    }
}
