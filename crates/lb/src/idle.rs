//! Idle keep-alive connections to members, by member authority: what both the
//! forwarding path's pool ([`crate::member_pool::MemberPool`]) and hyper's ([`crate::pool::Pool`])
//! keep between two requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How long a connection may stay idle: closed after one to two of these.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection that can say whether it may take another request.
pub(crate) trait Reusable {
    fn usable(&self) -> bool;
}

pub(crate) struct IdleConnections<T> {
    /// By member authority (`host:port`); the last released is reused first.
    idle: Mutex<HashMap<Arc<str>, Vec<Idle<T>>>>,
}

struct Idle<T> {
    conn: T,
    /// Idle through a whole sweep already: closed at the next one.
    swept: bool,
}

impl<T> Default for IdleConnections<T> {
    fn default() -> Self {
        IdleConnections { idle: Mutex::default() }
    }
}

impl<T: Reusable> IdleConnections<T> {
    pub fn put(&self, authority: &Arc<str>, conn: T) {
        let mut idle = self.idle.lock().unwrap();
        let entry = Idle { conn, swept: false };
        match idle.get_mut(authority) {
            Some(list) => list.push(entry),
            None => {
                idle.insert(authority.clone(), vec![entry]);
            }
        }
    }

    /// The idle connection to `authority` released last, dropping those no longer usable.
    pub fn take(&self, authority: &str) -> Option<T> {
        let mut idle = self.idle.lock().unwrap();
        let list = idle.get_mut(authority)?;
        while let Some(Idle { conn, .. }) = list.pop() {
            if conn.usable() {
                return Some(conn);
            }
        }
        None
    }

    /// Closes the connections idle since the previous sweep, and those no longer usable.
    fn sweep(&self) {
        let mut idle = self.idle.lock().unwrap();
        for list in idle.values_mut() {
            list.retain_mut(|i| {
                let keep = !i.swept && i.conn.usable();
                i.swept = true;
                keep
            });
        }
        idle.retain(|_, list| !list.is_empty());
    }
}

/// Every [`IDLE_TIMEOUT`], sweeps the idle connections of `owner` (`of` finds them)
/// until `owner` is gone.
pub(crate) async fn sweep<P, T: Reusable>(owner: Weak<P>, of: fn(&P) -> &IdleConnections<T>) {
    let mut tick = tokio::time::interval(IDLE_TIMEOUT);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(owner) = owner.upgrade() else { return };
        of(&owner).sweep();
    }
}
