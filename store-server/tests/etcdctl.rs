//! The real `etcdctl` against the store server (over an in-memory embedded store) and against a
//! real etcd: the same command sequences must print the same thing, once ids, terms, versions,
//! sizes and URLs that differ between any two etcd members are normalised.

mod support;

use regex::Regex;
use serde_json::Value;
use support::{etcdctl, etcdctl_watch, real_etcd, Output, TestServer};

/// Replaces what legitimately differs between two servers.
fn normalise(text: &str) -> String {
    let mut s = text.to_string();
    // Endpoint addresses and URLs.
    s = Regex::new(r"(https?://)?127\.0\.0\.1:\d+")
        .unwrap()
        .replace_all(&s, "<addr>")
        .into_owned();
    // Lease and member ids (hex).
    s = Regex::new(r"\b[0-9a-f]{12,16}\b")
        .unwrap()
        .replace_all(&s, "<id>")
        .into_owned();
    // grpc-go's retry warnings carry timestamps and client ids; keep only the error they report.
    s = Regex::new(r#"(?m)^\{"level":"warn".*"error":"([^"]*)"\}$"#)
        .unwrap()
        .replace_all(&s, "warn: $1")
        .into_owned();
    // etcd lists a lease's keys in no particular order.
    s = Regex::new(r"attached keys\(\[([^\]]*)\]\)")
        .unwrap()
        .replace_all(&s, |c: &regex::Captures| {
            let mut keys: Vec<&str> = c[1].split(' ').collect();
            keys.sort_unstable();
            format!("attached keys([{}])", keys.join(" "))
        })
        .into_owned();
    // Remaining lease time can tick between the two runs.
    s = Regex::new(r"remaining\(\d+s\)")
        .unwrap()
        .replace_all(&s, "remaining(<n>s)")
        .into_owned();
    s
}

/// Normalises a `-w json` answer: the header's ids and raft term.
fn normalise_json(text: &str) -> Value {
    let mut v: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("etcdctl printed invalid JSON ({e}): {text}"));
    if let Some(h) = v.get_mut("header").and_then(Value::as_object_mut) {
        for field in ["cluster_id", "member_id", "raft_term"] {
            if h.contains_key(field) {
                h.insert(field.to_string(), Value::from(0));
            }
        }
    }
    if let Some(kvs) = v.get_mut("kvs").and_then(Value::as_array_mut) {
        for kv in kvs {
            if kv.get("lease").and_then(Value::as_i64).unwrap_or(0) != 0 {
                kv["lease"] = Value::from("<id>");
            }
        }
    }
    v
}

/// One step of a session and what it printed, normalised.
#[derive(Debug, PartialEq)]
struct Step {
    command: String,
    ok: bool,
    stdout: String,
    stderr: String,
}

fn step(command: &str, out: Output) -> Step {
    let stdout = if command.contains("-w json") && out.ok {
        serde_json::to_string(&normalise_json(&out.stdout)).expect("JSON serialises")
    } else {
        normalise(&out.stdout)
    };
    Step {
        command: normalise(command),
        ok: out.ok,
        stdout,
        stderr: normalise(&out.stderr),
    }
}

async fn run(endpoint: &str, line: &str, stdin: Option<&str>) -> Step {
    let args: Vec<&str> = line.split_whitespace().collect();
    step(line, etcdctl(endpoint, &args, stdin).await)
}

async fn run_json(endpoint: &str, line: &str) -> (String, Value) {
    let args: Vec<&str> = line.split_whitespace().collect();
    let out = etcdctl(endpoint, &args, None).await;
    assert!(out.ok, "{line} failed on {endpoint}: {}", out.stderr);
    (line.to_string(), normalise_json(&out.stdout))
}

fn assert_same<T: PartialEq + std::fmt::Debug>(ours: &[T], etcd: &[T]) {
    assert_eq!(ours.len(), etcd.len());
    for (a, b) in ours.iter().zip(etcd) {
        assert_eq!(
            a, b,
            "\n--- store server ---\n{a:#?}\n--- real etcd ---\n{b:#?}"
        );
    }
}

const TXN_INPUT: &str = "value(\"/app/a\") = \"1\"\nmod(\"/app/b\") > \"0\"\n\nput /app/t yes\nget /app/a\ndel /app/c\n\nput /app/t no\n\n";
const TXN_FAILING: &str =
    "version(\"/app/a\") = \"7\"\n\nput /app/t yes\n\nget /app/b\nput /app/f failed\n\n";

