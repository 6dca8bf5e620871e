//! Service checks run by the agent (`http`, `tcp`, `script`), whose results go into the
//! allocation status and, with `health_check = "checks"` (Nomad's default), decide `healthy`.
//!
//! [`check_defs`] (pure) resolves each check of the group's and tasks' services to a target
//! from the allocation's ports; [`run_check`] performs one probe with its timeout.

use std::path::PathBuf;
use std::time::Duration;

use indexmap::IndexMap;
use nomos_api::{Allocation, CheckResult, TaskGroup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const PASSING: &str = "passing";
pub const CRITICAL: &str = "critical";

/// What one check probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckTarget {
    Http {
        addr: String,
        path: String,
        method: String,
        headers: Vec<(String, String)>,
    },
    /// An `http` check with `protocol = "https"`.
    Https {
        addr: String,
        path: String,
        method: String,
        headers: Vec<(String, String)>,
        skip_verify: bool,
    },
    Tcp {
        addr: String,
    },
    Script {
        command: String,
        args: Vec<String>,
        task: String,
    },
    /// A check that cannot run here; the reason becomes its (critical) output.
    Invalid(String),
}

/// A check ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckDef {
    pub name: String,
    pub target: CheckTarget,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive passing results before it passes, failing ones before it is critical.
    pub success_before_passing: u32,
    pub failures_before_critical: u32,
    /// Its `check_restart` (its own, else its service's) and the task that restarts.
    pub restart: Option<(nomos_api::CheckRestart, String)>,
    /// Whether an allocation's health waits on it (`on_update` is not `ignore`).
    pub counts_for_health: bool,
}

/// A check's status over its consecutive results: it passes after `success_before_passing`
/// passing results in a row and turns critical after `failures_before_critical` failing ones
/// (each at least 1); in between it keeps its status. `None` until it first decides (pending).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckCounter {
    pub status: Option<&'static str>,
    passes: u32,
    fails: u32,
}

impl CheckCounter {
    /// Records one result; returns the status after it.
    pub fn observe(&mut self, passed: bool, def: &CheckDef) -> Option<&'static str> {
        if passed {
            self.passes += 1;
            self.fails = 0;
            if self.passes >= def.success_before_passing.max(1) {
                self.status = Some(PASSING);
            }
        } else {
            self.fails += 1;
            self.passes = 0;
            if self.fails >= def.failures_before_critical.max(1) {
                self.status = Some(CRITICAL);
            }
        }
        self.status
    }
}

/// Counts a check's unhealthy results in a row for its `check_restart`: a restart is due once
/// `limit` of them came after the task's `grace` (results inside the grace are not counted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartCounter {
    streak: u32,
}

impl RestartCounter {
    /// Records one status, `since_start` after the task started; `true` when a restart is due
    /// (the count starts again).
    pub fn observe(
        &mut self,
        healthy: bool,
        since_start: Duration,
        policy: &nomos_api::CheckRestart,
    ) -> bool {
        if policy.limit == 0 || healthy || since_start < Duration::from_nanos(policy.grace_ns) {
            self.streak = 0;
            return false;
        }
        self.streak += 1;
        if self.streak >= policy.limit {
            self.streak = 0;
            return true;
        }
        false
    }
}

pub use nomos_api::service::check_name;

/// Resolves every check of an allocation's services (group- and task-level).
pub fn check_defs(group: &TaskGroup, alloc: &Allocation, node_address: &str) -> Vec<CheckDef> {
    let first_task = group.tasks.first().map(|t| t.name.as_str()).unwrap_or("");
    let mut out = Vec::new();
    for (svc, svc_name, owner) in nomos_api::service::group_services(group, &alloc.job_id) {
        // A group's script checks run in its first task.
        let task = owner.unwrap_or(first_task).to_string();
        for (i, c) in svc.checks.iter().enumerate() {
            let label = if c.port.is_empty() {
                &svc.port
            } else {
                &c.port
            };
            let addr = alloc.ports.iter().find(|p| &p.label == label).map(|p| {
                let ip = if !p.host_ip.is_empty() {
                    p.host_ip.clone()
                } else if !node_address.is_empty() {
                    node_address.to_string()
                } else {
                    "127.0.0.1".into()
                };
                format!("{ip}:{}", p.value)
            });
            let target = target_of(c, addr, label, &task);
            let restart = c
                .check_restart
                .or(svc.check_restart)
                .filter(|r| r.limit > 0)
                .map(|r| (r, task.clone()));
            out.push(CheckDef {
                name: check_name(&svc_name, &c.name, &c.check_type, i),
                target,
                success_before_passing: c.success_before_passing,
                failures_before_critical: c.failures_before_critical,
                restart,
                counts_for_health: c.on_update != "ignore",
                interval: Duration::from_nanos(if c.interval_ns == 0 {
                    10_000_000_000
                } else {
                    c.interval_ns
                }),
                timeout: Duration::from_nanos(if c.timeout_ns == 0 {
                    2_000_000_000
                } else {
                    c.timeout_ns
                }),
            });
        }
    }
    out
}

