//! One health check of one port, bounded by its timeout (connect included).
//!
//! A TCP connect alone does not tell a live app from a frozen one: the kernel
//! completes handshakes into the listen backlog of a stopped process. So an `http`
//! check reads a status line, a `tls` check reads the answer to a ClientHello, and a
//! `tcp` check reads what the cartridge says to expect; only a `tcp` check without
//! `send`/`expect` is a bare connect (what the cartridge asked for).

use std::time::Duration;

use stratos_model::{HealthCheckKind, ResolvedHealthCheck};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most bytes read looking for a status line or an expected answer.
const READ_LIMIT: usize = 16 * 1024;

/// Runs `check` against `host:port`; `Err` says what failed, for the member's log and event.
pub async fn probe(host: &str, port: u16, check: &ResolvedHealthCheck) -> Result<(), String> {
    if check.kind == HealthCheckKind::None {
        return Ok(());
    }
    let timeout = Duration::from_secs(check.timeout_seconds.max(1).into());
    match tokio::time::timeout(timeout, run(host, port, check)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("{} did not answer within {} s", what(host, port, check), timeout.as_secs())),
    }
}

/// "GET http://127.0.0.1:40123/health", "tcp 127.0.0.1:40123".
fn what(host: &str, port: u16, check: &ResolvedHealthCheck) -> String {
    match check.kind {
        HealthCheckKind::Http => format!("GET http://{host}:{port}{}", check.path),
        HealthCheckKind::Tls => format!("a TLS hello to {host}:{port}"),
        _ => format!("tcp {host}:{port}"),
    }
}

async fn run(host: &str, port: u16, check: &ResolvedHealthCheck) -> Result<(), String> {
    let mut stream =
        TcpStream::connect((host, port)).await.map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let _ = stream.set_nodelay(true);
    match check.kind {
        HealthCheckKind::Http => http(&mut stream, host, port, check).await,
        HealthCheckKind::Tls => {
            stream.write_all(&client_hello()).await.map_err(|e| format!("cannot send a TLS hello: {e}"))?;
            read_some(&mut stream).await.map(|_| ()).map_err(|e| format!("{} {e}", what(host, port, check)))
        }
        HealthCheckKind::Tcp => tcp(&mut stream, host, port, check).await,
        HealthCheckKind::None => Ok(()),
    }
}

async fn http(stream: &mut TcpStream, host: &str, port: u16, check: &ResolvedHealthCheck) -> Result<(), String> {
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: stratos-agent-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        check.path
    );
    let what = what(host, port, check);
    stream.write_all(request.as_bytes()).await.map_err(|e| format!("{what}: cannot send the request: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let read = stream.read_buf(&mut buf).await.map_err(|e| format!("{what}: {e}"))?;
        if let Some(code) = status_code(&buf).map_err(|e| format!("{what}: {e}"))? {
            return judge(code, &check.expected_statuses).map_err(|e| format!("{what}: {e}"));
        }
        if read == 0 {
            return Err(format!("{what}: the connection closed without an HTTP response"));
        }
        if buf.len() >= READ_LIMIT {
            return Err(format!("{what}: no status line in the first {READ_LIMIT} bytes"));
        }
    }
}

/// The status code once the status line is in `buf`; `None` until then.
fn status_code(buf: &[u8]) -> Result<Option<u16>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        // The status line is parsed before the headers: a partial head may have it.
        Ok(_) => Ok(response.code),
        // Too many headers still means a status line came.
        Err(httparse::Error::TooManyHeaders) => Ok(response.code),
        Err(e) => Err(format!("the answer is not HTTP ({e})")),
    }
}

/// Alive: a status below 500, or one of `expected` when the cartridge lists them.
pub fn judge(code: u16, expected: &[u16]) -> Result<(), String> {
    let ok = if expected.is_empty() { code < 500 } else { expected.contains(&code) };
    if ok {
        Ok(())
    } else if expected.is_empty() {
        Err(format!("answered {code}"))
    } else {
        Err(format!("answered {code}, expected one of {expected:?}"))
    }
}

