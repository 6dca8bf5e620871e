//! The embedded store's files lost or damaged: a data directory whose database is missing,
//! empty, truncated or overwritten is refused with an error naming the file (never opened as a
//! new, empty store), a new directory gets a database and an identity file, and a crash image
//! (the files as a `kill -9` leaves them) keeps every acknowledged write.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use nomos_store::embedded::{DB_FILE, ID_FILE};
use nomos_store::{EmbeddedStore, KeySelector, PutOptions, RangeOptions, Store, StoreError};

const KEYS: usize = 300;

fn wal(dir: &Path) -> std::path::PathBuf {
    dir.join(format!("{DB_FILE}-wal"))
}

/// Writes `KEYS` keys (`k000`…) with values big enough to span many pages.
async fn fill(store: &EmbeddedStore) {
    for i in 0..KEYS {
        store
            .put(
                format!("k{i:03}").into_bytes(),
                vec![b'v'; 200],
                PutOptions::default(),
            )
            .await
            .expect("writing to a healthy store");
    }
}

async fn count(store: &EmbeddedStore) -> usize {
    store
        .range(KeySelector::prefix("k"), RangeOptions::default())
        .await
        .unwrap()
        .kvs
        .len()
}

/// A data directory with `KEYS` keys, closed cleanly.
async fn closed_store(dir: &Path) {
    let store = EmbeddedStore::open(dir).unwrap();
    fill(&store).await;
    drop(store);
    assert!(dir.join(DB_FILE).exists() && dir.join(ID_FILE).exists());
}

/// Copies the store's files while it runs: what a `kill -9` (or power loss) leaves on disk.
fn crash_image(from: &Path, to: &Path) {
    for name in [
        DB_FILE.to_string(),
        format!("{DB_FILE}-wal"),
        ID_FILE.to_string(),
    ] {
        if from.join(&name).exists() {
            std::fs::copy(from.join(&name), to.join(&name)).unwrap();
        }
    }
}

#[track_caller]
fn assert_refused(result: Result<EmbeddedStore, StoreError>, problem: &str) {
    match result {
        Err(e @ StoreError::DataDirRefused { .. }) => {
            let text = e.to_string();
            assert!(text.contains(DB_FILE), "the error names the file: {text}");
            assert!(text.contains(problem), "the error says {problem:?}: {text}");
            assert!(
                text.contains("restore") && text.contains("remove the data directory"),
                "the error says what to do: {text}"
            );
        }
        Err(e) => panic!("expected the data directory to be refused, got {e}"),
        Ok(_) => panic!("expected the data directory to be refused, but the store opened"),
    }
}

#[tokio::test]
async fn a_new_data_dir_gets_a_database_and_an_identity_file_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let id = store.store_id().unwrap().to_string();
    fill(&store).await;
    drop(store);
    let id_file = std::fs::read_to_string(dir.path().join(ID_FILE)).unwrap();
    assert_eq!(id_file.trim(), id);
    let reopened = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(reopened.store_id(), Some(id.as_str()));
    assert_eq!(count(&reopened).await, KEYS);
}

#[tokio::test]
async fn a_missing_database_beside_an_identity_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path()).await;
    std::fs::remove_file(dir.path().join(DB_FILE)).unwrap();
    assert_refused(EmbeddedStore::open(dir.path()), "missing");
    assert!(
        !dir.path().join(DB_FILE).exists(),
        "a refused open creates no database"
    );
}

#[tokio::test]
async fn a_zero_length_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path()).await;
    std::fs::File::create(dir.path().join(DB_FILE)).unwrap();
    assert_refused(EmbeddedStore::open(dir.path()), "empty");
    // Also without the identity file (a data dir of an earlier version).
    std::fs::remove_file(dir.path().join(ID_FILE)).unwrap();
    assert_refused(EmbeddedStore::open(dir.path()), "empty");
}

#[tokio::test]
async fn a_database_truncated_mid_page_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path()).await;
    let file = OpenOptions::new()
        .write(true)
        .open(dir.path().join(DB_FILE))
        .unwrap();
    let len = file.metadata().unwrap().len();
    assert!(
        len > 8 * 4096,
        "the database spans many pages ({len} bytes)"
    );
    file.set_len(len / 2 + 1000).unwrap();
    drop(file);
    assert_refused(EmbeddedStore::open(dir.path()), "damaged");
}

