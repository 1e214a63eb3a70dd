//! A keep-alive HTTP/1.1 load generator: client threads each sending `GET /load/<n>` with a
//! `Host` header to 127.0.0.1:`port`, one request after another, until stopped (or dropped).

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::http::read_response;

/// What a [`Load`] saw.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Requests answered 200.
    pub ok: u64,
    /// Requests answered otherwise, or lost to a transport error (connecting, writing, reading).
    pub failed: u64,
    /// The first failures: (when, after the load started; what went wrong).
    pub failures: Vec<(Duration, String)>,
    /// Who answered (the first word after `member ` in a 200's body, as `stratos sample-http`
    /// and the benches' backends answer) → (its first answer, after the load started; answers).
    pub served: BTreeMap<String, (Duration, u64)>,
    /// Answers by the word after ` version ` in a 200's body (`stratos sample-http
    /// --version`), `-` when none.
    pub versions: BTreeMap<String, u64>,
    /// Every request's (start, after the load started; how long it took to be answered), in
    /// the order they ended: for percentiles over a window.
    pub latencies: Vec<(Duration, Duration)>,
}

impl LoadReport {
    /// When `member` first answered, after the load started.
    pub fn first_served(&self, member: &str) -> Option<Duration> {
        self.served.get(member).map(|(t, _)| *t)
    }
}

/// The clients; a request that does not end in 200 counts as failed, and the client then
/// reconnects.
pub struct Load {
    port: u16,
    host: String,
    started: Instant,
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<LoadReport>>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(port: u16, host: &str, clients: usize) -> Load {
        let mut load = Load {
            port,
            host: host.to_owned(),
            started: Instant::now(),
            stop: Arc::default(),
            report: Arc::default(),
            clients: Vec::new(),
        };
        load.add_clients(clients);
        load
    }

    /// More clients (a rising load).
    pub fn add_clients(&mut self, n: usize) {
        for _ in 0..n {
            let (host, started, stop, report) =
                (self.host.clone(), self.started, self.stop.clone(), self.report.clone());
            let port = self.port;
            self.clients.push(std::thread::spawn(move || client(port, &host, started, &stop, &report)));
        }
    }

    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// What the clients saw so far.
    pub fn report(&self) -> LoadReport {
        self.report.lock().unwrap().clone()
    }

    /// Stops the clients once their requests in flight are answered.
    pub fn stop(mut self) -> LoadReport {
        self.halt();
        self.report()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients.drain(..) {
            let _ = client.join();
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.halt();
    }
}

const KEPT_FAILURES: usize = 20;

fn client(port: u16, host: &str, started: Instant, stop: &AtomicBool, report: &Mutex<LoadReport>) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let fail = |what: String| {
        let mut r = report.lock().unwrap();
        r.failed += 1;
        if r.failures.len() < KEPT_FAILURES {
            r.failures.push((started.elapsed(), what));
        }
    };
    let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
                    let reader = BufReader::new(stream.try_clone().unwrap());
                    conn = Some((stream, reader));
                }
                Err(e) => {
                    fail(format!("cannot connect to 127.0.0.1:{port}: {e}"));
                    // Connecting again at once would spin while nothing listens.
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
        }
        let (stream, reader) = conn.as_mut().unwrap();
        n += 1;
        let request = format!("GET /load/{n} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let sent = started.elapsed();
        let answer = stream.write_all(request.as_bytes()).and_then(|()| read_response(reader));
        match answer {
            Ok((200, body, close)) => {
                let member = body.strip_prefix("member ").and_then(|b| b.split_whitespace().next()).unwrap_or("?");
                let version =
                    body.split_once(" version ").and_then(|(_, v)| v.split_whitespace().next()).unwrap_or("-");
                let mut r = report.lock().unwrap();
                r.ok += 1;
                let at = started.elapsed();
                r.latencies.push((sent, at - sent));
                *r.versions.entry(version.to_owned()).or_insert(0) += 1;
                r.served.entry(member.to_owned()).or_insert((at, 0)).1 += 1;
                if close {
                    conn = None;
                }
            }
            Ok((status, body, close)) => {
                fail(format!("answered {status}: {}", body.trim()));
                if close {
                    conn = None;
                }
            }
            Err(e) => {
                fail(format!("transport error: {e}"));
                conn = None;
            }
        }
    }
}
