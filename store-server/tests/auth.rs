//! etcd's Auth service on the embedded store: `etcdctl user/role/auth` round-trips, what each
//! permission type and range allows and denies (get, put, delete, txn, watch, lease revoke),
//! tokens that die with their user or a re-enable, and users that survive a restart without
//! ever showing in the key space.

mod support;

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
};
use nomos_store::EmbeddedStore;
use nomos_store_server::{StoreServer, StoreServerConfig, StoreServerError};
use support::{etcdctl, Output};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const ROOT_PW: &str = "root-pw";

/// A store server over a durable embedded store in `dir`.
struct Served {
    endpoint: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), StoreServerError>>,
}

impl Served {
    async fn start(dir: &std::path::Path) -> Served {
        let store = Arc::new(EmbeddedStore::open(dir).expect("open the store"));
        let server = StoreServer::bind(StoreServerConfig::new("127.0.0.1:0".parse().unwrap()))
            .await
            .expect("bind")
            .with_embedded(store.clone());
        let endpoint = server.client_url();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(store, async move {
            let _ = stopped.await;
        }));
        Served {
            endpoint,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        let _ = (&mut self.task).await;
    }

    async fn ctl(&self, args: &[&str]) -> Output {
        etcdctl(&self.endpoint, args, None).await
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args).await;
        assert!(out.ok, "etcdctl {args:?} failed: {}", out.stderr);
        out.stdout
    }

    async fn fails(&self, args: &[&str], message: &str) {
        let out = self.ctl(args).await;
        assert!(
            !out.ok && out.stderr.contains(message),
            "etcdctl {args:?} should fail with {message:?}; got ok={} stdout={} stderr={}",
            out.ok,
            out.stdout,
            out.stderr
        );
    }

    async fn client(&self, user: Option<(&str, &str)>) -> Result<Client, etcd_client::Error> {
        let options = user.map(|(u, p)| ConnectOptions::new().with_user(u, p));
        Client::connect([self.endpoint.as_str()], options).await
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        self.task.abort();
    }
}

/// Root with its role, then auth enabled (etcdctl adds the root role itself, as on etcd).
async fn enable_with_root(s: &Served) {
    s.ok(&[
        "user",
        "add",
        "root",
        &format!("--new-user-password={ROOT_PW}"),
    ])
    .await;
    let out = s.ok(&["auth", "enable"]).await;
    assert!(out.contains("Authentication Enabled"), "{out}");
}

fn root() -> String {
    format!("--user=root:{ROOT_PW}")
}

fn message(e: etcd_client::Error) -> String {
    e.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_manages_users_roles_and_permissions_as_on_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let s = Served::start(dir.path()).await;
    s.fails(&["auth", "enable"], "root user does not exist")
        .await;
    s.ok(&["user", "add", "alice", "--new-user-password=a1"])
        .await;
    s.fails(
        &["user", "add", "alice", "--new-user-password=a1"],
        "user name already exists",
    )
    .await;
    s.ok(&["role", "add", "reader"]).await;
    s.fails(&["role", "add", "reader"], "role name already exists")
        .await;
    s.ok(&["role", "grant-permission", "reader", "read", "/k1"])
        .await;
    s.ok(&[
        "role",
        "grant-permission",
        "reader",
        "write",
        "--prefix",
        "/p/",
    ])
    .await;
    s.ok(&[
        "role",
        "grant-permission",
        "reader",
        "readwrite",
        "/a",
        "/c",
    ])
    .await;
    let role = s.ok(&["role", "get", "reader"]).await;
    assert!(role.contains("[/k1]") || role.contains("/k1"), "{role}");
    assert!(role.contains("[/p/, /p0) (prefix /p/)"), "{role}");
    assert!(role.contains("[/a, /c)"), "{role}");
    s.ok(&["user", "grant-role", "alice", "reader"]).await;
    s.fails(
        &["user", "grant-role", "alice", "nope"],
        "role name not found",
    )
    .await;
    let user = s.ok(&["user", "get", "alice"]).await;
    assert!(
        user.contains("User: alice") && user.contains("reader"),
        "{user}"
    );
    assert_eq!(s.ok(&["user", "list"]).await.trim(), "alice");
    assert_eq!(s.ok(&["role", "list"]).await.trim(), "reader");
    s.ok(&["role", "revoke-permission", "reader", "/k1"]).await;
    s.fails(
        &["role", "revoke-permission", "reader", "/k1"],
        "permission is not granted to the role",
    )
    .await;
    s.ok(&["user", "revoke-role", "alice", "reader"]).await;
    s.fails(
        &["user", "revoke-role", "alice", "reader"],
        "role is not granted to the user",
    )
    .await;
    s.ok(&["user", "passwd", "alice", "--interactive=false"])
        .await;

    enable_with_root(&s).await;
    // Management now needs root; no user at all is etcd's "user name is empty".
    s.fails(&["user", "list"], "user name is empty").await;
    s.fails(
        &["--user=alice:wrong", "user", "list"],
        "authentication failed, invalid user ID or password",
    )
    .await;
    let users = s.ok(&[&root(), "user", "list"]).await;
    assert_eq!(
        users.split_whitespace().collect::<Vec<_>>(),
        ["alice", "root"]
    );
    s.fails(
        &[&root(), "user", "delete", "root"],
        "invalid auth management",
    )
    .await;
    s.ok(&[&root(), "user", "delete", "alice"]).await;
    s.ok(&[&root(), "role", "delete", "reader"]).await;
    s.fails(&[&root(), "role", "get", "reader"], "role name not found")
        .await;
    s.ok(&[&root(), "auth", "disable"]).await;
    s.ok(&["user", "list"]).await;
    s.stop().await;
}