async fn tcp(stream: &mut TcpStream, host: &str, port: u16, check: &ResolvedHealthCheck) -> Result<(), String> {
    let what = what(host, port, check);
    if let Some(send) = &check.send {
        stream.write_all(send.as_bytes()).await.map_err(|e| format!("{what}: cannot send: {e}"))?;
    }
    match (&check.expect, &check.send) {
        (Some(expect), _) => {
            let mut buf = Vec::with_capacity(256);
            loop {
                if contains(&buf, expect.as_bytes()) {
                    return Ok(());
                }
                if buf.len() >= READ_LIMIT {
                    return Err(format!("{what}: {expect:?} not in the first {READ_LIMIT} bytes of the answer"));
                }
                let read = stream.read_buf(&mut buf).await.map_err(|e| format!("{what}: {e}"))?;
                if read == 0 {
                    return Err(format!(
                        "{what}: the connection closed before {expect:?} came (got {:?})",
                        String::from_utf8_lossy(&buf[..buf.len().min(200)])
                    ));
                }
            }
        }
        (None, Some(_)) => read_some(stream).await.map(|_| ()).map_err(|e| format!("{what} {e}")),
        (None, None) => Ok(()),
    }
}

/// Reads at least one byte.
async fn read_some(stream: &mut TcpStream) -> Result<usize, String> {
    let mut buf = [0u8; 512];
    match stream.read(&mut buf).await {
        Ok(0) => Err("closed the connection without answering".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("failed: {e}")),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A TLS 1.2 ClientHello (TLS 1.3 cipher suites offered too) that any TLS server
/// answers, with a ServerHello or an alert: either proves the process is running. The
/// handshake is never finished, so nothing in it is secret.
fn client_hello() -> Vec<u8> {
    const SUITES: &[u16] = &[0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0x009c, 0x009d];
    let mut extensions = Vec::new();
    // supported_groups: x25519, secp256r1, secp384r1.
    extensions.extend_from_slice(&[0x00, 0x0a, 0x00, 0x08, 0x00, 0x06, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18]);
    // ec_point_formats: uncompressed.
    extensions.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256.
    extensions.extend_from_slice(&[0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01]);
    let mut body = vec![0x03, 0x03]; // TLS 1.2
    body.extend((0..32u8).map(|i| i.wrapping_mul(37).wrapping_add(11))); // random
    body.push(0); // no session id
    body.extend_from_slice(&((SUITES.len() * 2) as u16).to_be_bytes());
    for suite in SUITES {
        body.extend_from_slice(&suite.to_be_bytes());
    }
    body.extend_from_slice(&[0x01, 0x00]); // compression: null
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(&extensions);
    let mut handshake = vec![0x01]; // client_hello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01]; // handshake record, TLS 1.0 for compatibility
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_below_500_are_alive_unless_listed() {
        assert!(judge(200, &[]).is_ok());
        assert!(judge(404, &[]).is_ok(), "a 404 still comes from a running app");
        assert_eq!(judge(503, &[]), Err("answered 503".into()));
        assert!(judge(204, &[200, 204]).is_ok());
        assert_eq!(judge(404, &[200]), Err("answered 404, expected one of [200]".into()));
    }

    #[test]
    fn the_status_line_is_enough() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\nContent-Le"), Ok(Some(200)));
        assert_eq!(status_code(b"HTTP/1.1 50"), Ok(None));
        assert_eq!(status_code(b""), Ok(None));
        assert!(status_code(b"SSH-2.0-OpenSSH\r\n").is_err());
    }

    #[test]
    fn the_client_hello_is_well_formed() {
        let hello = client_hello();
        let record_len = u16::from_be_bytes([hello[3], hello[4]]) as usize;
        assert_eq!((hello[0], record_len), (0x16, hello.len() - 5));
        let handshake_len = u32::from_be_bytes([0, hello[6], hello[7], hello[8]]) as usize;
        assert_eq!((hello[5], handshake_len), (0x01, record_len - 4));
    }

    #[test]
    fn substrings() {
        assert!(contains(b"+PONG\r\n", b"PONG"));
        assert!(!contains(b"+PON", b"PONG"));
    }
}