/// What a check probes: its type, its port's address (`None`: the label is not allocated)
/// and, for a script, the task it runs in.
fn target_of(c: &nomos_api::Check, addr: Option<String>, label: &str, task: &str) -> CheckTarget {
    let or = |v: &str, default: &str| {
        if v.is_empty() {
            default.to_string()
        } else {
            v.to_string()
        }
    };
    match (c.check_type.as_str(), addr) {
        ("http", Some(addr)) if c.protocol == "https" => CheckTarget::Https {
            addr,
            path: or(&c.path, "/"),
            method: or(&c.method, "GET"),
            headers: headers_of(c),
            skip_verify: c.tls_skip_verify,
        },
        ("http", Some(addr)) if c.protocol.is_empty() || c.protocol == "http" => {
            CheckTarget::Http {
                addr,
                path: or(&c.path, "/"),
                method: or(&c.method, "GET"),
                headers: headers_of(c),
            }
        }
        ("http", Some(_)) => CheckTarget::Invalid(format!(
            "protocol {:?} is not supported by the agent's checks",
            c.protocol
        )),
        ("tcp", Some(addr)) => CheckTarget::Tcp { addr },
        ("http" | "tcp", None) => {
            CheckTarget::Invalid(format!("port label {label:?} is not allocated"))
        }
        ("script", _) => CheckTarget::Script {
            command: c.command.clone(),
            args: c.args.clone(),
            task: task.to_string(),
        },
        (other, _) => CheckTarget::Invalid(format!("check type {other:?} is not supported")),
    }
}

fn headers_of(c: &nomos_api::Check) -> Vec<(String, String)> {
    c.header
        .iter()
        .flat_map(|(k, vs)| vs.iter().map(move |v| (k.clone(), v.clone())))
        .collect()
}

/// An https probe: 2xx passes; `skip_verify` accepts any certificate (`tls_skip_verify`).
async fn https_probe(
    addr: &str,
    path: &str,
    method: &str,
    headers: &[(String, String)],
    skip_verify: bool,
) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(skip_verify)
        .build()
        .map_err(|e| e.to_string())?;
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let url = format!("https://{addr}{path}");
    let mut req = client.request(method.clone(), &url);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("HTTP {method} {url}: {e}"))?;
    let line = format!("HTTP {method} {url}: {}", resp.status());
    if resp.status().is_success() {
        Ok(line)
    } else {
        Err(line)
    }
}

/// Health from task states and check results: checks must all be passing for a healthy
/// allocation; a task failure is unhealthy whatever the checks say.
pub fn combine_health(
    task_health: Option<bool>,
    expected: &[String],
    results: &IndexMap<String, CheckResult>,
) -> Option<bool> {
    match task_health {
        Some(true)
            if expected
                .iter()
                .all(|n| results.get(n).map(|r| r.status == PASSING).unwrap_or(false)) =>
        {
            Some(true)
        }
        Some(true) => None,
        other => other,
    }
}

async fn http_probe(
    addr: &str,
    path: &str,
    method: &str,
    headers: &[(String, String)],
) -> Result<String, String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let mut req =
        format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: nomos-agent\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf[..n]);
    let line = text.lines().next().unwrap_or_default().to_string();
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {line:?}"))?;
    if (200..300).contains(&code) {
        Ok(format!("HTTP {method} http://{addr}{path}: {line}"))
    } else {
        Err(format!("HTTP {method} http://{addr}{path}: {line}"))
    }
}

