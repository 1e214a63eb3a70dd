//! A PostgreSQL server for the tests that need one: its URL from STRATOS_TEST_POSTGRES
//! (`eval "$(scripts/postgres-setup.sh | tail -n 1)"`), and a schema of its own per test.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The server's URL; `None` (after printing "skipped") when STRATOS_SKIP_POSTGRES=1 and
/// none is given; a failure otherwise.
pub fn server_url() -> Option<String> {
    match std::env::var("STRATOS_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ if std::env::var("STRATOS_SKIP_POSTGRES").as_deref() == Ok("1") => {
            println!("skipped: STRATOS_TEST_POSTGRES is not set and STRATOS_SKIP_POSTGRES=1");
            None
        }
        _ => panic!(
            "STRATOS_TEST_POSTGRES is not set: this test needs a PostgreSQL server. Start one with \
             `eval \"$(scripts/postgres-setup.sh | tail -n 1)\"`, or export \
             STRATOS_TEST_POSTGRES=postgres://USER:PASSWORD@HOST:5432/DB (a role allowed to CREATE SCHEMA); \
             or set STRATOS_SKIP_POSTGRES=1 to skip it"
        ),
    }
}

/// A PostgreSQL schema of its own, dropped at the end (even by a panic).
pub struct PgSchema {
    server: String,
    name: String,
    runtime: tokio::runtime::Runtime,
}

impl PgSchema {
    pub fn create(server: &str) -> PgSchema {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() % 1_000_000_000;
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("stratos_cli_e2e_{}_{nanos}_{n}", std::process::id());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(PgSchema::execute(server, &format!("CREATE SCHEMA {name}")));
        PgSchema { server: server.to_owned(), name, runtime }
    }

    async fn execute(server: &str, sql: &str) {
        let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to STRATOS_TEST_POSTGRES: {e:?}"));
        tokio::spawn(connection);
        client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    /// The server URL with this schema as the search path.
    pub fn url(&self) -> String {
        let sep = if self.server.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", self.server, self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        let server = self.server.clone();
        let _ = self.runtime.block_on(async move {
            tokio::time::timeout(Duration::from_secs(10), async move {
                if let Ok((client, connection)) = tokio_postgres::connect(&server, tokio_postgres::NoTls).await {
                    tokio::spawn(connection);
                    let _ = client.batch_execute(&sql).await;
                }
            })
            .await
        });
    }
}
