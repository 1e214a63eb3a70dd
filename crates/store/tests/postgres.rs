//! The store against a real PostgreSQL server, given by `STRATOS_TEST_POSTGRES`
//! (a postgres:// URL). Without it these tests fail, unless `STRATOS_SKIP_POSTGRES=1`.
//! `scripts/postgres-setup.sh` starts a local server and prints the URL.
//!
//! Every test works in a schema of its own (`options=-csearch_path=…` in the
//! URL), dropped at its end, so that tests run in parallel and reruns pass.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use stratos_store::{Store, StoreError};

const URL_VAR: &str = "STRATOS_TEST_POSTGRES";
const SKIP_VAR: &str = "STRATOS_SKIP_POSTGRES";

/// The server's URL; `None` (after printing "skipped: …") when skipping is asked for.
fn server_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ if std::env::var(SKIP_VAR).as_deref() == Ok("1") => {
            println!("skipped: {URL_VAR} is not set and {SKIP_VAR}=1");
            None
        }
        _ => panic!(
            "{URL_VAR} is not set: these tests need a PostgreSQL server. Start one and export its URL with \
             `eval \"$(scripts/postgres-setup.sh)\"` (as root on Debian 12), or \
             `export {URL_VAR}=postgres://USER:PASSWORD@HOST:5432/DB` (a role allowed to CREATE SCHEMA); \
             or set {SKIP_VAR}=1 to skip them"
        ),
    }
}

/// A schema of its own for one test, dropped when the test ends (even by a panic).
struct TestSchema {
    server: String,
    name: String,
}

impl TestSchema {
    async fn create(server: &str) -> TestSchema {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() % 1_000_000_000;
        let name = format!("stratos_test_{}_{nanos}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let client = connect(server).await;
        client.batch_execute(&format!("CREATE SCHEMA {name}")).await.expect("CREATE SCHEMA");
        TestSchema { server: server.to_owned(), name }
    }

    /// The server URL with this schema as the search path.
    fn url(&self) -> String {
        let sep = if self.server.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", self.server, self.name)
    }

    async fn tables(&self) -> Vec<String> {
        let client = connect(&self.server).await;
        let rows = client
            .query(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
                &[&self.name],
            )
            .await
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop runs inside the test's runtime: clean up on a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok((client, conn)) = tokio_postgres::connect(&server, tokio_postgres::NoTls).await {
                    tokio::spawn(conn);
                    let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).await;
                }
            });
        })
        .join();
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {URL_VAR}: {e:?}"));
    tokio::spawn(conn);
    client
}

#[tokio::test]
async fn postgres_round_trip() {
    let Some(server) = server_url() else { return };
    let schema = TestSchema::create(&server).await;
    let store = Store::open(&schema.url()).await.unwrap();
    assert!(matches!(store, Store::Postgres(_)));
    assert_eq!(schema.tables().await, vec!["documents", "schema_version"], "tables land in the test's schema");
    common::check_empty(&store).await;
    common::round_trip(&store).await;
}

#[tokio::test]
async fn postgres_restart_in_process() {
    let Some(server) = server_url() else { return };
    let schema = TestSchema::create(&server).await;
    let store = Store::open_postgres(&schema.url()).await.unwrap();
    common::write_everything(&store).await;
    drop(store); // closes the connection

    let reopened = Store::open(&schema.url()).await.unwrap();
    common::check_everything(&reopened).await;
    // postgresql:// is the same thing.
    let url = schema.url();
    let alt = Store::open(&url.replacen("postgres://", "postgresql://", 1)).await.unwrap();
    common::check_everything(&alt).await;
}

/// Not a test of its own: the child process of `postgres_restart_across_processes`.
#[tokio::test]
async fn child_writer() {
    common::child_writer().await;
}

#[tokio::test]
async fn postgres_restart_across_processes() {
    let Some(server) = server_url() else { return };
    let schema = TestSchema::create(&server).await;
    common::write_in_child_process(&schema.url());
    let store = Store::open(&schema.url()).await.unwrap();
    common::check_everything(&store).await;
}

#[tokio::test]
async fn postgres_invalid_typed_documents_are_errors() {
    let Some(server) = server_url() else { return };
    let schema = TestSchema::create(&server).await;
    let store = Store::open(&schema.url()).await.unwrap();
    common::invalid_typed_documents(&store).await;
}

