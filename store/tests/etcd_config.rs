//! The etcd backend's connection options against real etcd servers: user and password with
//! etcd auth enabled, and TLS with client certificates.

use nomos_store::test_util::{EtcdProcess, TestCerts};
use nomos_store::{EtcdConfig, EtcdStore, KeySelector, PutOptions, RangeOptions, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password_authenticate_against_etcd_auth() {
    let etcd = tokio::task::spawn_blocking(EtcdProcess::start)
        .await
        .unwrap();
    etcd.etcdctl(&["user", "add", "root:rootpw"]);
    etcd.etcdctl(&["auth", "enable"]);
    let mut config = etcd.config();
    config.user = Some(("root".into(), "rootpw".into()));
    let store = EtcdStore::connect(config).await.unwrap();
    store
        .put(b"secured".to_vec(), b"yes".to_vec(), PutOptions::default())
        .await
        .unwrap();
    let got = store
        .range(KeySelector::key("secured"), RangeOptions::default())
        .await
        .unwrap();
    assert_eq!(got.kvs[0].value, b"yes");

    let anonymous = EtcdStore::connect(etcd.config()).await.unwrap();
    let err = anonymous
        .put(b"secured".to_vec(), b"no".to_vec(), PutOptions::default())
        .await;
    assert!(err.is_err(), "a client without credentials is refused");
    let mut wrong = etcd.config();
    wrong.user = Some(("root".into(), "nope".into()));
    assert!(
        EtcdStore::connect(wrong).await.is_err(),
        "a wrong password is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_client_certificate_connects_and_without_one_fails() {
    let certs_dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(certs_dir.path());
    let etcd = tokio::task::spawn_blocking(move || EtcdProcess::start_tls(certs))
        .await
        .unwrap();
    let store = etcd.connect().await;
    store
        .put(b"tls".to_vec(), b"ok".to_vec(), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        store
            .range(KeySelector::key("tls"), RangeOptions::default())
            .await
            .unwrap()
            .count,
        1
    );

    let plain =
        EtcdStore::connect(EtcdConfig::new([etcd.endpoint().replace("https", "http")])).await;
    let refused = match plain {
        Err(_) => true,
        Ok(s) => s
            .range(KeySelector::key("tls"), RangeOptions::default())
            .await
            .is_err(),
    };
    assert!(refused, "a client without TLS is refused");
    let mut half = etcd.config();
    half.key_file = None;
    assert!(
        EtcdStore::connect(half).await.is_err(),
        "a certificate without its key is a configuration error"
    );
}