async fn kv_session(endpoint: &str) -> (Vec<Step>, Vec<(String, Value)>) {
    let mut steps = Vec::new();
    let mut json = Vec::new();
    for line in [
        "put /app/a 1",
        "put /app/b 2",
        "put /app/c 3",
        "put /other x",
        "get --prefix /app",
        "get --prefix /app --keys-only",
        "get --prefix /app --limit=2",
        "get --prefix /app --sort-by=MODIFY --order=DESCEND",
        "get --prefix /app --print-value-only",
        "get /app/a --rev=2",
        "get /app --from-key",
        "get /missing",
        "put /app/a 1b --prev-kv",
        "put /app/none --ignore-value",
        "put /app/a --ignore-value",
        "get /app/a",
        "put /app/a 1",
    ] {
        steps.push(run(endpoint, line, None).await);
    }
    for line in [
        "get /app/a -w json",
        "get --prefix /app -w json",
        "get --prefix /app --limit=1 -w json",
        "get /missing -w json",
        "put /app/j v -w json",
        "del /app/j -w json",
    ] {
        json.push(run_json(endpoint, line).await);
    }
    steps.push(run(endpoint, "txn", Some(TXN_INPUT)).await);
    steps.push(run(endpoint, "txn", Some(TXN_FAILING)).await);
    steps.push(run(endpoint, "txn -w json", Some(TXN_FAILING)).await);
    // Version, database size and raft index are the server's own.
    let status_line = Regex::new(
        r"(?m)^<addr>, <id>, [^,]+, [^,]+, (true|false), (true|false), (\d+), \d+, \d+, ",
    )
    .unwrap();
    // etcdctl prints how long the health check took.
    let took = Regex::new(r"took = [^\n]*").unwrap();
    for line in [
        "get --prefix /app",
        "del /app/t",
        "del --prefix /app --prev-kv",
        "del /nothing",
        "get --prefix /app",
        "compaction 5",
        "get /other --rev=4",
        "get /other --rev=5",
        "compaction 3",
        "compaction 1000",
        "get /other --rev=1000",
        "endpoint status",
        "member list",
        "endpoint health",
    ] {
        let mut s = run(endpoint, line, None).await;
        if line == "endpoint status" {
            s.stdout = status_line
                .replace_all(
                    &s.stdout,
                    "<addr>, <id>, <version>, <size>, $1, $2, $3, <index>, <index>, ",
                )
                .into_owned();
        }
        if line == "endpoint health" {
            s.stderr = took.replace_all(&s.stderr, "took = <t>").into_owned();
        }
        steps.push(s);
    }
    (steps, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_kv_txn_and_compaction_print_the_same_as_real_etcd() {
    let server = TestServer::embedded().await;
    let etcd = real_etcd().await;
    let (ours, ours_json) = kv_session(&server.endpoint).await;
    let (theirs, theirs_json) = kv_session(&etcd.endpoint()).await;
    assert_same(&ours, &theirs);
    assert_same(&ours_json, &theirs_json);
}

async fn lease_session(endpoint: &str) -> Vec<Step> {
    let grant = etcdctl(endpoint, &["lease", "grant", "60"], None).await;
    assert!(grant.ok, "lease grant failed: {}", grant.stderr);
    let id = grant
        .stdout
        .split_whitespace()
        .nth(1)
        .expect("lease id in the grant output")
        .to_string();
    let mut steps = vec![step("lease grant 60", grant)];
    for line in [
        format!("put --lease={id} /l/k v"),
        format!("put --lease={id} /l/k2 v"),
        format!("lease timetolive {id} --keys"),
        format!("lease timetolive {id}"),
        format!("lease keep-alive --once {id}"),
        "lease list".to_string(),
        "get --prefix /l -w json".to_string(),
        format!("lease revoke {id}"),
        format!("lease timetolive {id}"),
        "get --prefix /l".to_string(),
        format!("lease revoke {id}"),
        format!("lease keep-alive --once {id}"),
        "lease list".to_string(),
        "put --lease=1234 /l/x v".to_string(),
    ] {
        steps.push(run(endpoint, &line, None).await);
    }
    steps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_leases_print_the_same_as_real_etcd() {
    let server = TestServer::embedded().await;
    let etcd = real_etcd().await;
    let ours = lease_session(&server.endpoint).await;
    let theirs = lease_session(&etcd.endpoint()).await;
    assert_same(&ours, &theirs);
}

async fn watch_session(endpoint: &str) -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    for line in ["put /w/a 0", "put /x 0"] {
        assert!(
            etcdctl(endpoint, &line.split(' ').collect::<Vec<_>>(), None)
                .await
                .ok
        );
    }
    // Live events, opened at the next revision so none can be missed.
    let ep = endpoint.to_string();
    out.push(
        etcdctl_watch(
            endpoint,
            &["--prefix", "/w", "--rev=4", "--prev-kv"],
            12,
            || async move {
                for line in ["put /w/a 1", "put /x 1", "put /w/b 2", "del /w/a"] {
                    assert!(
                        etcdctl(&ep, &line.split(' ').collect::<Vec<_>>(), None)
                            .await
                            .ok,
                        "{line}"
                    );
                }
            },
        )
        .await,
    );
    // History from a past revision.
    out.push(etcdctl_watch(endpoint, &["--prefix", "/w", "--rev=2"], 12, || async {}).await);
    out.push(etcdctl_watch(endpoint, &["/w/b", "--rev=1"], 3, || async {}).await);
    // A compacted start revision is refused the way etcd refuses it.
    assert!(etcdctl(endpoint, &["compaction", "5"], None).await.ok);
    let compacted = etcdctl(endpoint, &["watch", "--prefix", "/w", "--rev=2"], None).await;
    out.push((
        vec![normalise(&compacted.stdout), format!("ok={}", compacted.ok)],
        normalise(&compacted.stderr),
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_watch_prints_the_same_as_real_etcd() {
    let server = TestServer::embedded().await;
    let etcd = real_etcd().await;
    let ours = watch_session(&server.endpoint).await;
    let theirs = watch_session(&etcd.endpoint()).await;
    assert_same(&ours, &theirs);
    assert!(
        ours[0].0.iter().any(|l| l == "DELETE"),
        "the live watch saw the delete: {:?}",
        ours[0]
    );
}
