//! The threads that serve proxied connections: one per CPU, each running a
//! single-threaded tokio runtime.
//!
//! A client connection and the member connections its requests use (each worker has
//! its own [`Pool`](crate::pool::Pool), whose connections are driven by tasks on the
//! same thread) stay on one thread, like an nginx worker: handing a request from the
//! client's task to the member connection's task and back is a queue push, not a
//! cross-thread wake-up, and the threads share nothing on the request path but the
//! routing table and the member counters. On the process's work-stealing runtime,
//! those hand-offs cost about a fifth of the proxy's CPU time per request (measured).
//!
//! The workers are shared by every load balancer in the process and live as long as it
//! does, so connections outlive the [`Lb`](crate::Lb) that accepted them (they drain).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use tokio::runtime::Handle;

pub(crate) struct Workers {
    workers: Vec<Worker>,
}

struct Worker {
    runtime: Handle,
    /// Connections being served, to send the next one to the least busy worker.
    connections: AtomicUsize,
}

/// The process's workers, started on first use.
pub(crate) fn workers() -> &'static Workers {
    static WORKERS: OnceLock<Workers> = OnceLock::new();
    WORKERS.get_or_init(|| Workers::start(std::thread::available_parallelism().map_or(1, |n| n.get())))
}

impl Workers {
    fn start(count: usize) -> Workers {
        let workers = (0..count)
            .map(|i| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime for a load balancer worker");
                let handle = runtime.handle().clone();
                std::thread::Builder::new()
                    .name(format!("stratos-lb-{i}"))
                    .spawn(move || runtime.block_on(std::future::pending::<()>()))
                    .expect("a load balancer worker thread");
                Worker { runtime: handle, connections: AtomicUsize::new(0) }
            })
            .collect();
        Workers { workers }
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Runs `task` on worker `index`.
    pub fn spawn(&self, index: usize, task: impl Future<Output = ()> + Send + 'static) {
        self.workers[index].runtime.spawn(task);
    }

    /// Runs the connection `serve(worker index)` on the worker with the fewest connections.
    /// `serve` is called there, so sockets it makes are registered with that worker.
    pub fn serve<F, Fut>(&'static self, serve: F)
    where
        F: FnOnce(usize) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (index, worker) = self
            .workers
            .iter()
            .enumerate()
            .min_by_key(|(_, w)| w.connections.load(Ordering::Relaxed))
            .expect("at least one worker");
        worker.connections.fetch_add(1, Ordering::Relaxed);
        worker.runtime.spawn(async move {
            let _done = Done(&worker.connections);
            serve(index).await;
        });
    }
}

/// Counts a connection as finished when dropped (also when its task is cancelled).
struct Done(&'static AtomicUsize);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