/// Runs one probe; `task_dir` is where script checks run.
pub async fn run_check(def: &CheckDef, task_dir: PathBuf) -> (String, String) {
    let probe = async {
        match &def.target {
            CheckTarget::Http {
                addr,
                path,
                method,
                headers,
            } => http_probe(addr, path, method, headers).await,
            CheckTarget::Https {
                addr,
                path,
                method,
                headers,
                skip_verify,
            } => https_probe(addr, path, method, headers, *skip_verify).await,
            CheckTarget::Tcp { addr } => tokio::net::TcpStream::connect(addr)
                .await
                .map(|_| format!("TCP connect {addr}: Success"))
                .map_err(|e| format!("TCP connect {addr}: {e}")),
            CheckTarget::Script { command, args, .. } => {
                let out = tokio::process::Command::new(command)
                    .args(args)
                    .current_dir(&task_dir)
                    .kill_on_drop(true)
                    .output()
                    .await
                    .map_err(|e| format!("running {command:?}: {e}"))?;
                let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if out.status.success() {
                    Ok(text)
                } else {
                    Err(format!("{} ({})", text, out.status))
                }
            }
            CheckTarget::Invalid(why) => Err(why.clone()),
        }
    };
    match tokio::time::timeout(def.timeout, probe).await {
        Ok(Ok(out)) => (PASSING.into(), out),
        Ok(Err(out)) => (CRITICAL.into(), out),
        Err(_) => (
            CRITICAL.into(),
            format!("timed out after {:?}", def.timeout),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomos_api::{AllocatedPort, Check, Service};

    fn group(checks: Vec<Check>) -> TaskGroup {
        TaskGroup {
            services: vec![Service {
                name: "web".into(),
                port: "http".into(),
                checks,
                ..Default::default()
            }],
            ..nomos_api::build::group("g", 1)
        }
    }

    #[test]
    fn check_defs_table() {
        let alloc = Allocation {
            job_id: "j".into(),
            ports: vec![AllocatedPort {
                label: "http".into(),
                value: 8080,
                to: 0,
                host_ip: String::new(),
            }],
            ..Default::default()
        };
        let cases: Vec<(Check, CheckTarget)> = vec![
            (
                Check {
                    check_type: "http".into(),
                    path: "/health".into(),
                    ..Default::default()
                },
                CheckTarget::Http {
                    addr: "10.0.0.1:8080".into(),
                    path: "/health".into(),
                    method: "GET".into(),
                    headers: vec![],
                },
            ),
            (
                Check {
                    check_type: "tcp".into(),
                    ..Default::default()
                },
                CheckTarget::Tcp {
                    addr: "10.0.0.1:8080".into(),
                },
            ),
            (
                Check {
                    check_type: "tcp".into(),
                    port: "admin".into(),
                    ..Default::default()
                },
                CheckTarget::Invalid("port label \"admin\" is not allocated".into()),
            ),
            (
                Check {
                    check_type: "script".into(),
                    command: "/bin/true".into(),
                    ..Default::default()
                },
                CheckTarget::Script {
                    command: "/bin/true".into(),
                    args: vec![],
                    task: "t".into(),
                },
            ),
            (
                Check {
                    check_type: "grpc".into(),
                    ..Default::default()
                },
                CheckTarget::Invalid("check type \"grpc\" is not supported".into()),
            ),
            (
                Check {
                    check_type: "http".into(),
                    protocol: "https".into(),
                    ..Default::default()
                },
                CheckTarget::Https {
                    addr: "10.0.0.1:8080".into(),
                    path: "/".into(),
                    method: "GET".into(),
                    headers: vec![],
                    skip_verify: false,
                },
            ),
            (
                Check {
                    check_type: "http".into(),
                    protocol: "h2c".into(),
                    ..Default::default()
                },
                CheckTarget::Invalid(
                    "protocol \"h2c\" is not supported by the agent's checks".into(),
                ),
            ),
        ];
        for (check, want) in cases {
            let defs = check_defs(&group(vec![check.clone()]), &alloc, "10.0.0.1");
            assert_eq!(defs.len(), 1);
            assert_eq!(defs[0].target, want, "{check:?}");
            assert_eq!(defs[0].interval, Duration::from_secs(10));
        }
    }

    #[test]
    fn health_needs_every_check_passing() {
        let names = vec!["web.a".to_string(), "web.b".to_string()];
        let mut r = IndexMap::new();
        r.insert(
            "web.a".to_string(),
            CheckResult {
                status: PASSING.into(),
                ..Default::default()
            },
        );
        assert_eq!(combine_health(Some(true), &names, &r), None);
        r.insert(
            "web.b".to_string(),
            CheckResult {
                status: CRITICAL.into(),
                ..Default::default()
            },
        );
        assert_eq!(combine_health(Some(true), &names, &r), None);
        r.insert(
            "web.b".to_string(),
            CheckResult {
                status: PASSING.into(),
                ..Default::default()
            },
        );
        assert_eq!(combine_health(Some(true), &names, &r), Some(true));
        assert_eq!(combine_health(Some(false), &names, &r), Some(false));
        assert_eq!(combine_health(None, &names, &r), None);
        assert_eq!(
            combine_health(Some(true), &[], &IndexMap::new()),
            Some(true)
        );
    }

    #[tokio::test]
    async fn probes_pass_and_fail() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let ok = String::from_utf8_lossy(&buf[..n]).starts_with("GET /ok ");
                let resp = if ok {
                    "HTTP/1.0 200 OK\r\n\r\n"
                } else {
                    "HTTP/1.0 503 Service Unavailable\r\n\r\n"
                };
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        let def = |target| probe_def(target);
        let http = |path: &str| CheckTarget::Http {
            addr: addr.clone(),
            path: path.into(),
            method: "GET".into(),
            headers: vec![],
        };
        let dir = std::env::temp_dir();
        assert_eq!(run_check(&def(http("/ok")), dir.clone()).await.0, PASSING);
        assert_eq!(run_check(&def(http("/bad")), dir.clone()).await.0, CRITICAL);
        assert_eq!(
            run_check(&def(CheckTarget::Tcp { addr: addr.clone() }), dir.clone())
                .await
                .0,
            PASSING
        );
        assert_eq!(
            run_check(
                &def(CheckTarget::Script {
                    command: "false".into(),
                    args: vec![],
                    task: "t".into()
                }),
                dir.clone()
            )
            .await
            .0,
            CRITICAL
        );
        assert_eq!(
            run_check(
                &def(CheckTarget::Script {
                    command: "sh".into(),
                    args: vec!["-c".into(), "echo fine".into()],
                    task: "t".into()
                }),
                dir
            )
            .await,
            (PASSING.to_string(), "fine".to_string())
        );
    }

    fn probe_def(target: CheckTarget) -> CheckDef {
        CheckDef {
            name: "c".into(),
            target,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            success_before_passing: 0,
            failures_before_critical: 0,
            restart: None,
            counts_for_health: true,
        }
    }

    #[test]
    fn a_check_passes_or_turns_critical_after_its_results_in_a_row() {
        // (success_before_passing, failures_before_critical, results, statuses after each)
        let p = Some(PASSING);
        let c = Some(CRITICAL);
        let cases: Vec<(u32, u32, &str, Vec<Option<&str>>)> = vec![
            (0, 0, "+-+", vec![p, c, p]),
            (3, 0, "++-+++", vec![None, None, c, c, c, p]),
            (0, 3, "+--+---", vec![p, p, p, p, p, p, c]),
            (2, 2, "-+-++-", vec![None, None, None, None, p, p]),
        ];
        for (sbp, fbc, results, want) in cases {
            let mut def = probe_def(CheckTarget::Invalid(String::new()));
            def.success_before_passing = sbp;
            def.failures_before_critical = fbc;
            let mut counter = CheckCounter::default();
            let got: Vec<Option<&str>> = results
                .chars()
                .map(|r| counter.observe(r == '+', &def))
                .collect();
            assert_eq!(got, want, "sbp={sbp} fbc={fbc} {results}");
        }
    }

    #[test]
    fn check_restart_is_due_after_its_limit_of_unhealthy_results_past_the_grace() {
        let policy = nomos_api::CheckRestart {
            limit: 2,
            grace_ns: 10_000_000_000,
            ignore_warnings: false,
        };
        let s = Duration::from_secs;
        // (healthy, seconds since the task started) → restart due
        let steps = [
            (false, s(1), false),  // inside the grace: not counted
            (false, s(5), false),  // still inside
            (false, s(11), false), // 1
            (true, s(12), false),  // a pass starts the count again
            (false, s(13), false), // 1
            (false, s(14), true),  // 2: restart, count starts again
            (false, s(15), false), // 1
        ];
        let mut counter = RestartCounter::default();
        for (i, (healthy, since, due)) in steps.into_iter().enumerate() {
            assert_eq!(counter.observe(healthy, since, &policy), due, "step {i}");
        }
        let off = nomos_api::CheckRestart::default();
        assert!(
            !RestartCounter::default().observe(false, s(100), &off),
            "limit 0: off"
        );
    }

    #[test]
    fn https_check_restart_and_thresholds_come_from_the_job() {
        let alloc = Allocation {
            job_id: "j".into(),
            ports: vec![AllocatedPort {
                label: "http".into(),
                value: 8443,
                ..Default::default()
            }],
            ..Default::default()
        };
        let check = Check {
            check_type: "http".into(),
            protocol: "https".into(),
            path: "/h".into(),
            tls_skip_verify: true,
            success_before_passing: 2,
            failures_before_critical: 3,
            ..Default::default()
        };
        let mut g = group(vec![check.clone()]);
        g.tasks = vec![nomos_api::build::task("t", 10, 10)];
        let inherited = nomos_api::CheckRestart {
            limit: 3,
            ..Default::default()
        };
        g.services[0].check_restart = Some(inherited);
        let defs = check_defs(&g, &alloc, "10.0.0.1");
        assert_eq!(
            defs[0].target,
            CheckTarget::Https {
                addr: "10.0.0.1:8443".into(),
                path: "/h".into(),
                method: "GET".into(),
                headers: vec![],
                skip_verify: true,
            }
        );
        assert_eq!(
            (
                defs[0].success_before_passing,
                defs[0].failures_before_critical
            ),
            (2, 3)
        );
        assert!(defs[0].counts_for_health);
        g.services[0].checks[0].on_update = "ignore".into();
        assert!(
            !check_defs(&g, &alloc, "")[0].counts_for_health,
            "on_update = ignore"
        );
        g.services[0].checks[0].on_update = String::new();
        assert_eq!(
            defs[0].restart,
            Some((inherited, "t".to_string())),
            "the service's"
        );
        let own = nomos_api::CheckRestart {
            limit: 1,
            ..Default::default()
        };
        g.services[0].checks[0].check_restart = Some(own);
        assert_eq!(
            check_defs(&g, &alloc, "")[0].restart,
            Some((own, "t".to_string()))
        );
    }

    /// An https server with a certificate of a fresh CA nobody trusts, answering 200.
    async fn self_signed_https() -> String {
        use nomos_tls::generate::{self, CertRequest, Role};
        let dir = tempfile::tempdir().unwrap().keep();
        let ca = generate::ca(1).unwrap();
        let pair = generate::cert(&ca, &CertRequest::new(Role::Server)).unwrap();
        let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
        generate::write_new(&pair, &cert, &key).unwrap();
        let tls = nomos_tls::ServerTls {
            cert_file: cert,
            key_file: key,
            client_ca: None,
        };
        let config = nomos_tls::server_config(&tls, &[b"http/1.1"]).unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap().to_string();
        let app = axum::Router::new().route("/h", axum::routing::get(|| async { "ok" }));
        let listener = nomos_tls::listener::TlsListener::new(tcp, config);
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    #[tokio::test]
    async fn an_https_check_trusts_an_unknown_certificate_only_with_tls_skip_verify() {
        let addr = self_signed_https().await;
        let https = |skip_verify| {
            probe_def(CheckTarget::Https {
                addr: addr.clone(),
                path: "/h".into(),
                method: "GET".into(),
                headers: vec![],
                skip_verify,
            })
        };
        let dir = std::env::temp_dir();
        let (status, out) = run_check(&https(true), dir.clone()).await;
        assert_eq!(status, PASSING, "{out}");
        let (status, out) = run_check(&https(false), dir).await;
        assert_eq!(status, CRITICAL, "{out}");
    }
}
