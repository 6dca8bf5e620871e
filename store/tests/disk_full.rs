//! The embedded store on a full disk (a small tmpfs; these tests run as root): writes are
//! refused with etcd's NOSPACE error and alarm, reads and watches keep answering from memory,
//! the writer thread does not spin, freeing space lets writes through again and clears the
//! alarm, and nothing acknowledged is lost (nor anything refused kept) across a restart.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use nomos_store::embedded::AlarmKind;
use nomos_store::{
    EmbeddedStore, KeySelector, PutOptions, RangeOptions, Store, StoreError, WatchOptions,
};

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    _parent: tempfile::TempDir,
    mount: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        assert!(
            nix_is_root(),
            "the disk-full tests mount a tmpfs and must run as root (CI does)"
        );
        let parent = tempfile::tempdir().unwrap();
        let mount = parent.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .status()
            .expect("running mount");
        assert!(status.success(), "mounting a tmpfs on {}", mount.display());
        Tmpfs {
            _parent: parent,
            mount,
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// CPU time (clock ticks) the store's writer thread has used so far.
fn writer_cpu_ticks() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("nomos-store-wri") {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the command name: state is field 3, utime 14 and stime 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok());
        total += ticks(14).unwrap_or(0) + ticks(15).unwrap_or(0);
    }
    total
}

/// The CPU checks count every store writer thread of this process: tests here run one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Asserts the store writer threads stay (nearly) idle for a second.
async fn assert_writer_idle(why: &str) {
    let before = writer_cpu_ticks();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = writer_cpu_ticks() - before;
    assert!(
        used < 20,
        "the writer thread is not busy {why} ({used} ticks in a second)"
    );
}

fn key(i: usize) -> Vec<u8> {
    format!("k{i:05}").into_bytes()
}

/// Writes 8 KiB values until the store refuses one; returns how many were acknowledged.
async fn write_until_full(store: &EmbeddedStore) -> usize {
    for i in 0..10_000 {
        match store
            .put(key(i), vec![b'x'; 8192], PutOptions::default())
            .await
        {
            Ok(_) => {}
            Err(StoreError::NoSpace) => return i,
            Err(e) => panic!("a write on a full disk failed with {e}, not NOSPACE"),
        }
    }
    panic!("10 000 writes of 8 KiB fitted on a tmpfs of a few MiB");
}

async fn keys_in(store: &EmbeddedStore) -> Vec<Vec<u8>> {
    let resp = store
        .range(
            KeySelector::prefix("k"),
            RangeOptions {
                keys_only: true,
                ..Default::default()
            },
        )
        .await
        .expect("reads answer while the disk is full");
    resp.kvs.into_iter().map(|kv| kv.key).collect()
}

/// Retries a write until the store takes it again (the probe runs about once a second).
async fn write_once_there_is_room(store: &EmbeddedStore, k: Vec<u8>) {
    for _ in 0..100 {
        match store
            .put(k.clone(), b"after".to_vec(), PutOptions::default())
            .await
        {
            Ok(_) => return,
            Err(StoreError::NoSpace) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("a write after freeing space failed with {e}"),
        }
    }
    panic!("writes were still refused 20 s after space was freed");
}

fn filler(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    std::fs::write(&path, vec![0u8; 1024 * 1024]).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_reads_and_recovers_once_space_is_freed() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let disk = Tmpfs::mount("4m");
    let filler = filler(&disk.mount);
    let data = disk.mount.join("data");
    let store = EmbeddedStore::open(&data).unwrap();
    let mut watch = store
        .watch(KeySelector::prefix("k"), WatchOptions::default())
        .await
        .unwrap();

    let acked = write_until_full(&store).await;
    assert!(acked > 0, "some writes fitted before the disk filled");
    assert_eq!(store.alarms(), vec![AlarmKind::NoSpace]);
    let refused = store
        .put(key(acked + 1), b"v".to_vec(), PutOptions::default())
        .await;
    assert!(matches!(refused, Err(StoreError::NoSpace)), "{refused:?}");
    assert_eq!(
        refused.unwrap_err().to_string(),
        "etcdserver: mvcc: database space exceeded"
    );
    let expected: Vec<Vec<u8>> = (0..acked).map(key).collect();
    assert_eq!(
        keys_in(&store).await,
        expected,
        "reads show every acknowledged write, nothing else"
    );
    let mut watched = 0;
    while watched < acked {
        let resp = tokio::time::timeout(Duration::from_secs(30), watch.next())
            .await
            .expect("the watch delivers the acknowledged writes")
            .expect("the watch is open")
            .expect("the watch answers");
        watched += resp.events.len();
    }
    assert_eq!(
        watched, acked,
        "the watch saw exactly the acknowledged writes"
    );

    assert_writer_idle("while the disk is full").await;

    std::fs::remove_file(filler).unwrap();
    write_once_there_is_room(&store, b"k-after".to_vec()).await;
    assert!(
        store.alarms().is_empty(),
        "the alarm cleared once a write succeeded"
    );
    drop(store);

    let reopened = EmbeddedStore::open(&data).unwrap();
    let mut after_restart = expected.clone();
    after_restart.push(b"k-after".to_vec());
    after_restart.sort();
    assert_eq!(
        keys_in(&reopened).await,
        after_restart,
        "after a restart: every acknowledged write, and none of the refused ones"
    );
}

#[tokio::test]
async fn an_alarm_raised_by_hand_refuses_writes_until_disarmed() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let store = EmbeddedStore::in_memory();
    let lease = store.lease_grant(1, 0).await.unwrap();
    store
        .put(b"k1".to_vec(), b"v".to_vec(), PutOptions::default())
        .await
        .unwrap();
    store.activate_alarm(AlarmKind::NoSpace);
    assert_eq!(store.alarms(), vec![AlarmKind::NoSpace]);
    let refused = store
        .put(b"k2".to_vec(), b"v".to_vec(), PutOptions::default())
        .await;
    assert!(matches!(refused, Err(StoreError::NoSpace)), "{refused:?}");
    assert_eq!(keys_in(&store).await, vec![b"k1".to_vec()]);
    let refused = store.lease_grant(10, 0).await;
    assert!(matches!(refused, Err(StoreError::NoSpace)), "{refused:?}");
    // The lease's deadline passes while writes are refused: it waits, and nothing spins.
    assert_writer_idle("under an alarm with an overdue lease").await;
    assert_writer_idle("under an alarm with an overdue lease").await;
    assert!(
        store.lease_list().await.unwrap().contains(&lease.id),
        "leases do not expire while writes are refused"
    );
    store.deactivate_alarm(AlarmKind::NoSpace);
    assert!(store.alarms().is_empty());
    store
        .put(b"k2".to_vec(), b"v".to_vec(), PutOptions::default())
        .await
        .expect("writes are accepted once the alarm is disarmed");
}
