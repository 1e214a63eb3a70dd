//! Ports on loopback.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A port nobody listens on now, never handed out twice in this process (so that two
/// servers a test starts one after the other do not get the same one).
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if GIVEN.lock().unwrap().get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` (within `timeout`).
pub fn accepts(port: u16, timeout: Duration) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), timeout).is_ok()
}

/// Waits until `what` listens on 127.0.0.1:`port`; panics after 20 s.
pub fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !accepts(port, Duration::from_millis(100)) {
        assert!(Instant::now() < deadline, "{what} did not listen on {port} within 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_and_not_given_twice() {
        let a = free_port();
        let b = free_port();
        assert_ne!(a, b);
        assert!(!accepts(a, Duration::from_millis(200)));
        let listener = TcpListener::bind(("127.0.0.1", a)).unwrap();
        wait_listening(a, "the test's listener");
        drop(listener);
    }
}
