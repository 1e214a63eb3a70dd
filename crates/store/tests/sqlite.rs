//! The store against real SQLite files.

mod common;

use std::path::Path;

use serde_json::json;
use stratos_store::{Store, StoreError};

fn db_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("data").join("stratos.db")
}

#[tokio::test]
async fn sqlite_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&db_path(&dir)).await.unwrap();
    assert!(matches!(store, Store::Sqlite(_)));
    common::check_empty(&store).await;
    common::round_trip(&store).await;
}

#[tokio::test]
async fn sqlite_restart_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = Store::open_sqlite(&path).await.unwrap();
    common::write_everything(&store).await;
    let copy = store.clone();
    drop(store);
    drop(copy);

    // Reopen the same file, three ways of naming it.
    let reopened = Store::open_sqlite(&path).await.unwrap();
    common::check_everything(&reopened).await;
    drop(reopened);
    let by_url = Store::open(&format!("sqlite://{}", path.display())).await.unwrap();
    common::check_everything(&by_url).await;
    drop(by_url);
    let by_path = Store::open(path.to_str().unwrap()).await.unwrap();
    common::check_everything(&by_path).await;
}

/// Not a test of its own: the child process of `sqlite_restart_across_processes`.
#[tokio::test]
async fn child_writer() {
    common::child_writer().await;
}

#[tokio::test]
async fn sqlite_restart_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    assert!(!path.exists());

    common::write_in_child_process(&format!("sqlite://{}", path.display()));

    // The child exited without closing: its last writes may still be only in the WAL.
    let wal = Path::new(&format!("{}-wal", path.display())).exists();
    println!("after the child exited: database exists {}, WAL file exists {wal}", path.exists());
    let store = Store::open_sqlite(&path).await.unwrap();
    common::check_everything(&store).await;
}

#[tokio::test]
async fn sqlite_corrupt_json_is_an_error_naming_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = Store::open_sqlite(&path).await.unwrap();
    store.put(3, "cartridge", "good", &json!({"type": "good", "category": "x"})).await.unwrap();
    store.put(4, "cartridge", "fine", &json!({"type": "fine", "category": "x"})).await.unwrap();

    // Another connection (as another tool would, while the platform is stopped: the
    // store holds the file exclusively) writes a body that is not JSON.
    drop(store);
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    raw.execute(
        "INSERT INTO documents (tenant_id, collection, id, body) VALUES (3, 'cartridge', 'bad', '{not json')",
        [],
    )
    .unwrap();
    drop(raw);
    let store = Store::open_sqlite(&path).await.unwrap();

    let err = store.get(3, "cartridge", "bad").await.unwrap_err();
    assert!(matches!(err, StoreError::CorruptDocument { tenant: 3, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("cartridge/bad") && msg.contains("tenant 3") && msg.contains("not valid JSON"), "{msg}");
    for msg in [
        store.list(3, "cartridge").await.unwrap_err().to_string(),
        store.list_all_tenants("cartridge").await.unwrap_err().to_string(),
        store.load_definitions(3).await.unwrap_err().to_string(),
    ] {
        assert!(msg.contains("cartridge/bad"), "{msg}");
    }
    // The rest of the store still works.
    assert_eq!(store.get(3, "cartridge", "good").await.unwrap().unwrap()["type"], "good");
    assert_eq!(store.list(4, "cartridge").await.unwrap().len(), 1);
    assert!(store.delete(3, "cartridge", "bad").await.unwrap());
    assert_eq!(store.list(3, "cartridge").await.unwrap().len(), 1);
}

#[tokio::test]
async fn sqlite_invalid_typed_documents_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&db_path(&dir)).await.unwrap();
    common::invalid_typed_documents(&store).await;
}

#[tokio::test]
async fn sqlite_open_urls_describe_and_errors() {
    let dir = tempfile::tempdir().unwrap();

    // sqlite:// URL: parent directories are created; describe is absolute.
    let path = dir.path().join("a").join("b").join("s.db");
    let store = Store::open(&format!("sqlite://{}", path.display())).await.unwrap();
    assert!(path.exists());
    let canonical = std::fs::canonicalize(&path).unwrap();
    assert_eq!(store.describe(), format!("sqlite:{}", canonical.display()));
    assert!(format!("{store:?}").contains("sqlite:"));
    drop(store);
    let journal: String = {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(journal, "wal");
    // The schema_version table exists and holds one row.
    let versions: Vec<i64> = {
        let raw = rusqlite::Connection::open(&path).unwrap();
        let mut stmt = raw.prepare("SELECT version FROM schema_version").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    };
    assert_eq!(versions, vec![1]);
    // Reopening is idempotent (no second version row, no error).
    drop(Store::open_sqlite(&path).await.unwrap());
    let count: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 1);

    // A relative plain path works too (relative to the working directory, the
    // package directory under cargo test: put it in the workspace's target/).
    let rel = format!("../../target/stratos-store-test-{}/relative.db", std::process::id());
    let opened = Store::open(&rel).await;
    assert!(opened.is_ok(), "{opened:?}");
    assert!(opened.unwrap().describe().ends_with("/relative.db"));
    let _ = std::fs::remove_dir_all(Path::new(&rel).parent().unwrap());

    // Unknown schemes are refused rather than taken as file names.
    let err = Store::open("mysql://root:hunter2@db/stratos").await.unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(matches!(Store::open("sqlite://").await.unwrap_err(), StoreError::UnsupportedUrl { .. }));
    assert!(matches!(Store::open("  ").await.unwrap_err(), StoreError::UnsupportedUrl { .. }));

    // A file that is not a database.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![0x42u8; 8192]).unwrap();
    let err = Store::open_sqlite(&junk).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("cannot open SQLite database {}: ", junk.display())), "{msg}");

    // A parent "directory" that is a file.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let err = Store::open_sqlite(&file.join("s.db")).await.unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
    assert!(err.to_string().contains("plain-file"), "{err}");

    // A database written by a newer Stratos is refused.
    let newer = dir.path().join("newer.db");
    Store::open_sqlite(&newer).await.unwrap();
    rusqlite::Connection::open(&newer).unwrap().execute("UPDATE schema_version SET version = 99", []).unwrap();
    let err = Store::open_sqlite(&newer).await.unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { found: 99, supported: 1, .. }), "{err:?}");
}