/// Root, and user `u` (password `pw`) holding: read on prefix `/r/`, write on prefix `/w/`,
/// readwrite on the range [`/rw/a`, `/rw/m`).
async fn setup_table(s: &Served) {
    enable_with_root(s).await;
    let r = root();
    for args in [
        vec!["role", "add", "t"],
        vec!["role", "grant-permission", "t", "read", "--prefix", "/r/"],
        vec!["role", "grant-permission", "t", "write", "--prefix", "/w/"],
        vec![
            "role",
            "grant-permission",
            "t",
            "readwrite",
            "/rw/a",
            "/rw/m",
        ],
        vec!["user", "add", "u", "--new-user-password=pw"],
        vec!["user", "grant-role", "u", "t"],
    ] {
        let mut all = vec![r.as_str()];
        all.extend(args);
        s.ok(&all).await;
    }
    for key in ["/r/1", "/w/1", "/rw/b", "/x/1"] {
        s.ok(&[&r, "put", key, "v"]).await;
    }
}

fn assert_denied<T: std::fmt::Debug>(result: Result<T, etcd_client::Error>, what: &str) {
    match result {
        Ok(v) => panic!("{what} should be denied, got {v:?}"),
        Err(e) => assert!(
            message(e).contains("etcdserver: permission denied"),
            "{what}"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_permission_allows_its_own_operations_on_its_own_range_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = Served::start(dir.path()).await;
    setup_table(&s).await;
    let mut c = s.client(Some(("u", "pw"))).await.expect("u connects");
    let prefix = || Some(GetOptions::new().with_prefix());

    // Range.
    assert_eq!(c.get("/r/1", None).await.unwrap().kvs().len(), 1);
    assert_eq!(c.get("/r/", prefix()).await.unwrap().kvs().len(), 1);
    assert_eq!(c.get("/rw/b", None).await.unwrap().kvs().len(), 1);
    assert_denied(c.get("/w/1", None).await, "reading a write-only key");
    assert_denied(c.get("/x/1", None).await, "reading an ungranted key");
    assert_denied(c.get("/r", prefix()).await, "reading wider than the grant");
    assert_denied(
        c.get("/rw/a", Some(GetOptions::new().with_range("/rw/z")))
            .await,
        "a range past the grant",
    );
    // Put and delete.
    c.put("/w/2", "v", None).await.expect("write granted");
    c.put("/rw/c", "v", None).await.expect("readwrite granted");
    assert_denied(c.put("/r/2", "v", None).await, "writing a read-only key");
    assert_denied(c.put("/x/2", "v", None).await, "writing an ungranted key");
    assert_denied(
        c.put("/w/3", "v", Some(PutOptions::new().with_prev_key()))
            .await,
        "prev_kv of a write-only key",
    );
    c.delete("/w/2", None).await.expect("delete granted");
    assert_denied(c.delete("/r/1", None).await, "deleting a read-only key");
    // Txn: every compare and every operation of both branches.
    let txn = Txn::new()
        .when([Compare::version("/r/1", CompareOp::Greater, 0)])
        .and_then([TxnOp::put("/w/4", "v", None)])
        .or_else([TxnOp::get("/rw/b", None)]);
    assert!(c.txn(txn).await.unwrap().succeeded());
    let compare_outside = Txn::new()
        .when([Compare::version("/x/1", CompareOp::Greater, 0)])
        .and_then([TxnOp::put("/w/5", "v", None)]);
    assert_denied(c.txn(compare_outside).await, "a compare outside the grant");
    let failure_branch = Txn::new()
        .when([Compare::version("/r/1", CompareOp::Greater, 0)])
        .and_then([TxnOp::put("/w/5", "v", None)])
        .or_else([TxnOp::delete("/x/1", None)]);
    assert_denied(
        c.txn(failure_branch).await,
        "an operation outside the grant in either branch",
    );
    // Watch: a read permission on the watched range.
    let mut events = c
        .watch("/r/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    s.ok(&[&root(), "put", "/r/9", "new"]).await;
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let resp = events.message().await.unwrap().expect("watch open");
            if let Some(ev) = resp.events().first() {
                return ev.kv().unwrap().key().to_vec();
            }
        }
    })
    .await
    .expect("the event arrives");
    assert_eq!(got, b"/r/9");
    let denied = c
        .watch("/x/", Some(WatchOptions::new().with_prefix()))
        .await;
    match denied {
        Err(e) => assert!(message(e).contains("permission denied")),
        Ok(mut stream) => {
            let resp = stream.message().await.unwrap().expect("an answer");
            assert!(resp.canceled(), "{resp:?}");
            assert!(
                resp.cancel_reason().contains("permission denied"),
                "{resp:?}"
            );
        }
    }
    // Compaction and user management are root's.
    assert_denied(c.compact(1, None).await, "compaction");
    assert_denied(c.user_list().await, "listing users");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_credentials_fail_with_etcds_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = Served::start(dir.path()).await;
    setup_table(&s).await;
    let wrong = s.client(Some(("u", "nope"))).await.map(|_| ());
    assert!(
        message(wrong.unwrap_err()).contains("authentication failed, invalid user ID or password")
    );
    let mut anonymous = s.client(None).await.unwrap();
    let e = anonymous.get("/r/1", None).await.unwrap_err();
    assert!(message(e).contains("user name is empty"));

    // A lease holding a key the user may not write cannot be revoked by it.
    let mut rootc = s.client(Some(("root", ROOT_PW))).await.unwrap();
    let lease = rootc.lease_grant(60, None).await.unwrap().id();
    rootc
        .put("/x/leased", "v", Some(PutOptions::new().with_lease(lease)))
        .await
        .unwrap();
    let mut c = s.client(Some(("u", "pw"))).await.unwrap();
    assert_denied(
        c.lease_revoke(lease).await,
        "revoking a lease on an ungranted key",
    );
    assert_denied(
        c.put("/w/l", "v", Some(PutOptions::new().with_lease(lease)))
            .await,
        "joining that lease",
    );

    // The token dies with its user.
    s.ok(&[&root(), "user", "delete", "u"]).await;
    let e = c.get("/r/1", None).await.unwrap_err();
    assert!(
        message(e).contains("invalid auth token"),
        "deleted user's token"
    );

    // Disabled: everything goes; enabled again: old tokens are void.
    let mut c2 = s.client(Some(("root", ROOT_PW))).await.unwrap();
    s.ok(&[&root(), "auth", "disable"]).await;
    anonymous
        .put("/x/free", "v", None)
        .await
        .expect("auth disabled");
    s.ok(&["auth", "enable"]).await;
    let e = c2.get("/x/free", None).await.unwrap_err();
    assert!(
        message(e).contains("invalid auth token"),
        "token from before the re-enable"
    );
    let e = anonymous.get("/x/free", None).await.unwrap_err();
    assert!(message(e).contains("user name is empty"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_survive_a_restart_and_never_show_in_the_key_space() {
    let dir = tempfile::tempdir().unwrap();
    let s = Served::start(dir.path()).await;
    setup_table(&s).await;
    let keys = s.ok(&[&root(), "get", "", "--prefix", "--keys-only"]).await;
    let listed: Vec<&str> = keys.split_whitespace().collect();
    assert_eq!(
        listed,
        ["/r/1", "/rw/b", "/w/1", "/x/1"],
        "only the data keys"
    );
    s.stop().await;

    let s = Served::start(dir.path()).await;
    s.fails(&["get", "/r/1"], "user name is empty").await;
    s.ok(&["--user=u:pw", "get", "/r/1"]).await;
    s.fails(&["--user=u:pw", "get", "/x/1"], "permission denied")
        .await;
    let roles = s.ok(&[&root(), "user", "get", "u"]).await;
    assert!(roles.contains('t'), "{roles}");
    s.stop().await;
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate with common name `cn`,
/// as PEM files in `dir`.
fn write_certs(dir: &std::path::Path, cn: &str) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(vec!["client".to_string()]).unwrap();
    client.distinguished_name.push(DnType::CommonName, cn);
    let client = client.signed_by(&client_key, &ca, &ca_key).unwrap();
    for (name, pem) in [
        ("ca.pem", ca.pem()),
        ("server.pem", server.pem()),
        ("server-key.pem", server_key.serialize_pem()),
        ("client.pem", client.pem()),
        ("client-key.pem", client_key.serialize_pem()),
    ] {
        std::fs::write(dir.join(name), pem).unwrap();
    }
}

/// With client certificates required and no token, the certificate's CN names the user
/// (etcd's `--client-cert-auth`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificates_common_name_is_its_user_when_no_token_is_sent() {
    use etcd_client::{Certificate, Identity, TlsOptions};
    use nomos_store::embedded::auth::EmbeddedAuth;
    use nomos_store::etcd::node_key_grants;

    for (cn, own_allowed) in [("nomos-node-n1", true), ("stranger", false)] {
        let dir = tempfile::tempdir().unwrap();
        write_certs(dir.path(), cn);
        let auth = Arc::new(EmbeddedAuth::in_memory());
        auth.grant_node_access("n1", &node_key_grants("n1"), "pw")
            .unwrap();
        auth.user_add("root", Some(ROOT_PW)).unwrap();
        auth.user_grant_role("root", "root").unwrap();
        auth.enable().unwrap();
        let mut config = StoreServerConfig::new("127.0.0.1:0".parse().unwrap());
        config.tls = Some(nomos_store_server::StoreServerTls {
            cert: dir.path().join("server.pem"),
            key: dir.path().join("server-key.pem"),
            client_ca: Some(dir.path().join("ca.pem")),
        });
        let server = StoreServer::bind(config).await.unwrap().with_auth(auth);
        let endpoint = server.client_url();
        let store: Arc<dyn nomos_store::Store> = Arc::new(EmbeddedStore::in_memory());
        let (_stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(store, async move {
            let _ = stopped.await;
        }));
        let read = |f: &str| std::fs::read(dir.path().join(f)).unwrap();
        let tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(read("ca.pem")))
            .identity(Identity::from_pem(
                read("client.pem"),
                read("client-key.pem"),
            ));
        let options = ConnectOptions::new().with_tls(tls);
        let mut c = Client::connect([endpoint.as_str()], Some(options))
            .await
            .unwrap();
        let own = c
            .get("/nomos/allocs/n1/", Some(GetOptions::new().with_prefix()))
            .await;
        assert_eq!(own.is_ok(), own_allowed, "{cn}: {own:?}");
        assert_denied(
            c.get("/nomos/allocs/n2/a", None).await,
            "another node's allocation",
        );
        assert_denied(
            c.put("/nomos/jobs/default/evil", "{}", None).await,
            "writing a job",
        );
        task.abort();
    }
}
