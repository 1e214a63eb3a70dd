//! Small HTTP clients on loopback, written against the wire so that a test sees exactly what
//! a server sent (no client library fixing things up), and one reader of HTTP/1.1 responses.

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A minimal HTTP/1.0 GET (the server closes; no chunked bodies): (status, body).
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_get_with(port, path, None)
}

/// [`http_get`] with a bearer token.
pub fn http_get_with(port: u16, path: &str, token: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    split_answer(&answer)
}

/// One `GET path` with `Host: host` to `addr` on a fresh connection (`Connection: close`),
/// read until the server closes; `connect` and `read` bound those steps: (status, body).
pub fn get_host(
    addr: SocketAddr,
    host: &str,
    path: &str,
    connect: Duration,
    read: Duration,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, connect)?;
    stream.set_read_timeout(Some(read))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    split_answer(&answer)
}

/// [`http_get`] on tokio.
pub async fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    split_answer(&answer)
}

/// (status, body) of a whole answer.
fn split_answer(answer: &str) -> std::io::Result<(u16, String)> {
    let (head, body) = answer.split_once("\r\n\r\n").ok_or_else(|| std::io::Error::other("no HTTP head"))?;
    Ok((status_of(head)?, body.to_owned()))
}

fn status_of(status_line: &str) -> std::io::Result<u16> {
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("status line {status_line:?}")))
}

/// Reads one HTTP/1.1 response (a `Content-Length`, chunked, or until-close body):
/// (status, body, whether the server closes the connection after it).
pub fn read_response(reader: &mut impl BufRead) -> std::io::Result<(u16, String, bool)> {
    let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let eof = |what: &str| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, what.to_owned());
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(eof("the connection closed before an answer"));
    }
    let status = status_of(&line)?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(eof("the connection closed in the head"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else { continue };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_ascii_lowercase());
        match name.as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.contains("chunked"),
            "connection" => close = value.contains("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad(format!("chunk size {line:?}")))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
        close = true;
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned(), close))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> std::io::Result<(u16, String, bool)> {
        read_response(&mut std::io::BufReader::new(text.as_bytes()))
    }

    #[test]
    fn bodies_by_length_chunks_and_close() {
        assert_eq!(read("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloXX").unwrap(), (200, "hello".into(), false));
        let chunked = "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n";
        assert_eq!(read(chunked).unwrap(), (404, "abcde".into(), true));
        assert_eq!(read("HTTP/1.1 200 OK\r\n\r\nto the end").unwrap(), (200, "to the end".into(), true));
    }

    #[test]
    fn cut_or_bad_answers_are_errors() {
        assert_eq!(read("").unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(read("HTTP/1.1 200 OK\r\nContent-").unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(read("garbage\r\n\r\n").unwrap_err().kind(), std::io::ErrorKind::InvalidData);
        assert!(read("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
    }

    #[test]
    fn whole_answers() {
        assert_eq!(split_answer("HTTP/1.0 503 x\r\nA: b\r\n\r\nbody").unwrap(), (503, "body".into()));
        assert!(split_answer("HTTP/1.0 200 OK\r\n").is_err());
    }
}