#[tokio::test]
async fn postgres_platform_definitions_are_shared_with_tenants() {
    let Some(server) = server_url() else { return };
    let schema = TestSchema::create(&server).await;
    let store = Store::open(&schema.url()).await.unwrap();
    common::platform_definitions_are_shared(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_opens_and_writers() {
    let Some(server) = server_url() else { return };
    let schema = TestSchema::create(&server).await;
    // Components starting together on an empty database all create the schema.
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let url = schema.url();
            tokio::spawn(async move { Store::open_postgres(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for o in opens {
        stores.push(o.await.unwrap().unwrap());
    }
    let mut tasks = Vec::new();
    for i in 0..30 {
        let store = stores[i % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("m{i:02}");
            store.put(1, "member", &id, &serde_json::json!({"id": id})).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = stores[0].list(1, "member").await.unwrap();
    assert_eq!(all.len(), 30);
    assert_eq!(all[0]["id"], "m00");

    // One version row, whoever created the tables.
    let client = connect(&schema.url()).await;
    let n: i64 = client.query_one("SELECT count(*) FROM schema_version", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
    // A database from a newer Stratos is refused.
    client.batch_execute("UPDATE schema_version SET version = 99").await.unwrap();
    let err = Store::open(&schema.url()).await.unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { found: 99, .. }), "{err:?}");
}

#[tokio::test]
async fn postgres_describe_hides_password() {
    let Some(server) = server_url() else { return };
    let schema = TestSchema::create(&server).await;
    let store = Store::open(&schema.url()).await.unwrap();
    let config: tokio_postgres::Config = server.parse().unwrap();
    let described = store.describe();
    // No user info at all, so no password (which may equal the user or database name).
    assert!(described.starts_with("postgres://") && !described.contains('@'), "{described}");
    if let [tokio_postgres::config::Host::Tcp(host)] = config.get_hosts() {
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let db = config.get_dbname().or(config.get_user()).unwrap_or_default();
        assert_eq!(described, format!("postgres://{host}:{port}/{db}"));
    }
    assert_eq!(format!("{store:?}"), format!("Store({described:?})"));
}

/// Needs no server: connection and URL errors name the target without the password.
#[tokio::test]
async fn postgres_errors_hide_password() {
    // Nothing listens on port 1.
    let err = Store::open("postgres://stratos:s3cret-pw@127.0.0.1:1/stratosdb").await.unwrap_err();
    assert!(matches!(err, StoreError::ConnectPostgres { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("cannot connect to PostgreSQL postgres://127.0.0.1:1/stratosdb: "), "{msg}");
    assert!(!msg.contains("s3cret-pw") && !format!("{err:?}").contains("s3cret-pw"), "{msg}");

    for url in
        ["postgres://stratos:s3cret-pw@db:notaport/x", "postgresql://stratos:s3cret-pw@db/x?password=s3cret-pw&port=x"]
    {
        let err = Store::open(url).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidPostgresUrl { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("invalid PostgreSQL URL postgres") && !msg.contains("s3cret-pw"), "{msg}");
    }
}

#[tokio::test]
async fn postgres_topology_per_cluster() {
    let Some(server) = server_url() else { return };
    let schema = TestSchema::create(&server).await;
    let store = Store::open(&schema.url()).await.unwrap();
    common::topology_per_cluster(&store).await;
    common::batch_writes(&store).await;
}

#[tokio::test]
async fn postgres_topology_migration() {
    let Some(server) = server_url() else { return };
    let schema = TestSchema::create(&server).await;
    let store = Store::open(&schema.url()).await.unwrap();
    common::topology_migration(&store).await;
}

#[tokio::test]
async fn postgres_typed_records() {
    let Some(server) = server_url() else { return };
    let schema = TestSchema::create(&server).await;
    let store = Store::open(&schema.url()).await.unwrap();
    common::typed_records(&store).await;
}

#[tokio::test]
async fn postgres_unreadable_records_are_named_errors() {
    let Some(server) = server_url() else { return };
    let schema = TestSchema::create(&server).await;
    let store = Store::open(&schema.url()).await.unwrap();
    common::unreadable_records(&store).await;
}

#[tokio::test]
async fn postgres_snapshot_and_import_into_an_empty_store() {
    let Some(server) = server_url() else { return };
    let (schema, restored) = (TestSchema::create(&server).await, TestSchema::create(&server).await);
    let store = Store::open(&schema.url()).await.unwrap();
    let empty = Store::open(&restored.url()).await.unwrap();
    common::snapshot_and_import(&store, &empty).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_snapshot_is_consistent() {
    let Some(server) = server_url() else { return };
    let schema = TestSchema::create(&server).await;
    let store = Store::open(&schema.url()).await.unwrap();
    common::snapshot_is_consistent(&store).await;
}
