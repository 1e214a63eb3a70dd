//! The app's output: every line goes to `app.log` in the member directory and, as a
//! `LogEvent`, to the bus. Shipping never blocks the app: when the bus cannot keep up
//! (the broker is away), lines still reach `app.log` and the events are dropped.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stratos_bus::events::LogEvent;
use stratos_bus::{now_millis, Bus, MemberRef};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn, Instrument};

/// Longest line shipped; the rest of a longer line is cut off.
pub const MAX_LINE: usize = 16 * 1024;
/// Lines waiting for the bus before new ones are dropped.
const QUEUE: usize = 4096;
/// Lines of stderr kept to explain a failed start.
const TAIL: usize = 10;

enum Shipment {
    Line(LogEvent),
    Flush(oneshot::Sender<()>),
}

/// Where log lines go; cheap to clone.
#[derive(Clone)]
pub struct LogSink {
    file: Arc<Mutex<File>>,
    tx: mpsc::Sender<Shipment>,
    member: MemberRef,
    tenant_id: i64,
    dropped: Arc<AtomicU64>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl LogSink {
    /// Opens `path` for appending and starts shipping lines on `bus`.
    pub fn open(path: &Path, bus: Bus, member: MemberRef, tenant_id: i64) -> std::io::Result<LogSink> {
        let file = File::options().create(true).append(true).open(path)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(ship(bus, rx).in_current_span());
        Ok(LogSink {
            file: Arc::new(Mutex::new(file)),
            tx,
            member,
            tenant_id,
            dropped: Arc::default(),
            stderr_tail: Arc::default(),
        })
    }

    /// Records one line of `stream` (`stdout` or `stderr`).
    pub fn line(&self, stream: &'static str, line: String) {
        self.record(stream, line, true);
    }

    /// A line from the agent itself, among the app's (on stderr, marked as the agent's).
    pub fn agent(&self, message: &str) {
        self.record("stderr", format!("[stratos-agent] {message}"), false);
    }

    fn record(&self, stream: &'static str, line: String, app: bool) {
        let line = truncate(line, MAX_LINE);
        {
            let mut file = self.file.lock().unwrap();
            if let Err(e) = file.write_all(line.as_bytes()).and_then(|_| file.write_all(b"\n")) {
                debug!(error = %e, "cannot append to app.log");
            }
        }
        if app && stream == "stderr" {
            let mut tail = self.stderr_tail.lock().unwrap();
            if tail.len() == TAIL {
                tail.pop_front();
            }
            tail.push_back(line.clone());
        }
        let event = self.event(stream, line);
        if self.tx.try_send(Shipment::Line(event)).is_err() && self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            warn!("the event bus does not keep up with the app's output; dropping log events (app.log keeps them)");
        }
    }

    /// The event for a line, without recording it.
    pub fn event(&self, stream: &str, line: String) -> LogEvent {
        LogEvent {
            member: self.member.clone(),
            tenant_id: self.tenant_id,
            stream: stream.to_string(),
            line,
            timestamp: now_millis(),
        }
    }

    /// The last lines the app wrote on stderr.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.stderr_tail.lock().unwrap().iter().cloned().collect()
    }

    /// Waits (at most `timeout`) until every line recorded so far was handed to the bus.
    pub async fn flush(&self, timeout: Duration) {
        let (done, wait) = oneshot::channel();
        let _ = tokio::time::timeout(timeout, async {
            if self.tx.send(Shipment::Flush(done)).await.is_ok() {
                let _ = wait.await;
            }
        })
        .await;
    }
}

async fn ship(bus: Bus, mut rx: mpsc::Receiver<Shipment>) {
    while let Some(shipment) = rx.recv().await {
        match shipment {
            Shipment::Line(event) => match tokio::time::timeout(Duration::from_secs(5), bus.publish(&event)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(error = %e, "cannot publish a log event"),
                Err(_) => debug!("the event bus is busy; a log event waited 5 s"),
            },
            Shipment::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Cuts `line` to at most `max` bytes, on a character boundary.
pub fn truncate(mut line: String, max: usize) -> String {
    if line.len() > max {
        let mut end = max;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    line
}

/// Reads the next line of at most `max` bytes (the rest of a longer line is skipped, not
/// buffered), without its line ending; `None` at the end of the stream.
pub async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R, max: usize) -> std::io::Result<Option<String>> {
    let mut line = Vec::new();
    let mut any = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            break;
        }
        any = true;
        let (chunk, used, end) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = max.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        reader.consume(used);
        if end {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut reader = tokio::io::BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        while let Some(l) = read_line(&mut reader, max).await.unwrap() {
            out.push(l);
        }
        out
    }

    #[tokio::test]
    async fn splits_and_caps_lines() {
        assert_eq!(lines(b"one\ntwo\r\n\nlast", 100).await, ["one", "two", "", "last"]);
        assert_eq!(lines(b"abcdefghij\nxy\n", 3).await, ["abc", "xy"]);
        assert!(lines(b"", 3).await.is_empty());
        assert_eq!(lines(b"caf\xc3\xa9 \xff\n", 100).await, ["café \u{fffd}"]);
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("héllo".into(), 2), "h");
        assert_eq!(truncate("hello".into(), 10), "hello");
        assert_eq!(truncate("x".repeat(MAX_LINE + 10), MAX_LINE).len(), MAX_LINE);
    }
}
