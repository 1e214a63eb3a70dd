//! Upgraded connections (WebSocket) through the proxy, against a real member that
//! switches protocols: the 101 comes back, bytes flow both ways (including those the
//! client sent right behind its request head), the tunnel counts as in flight while
//! open, and a member that declines the upgrade answers like any other request.

mod support;

use std::time::{Duration, Instant};

use stratos_lb::LbConfig;
use stratos_model::topology::ServiceType;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_are_tunnelled_to_the_member() {
    let member = upgrading_member().await;
    let topo = topology(
        &[("web", ServiceType::SingleTenant)],
        vec![cluster("chat.web", -1234, &["chat.test"], vec![http_member("chat.web", "chat-1", member)])],
    );
    let env = Env::start(topo, LbConfig::default()).await;
    let addr = env.addr(HTTP_PORT);

    // A plain request first, on the same connection: the forwarding path, then the upgrade.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /plain HTTP/1.1\r\nHost: chat.test\r\n\r\n").await.unwrap();
    let mut got = Vec::new();
    read_until(&mut stream, &mut got, b"forwarded for Some(\"127.0.0.1\")").await;
    assert!(got.starts_with(b"HTTP/1.1 426"), "{}", String::from_utf8_lossy(&got));

    // The upgrade, with the first bytes of the new protocol in the same write.
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: chat.test\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nearly ",
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    // The 101 and the member's answer to the early bytes may come in one read.
    read_until(&mut stream, &mut got, b"\r\n\r\nEARLY ").await;
    let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    assert!(head.contains("connection: upgrade"), "{head}");
    assert!(head.contains("x-forwarded-for-seen: 127.0.0.1"), "{head}");
    // The member's handshake answer reaches the client unchanged (RFC 6455's example key).
    assert!(head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "{head}");
    for message in ["hello ", "world "] {
        stream.write_all(message.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        read_until(&mut stream, &mut got, message.to_ascii_uppercase().as_bytes()).await;
    }
    // Open tunnels are load: the member has one request in flight until the client leaves.
    assert_eq!(env.lb.member("chat-1").unwrap().in_flight, 1);
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while env.lb.member("chat-1").unwrap().in_flight != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.lb.member("chat-1").unwrap().in_flight, 0);

    // A protocol the member does not speak: its refusal comes back as it is.
    let answer = raw(
        addr,
        b"GET /ws HTTP/1.1\r\nHost: chat.test\r\nConnection: Upgrade, close\r\nUpgrade: h2c\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
    assert!(answer.contains("no upgrade to Some(\"h2c\")"), "{answer}");
}
