//! etcd's NOSPACE alarm through the real `etcdctl`, on an embedded store whose data directory is
//! a full tmpfs (these tests run as root): writes fail with etcd's error, reads answer,
//! `etcdctl alarm list` shows the alarm, and `etcdctl alarm disarm` after freeing space lets
//! writes through again.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use nomos_store::embedded::AlarmKind;
use nomos_store::{EmbeddedStore, PutOptions, Store, StoreError};
use nomos_store_server::{StoreServer, StoreServerConfig};
use support::etcdctl;

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    _parent: tempfile::TempDir,
    mount: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let root = std::fs::read_to_string("/proc/self/status")
            .map(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")))
            .unwrap_or(false);
        assert!(
            root,
            "the alarm tests mount a tmpfs and must run as root (CI does)"
        );
        let parent = tempfile::tempdir().unwrap();
        let mount = parent.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .status()
            .expect("running mount")
            .success();
        assert!(ok, "mounting a tmpfs on {}", mount.display());
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

async fn fill_disk(store: &EmbeddedStore) {
    for i in 0..10_000 {
        let put = store
            .put(
                format!("k{i:05}").into_bytes(),
                vec![b'x'; 8192],
                PutOptions::default(),
            )
            .await;
        match put {
            Ok(_) => {}
            Err(StoreError::NoSpace) => return,
            Err(e) => panic!("a write on a full disk failed with {e}, not NOSPACE"),
        }
    }
    panic!("10 000 writes of 8 KiB fitted on a tmpfs of a few MiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_lists_the_nospace_alarm_of_a_full_disk_and_disarm_clears_it() {
    let disk = Tmpfs::mount("4m");
    let filler = disk.mount.join("filler");
    std::fs::write(&filler, vec![0u8; 1024 * 1024]).unwrap();
    let store = Arc::new(EmbeddedStore::open(&disk.mount.join("data")).unwrap());
    let server = StoreServer::bind(StoreServerConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap()
        .with_embedded(store.clone());
    let endpoint = server.client_url();
    let member = server.identity().member_id.to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve(store.clone() as Arc<dyn Store>, async move {
        let _ = stopped.await;
    }));

    fill_disk(&store).await;
    let put = etcdctl(&endpoint, &["put", "new", "v"], None).await;
    assert!(!put.ok, "a write on a full disk fails: {put:?}");
    assert!(
        put.stderr
            .contains("etcdserver: mvcc: database space exceeded"),
        "with etcd's error: {put:?}"
    );
    let get = etcdctl(&endpoint, &["get", "k00000", "--print-value-only"], None).await;
    assert!(
        get.ok && get.stdout.starts_with("xxxx"),
        "reads answer: {get:?}"
    );
    let list = etcdctl(&endpoint, &["alarm", "list"], None).await;
    assert_eq!(
        list.stdout.trim(),
        format!("memberID:{member} alarm:NOSPACE"),
        "{list:?}"
    );

    std::fs::remove_file(&filler).unwrap();
    let disarm = etcdctl(&endpoint, &["alarm", "disarm"], None).await;
    assert!(disarm.ok, "{disarm:?}");
    assert!(
        disarm.stdout.contains("alarm:NOSPACE"),
        "disarm names what it cleared: {disarm:?}"
    );
    assert!(store.alarms().is_empty());
    let put = etcdctl(&endpoint, &["put", "new", "v"], None).await;
    assert!(
        put.ok,
        "writes succeed once space is freed and the alarm disarmed: {put:?}"
    );
    let list = etcdctl(&endpoint, &["alarm", "list"], None).await;
    assert_eq!(list.stdout.trim(), "", "{list:?}");

    // An operator may raise the alarm by hand, too; only a disarm clears it.
    store.activate_alarm(AlarmKind::NoSpace);
    let put = etcdctl(&endpoint, &["put", "other", "v"], None).await;
    assert!(put.stderr.contains("database space exceeded"), "{put:?}");
    let _ = stop.send(());
    serving.await.unwrap().unwrap();
}
