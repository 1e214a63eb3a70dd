//! Waiting on a condition, with a deadline: never a fixed sleep.

use std::time::{Duration, Instant};

/// Polls `check` every 100 ms until it returns `Ok`, for at most `timeout`; panics with
/// `what` and the last error then.
pub fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(t) => return t,
            Err(e) if Instant::now() > deadline => panic!("{what}: not so within {timeout:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// [`eventually`] for async checks, polling every 20 ms without blocking the runtime.
pub async fn eventually_async<T>(
    timeout: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(t) => return t,
            Err(e) if Instant::now() > deadline => panic!("{what}: not so within {timeout:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_success() {
        let mut calls = 0;
        let got = eventually(Duration::from_secs(5), "three calls", || {
            calls += 1;
            if calls == 3 {
                Ok(calls)
            } else {
                Err(format!("{calls} calls"))
            }
        });
        assert_eq!(got, 3);
    }

    #[test]
    #[should_panic(expected = "never: not so within")]
    fn panics_with_the_last_error() {
        eventually::<()>(Duration::from_millis(50), "never", || Err("no".into()));
    }

    #[tokio::test]
    async fn async_checks() {
        let mut calls = 0;
        let got = eventually_async(Duration::from_secs(5), "two calls", async || {
            calls += 1;
            if calls == 2 {
                Ok("done")
            } else {
                Err("not yet".into())
            }
        })
        .await;
        assert_eq!(got, "done");
    }
}