fn assert_handle<T: Clone + Send + Sync + 'static>() {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_writers_and_two_handles_on_one_file() {
    assert_handle::<Store>();
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let one = Store::open_sqlite(&path).await.unwrap();
    let two = one.clone(); // a second handle, as a second component of the platform has

    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { one.clone() } else { two.clone() };
        tasks.push(tokio::spawn(async move {
            let id = format!("m{i:02}");
            store.put(1, "member", &id, &json!({"id": id, "i": i})).await.unwrap();
            store.put(1, "member", &id, &json!({"id": id, "i": i, "again": true})).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for store in [&one, &two] {
        let all = store.list(1, "member").await.unwrap();
        assert_eq!(all.len(), 40);
        assert!(all.iter().all(|v| v["again"] == true));
        assert_eq!(all[0]["id"], "m00");
        assert_eq!(all[39]["id"], "m39");
    }
}

#[tokio::test]
async fn sqlite_topology_per_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&db_path(&dir)).await.unwrap();
    common::topology_per_cluster(&store).await;
    common::batch_writes(&store).await;
}

#[tokio::test]
async fn sqlite_topology_migration_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&db_path(&dir)).await.unwrap();
    common::topology_migration(&store).await;
    let expected = store.load_topology().await.unwrap();
    drop(store);
    let reopened = Store::open_sqlite(&db_path(&dir)).await.unwrap();
    assert_eq!(reopened.load_topology().await.unwrap(), expected);
}

/// One process owns the file while it runs (EXCLUSIVE locking: no `-shm` mapped, which
/// SIGBUSed the process when truncated under it): a second opener is refused with a
/// clear error, and the first goes on working.
#[tokio::test]
async fn sqlite_store_is_one_process_s_and_maps_no_shared_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = Store::open_sqlite(&path).await.unwrap();
    store.put(1, "cartridge", "a", &json!({"type": "a"})).await.unwrap();
    let shm = Path::new(&format!("{}-shm", path.display())).to_path_buf();
    assert!(!shm.exists(), "the WAL index is in memory, not in {}", shm.display());
    // A -shm appearing (or truncated) under the running store changes nothing.
    std::fs::write(&shm, b"").unwrap();
    store.put(1, "cartridge", "b", &json!({"type": "b"})).await.unwrap();
    assert_eq!(store.list(1, "cartridge").await.unwrap().len(), 2);

    let err = Store::open_sqlite(&path).await.unwrap_err().to_string();
    assert!(err.contains("locked"), "{err}");
    assert_eq!(store.get(1, "cartridge", "a").await.unwrap().unwrap()["type"], "a");
    drop(store);
    let reopened = Store::open_sqlite(&path).await.unwrap();
    assert_eq!(reopened.list(1, "cartridge").await.unwrap().len(), 2, "nothing lost");
}

/// A database file this process cannot write is refused at open, naming it (as
/// root every file is writable, so the check is tried on a directory it cannot create in).
#[tokio::test]
async fn sqlite_unwritable_files_are_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    // A "-wal" that is a directory cannot be opened for writing, by root either.
    let path = dir.path().join("s.db");
    std::fs::create_dir_all(dir.path().join("s.db-wal")).unwrap();
    let err = Store::open_sqlite(&path).await.unwrap_err();
    assert!(matches!(err, StoreError::NotWritable { .. }), "{err:?}");
    assert!(err.to_string().contains("s.db-wal") && err.to_string().contains("not writable"), "{err}");
}

#[tokio::test]
async fn sqlite_platform_definitions_are_shared_with_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&db_path(&dir)).await.unwrap();
    common::platform_definitions_are_shared(&store).await;
}

#[tokio::test]
async fn sqlite_typed_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&db_path(&dir)).await.unwrap();
    common::typed_records(&store).await;
}

#[tokio::test]
async fn sqlite_unreadable_records_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = Store::open_sqlite(&path).await.unwrap();
    common::unreadable_records(&store).await;
    // A body that is not JSON at all (SQLite keeps TEXT), written by another tool
    // while the store is closed, is named the same way.
    drop(store);
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    raw.execute(
        "INSERT INTO documents (tenant_id, collection, id, body) VALUES (3, 'cluster-scale', 'x.web', '{not json')",
        [],
    )
    .unwrap();
    drop(raw);
    let store = Store::open_sqlite(&path).await.unwrap();
    let err = store.get_record::<stratos_model::ClusterScale>(3, "x.web").await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Unreadable(_)), "{err:?}");
    assert!(msg.contains("cluster-scale/x.web") && msg.contains("tenant 3"), "{msg}");
    let listed = store.list_records::<stratos_model::ClusterScale>(3).await.unwrap();
    assert!(listed.records.is_empty());
    assert_eq!(listed.unreadable.len(), 1);
}

#[tokio::test]
async fn sqlite_snapshot_and_import_into_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&db_path(&dir)).await.unwrap();
    let empty = Store::open_sqlite(&dir.path().join("restored").join("stratos.db")).await.unwrap();
    common::snapshot_and_import(&store, &empty).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_snapshot_is_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&db_path(&dir)).await.unwrap();
    common::snapshot_is_consistent(&store).await;
}