#[tokio::test]
async fn a_database_with_a_page_overwritten_by_random_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path()).await;
    let mut file = OpenOptions::new()
        .write(true)
        .read(true)
        .open(dir.path().join(DB_FILE))
        .unwrap();
    let len = file.metadata().unwrap().len();
    let page = (len / 4096 / 2) * 4096;
    // A fixed xorshift sequence: the same bytes every run.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    file.seek(SeekFrom::Start(page)).unwrap();
    file.write_all(&noise).unwrap();
    drop(file);
    assert_refused(EmbeddedStore::open(dir.path()), "damaged");
}

#[tokio::test]
async fn a_crash_image_keeps_every_acknowledged_write() {
    let live = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(live.path()).unwrap();
    fill(&store).await;
    crash_image(live.path(), image.path());
    drop(store);
    assert!(wal(image.path()).exists(), "a running store has a log file");
    let recovered = EmbeddedStore::open(image.path()).unwrap();
    assert_eq!(count(&recovered).await, KEYS);
}

#[tokio::test]
async fn a_crash_image_whose_log_file_was_removed_is_refused() {
    let live = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(live.path()).unwrap();
    fill(&store).await;
    crash_image(live.path(), image.path());
    drop(store);
    std::fs::remove_file(wal(image.path())).unwrap();
    assert_refused(EmbeddedStore::open(image.path()), "write-ahead log");
}

#[tokio::test]
async fn a_torn_last_frame_in_the_log_loses_no_acknowledged_write() {
    let live = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(live.path()).unwrap();
    fill(&store).await;
    crash_image(live.path(), image.path());
    drop(store);
    // Half a frame of a batch that never committed (and so was never acknowledged).
    let mut log = OpenOptions::new()
        .append(true)
        .open(wal(image.path()))
        .unwrap();
    log.write_all(&[0xa5; 2000]).unwrap();
    drop(log);
    let recovered = EmbeddedStore::open(image.path()).unwrap();
    assert_eq!(count(&recovered).await, KEYS);
}

#[tokio::test]
async fn a_log_truncated_in_its_middle_recovers_a_consistent_prefix() {
    let live = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(live.path()).unwrap();
    fill(&store).await;
    crash_image(live.path(), image.path());
    drop(store);
    let log = OpenOptions::new()
        .write(true)
        .open(wal(image.path()))
        .unwrap();
    let len = log.metadata().unwrap().len();
    log.set_len(len / 2).unwrap();
    drop(log);
    // SQLite replays the commits before the cut and drops the rest: the store opens at an
    // older revision, every key it has is whole, and the keys are a prefix of those written.
    let recovered = EmbeddedStore::open(image.path()).unwrap();
    let kvs = recovered
        .range(KeySelector::prefix("k"), RangeOptions::default())
        .await
        .unwrap()
        .kvs;
    assert!(kvs.len() < KEYS, "the cut dropped the later commits");
    for (i, kv) in kvs.iter().enumerate() {
        assert_eq!(kv.key, format!("k{i:03}").into_bytes());
        assert_eq!(kv.value, vec![b'v'; 200]);
    }
}

#[tokio::test]
async fn a_database_of_an_earlier_version_without_identity_file_is_adopted() {
    let dir = tempfile::tempdir().unwrap();
    closed_store(dir.path()).await;
    std::fs::remove_file(dir.path().join(ID_FILE)).unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(count(&store).await, KEYS);
    let written = std::fs::read_to_string(dir.path().join(ID_FILE)).unwrap();
    assert_eq!(Some(written.trim()), store.store_id());
}

#[tokio::test]
async fn a_database_of_another_store_is_refused() {
    let one = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    closed_store(one.path()).await;
    closed_store(other.path()).await;
    std::fs::copy(other.path().join(DB_FILE), one.path().join(DB_FILE)).unwrap();
    assert_refused(EmbeddedStore::open(one.path()), "belongs to store");
}
