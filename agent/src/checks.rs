//! Service checks run by the agent (`http`, `tcp`, `grpc`, `script`), whose results go into the
//! allocation status and, with `health_check = "checks"` (Nomad's default), decide `healthy`.
//!
//! [`check_defs`] (pure) resolves each check of the group's and tasks' services to a target
//! from the allocation's ports; [`run_check`] performs one probe with its timeout and returns
//! `passing`, `warning` or `critical`; [`CheckCounter`] turns results in a row into the check's
//! status and [`RestartCounter`] into `check_restart`'s restarts. Script checks run inside
//! their task through its driver ([`Driver::exec`]); `grpc` speaks the standard health
//! protocol (`grpc`).

mod grpc;
mod tls;

use std::time::Duration;

use indexmap::IndexMap;
use nomos_api::{Allocation, CheckResult, TaskGroup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::driver::{Driver, ExecRequest, TaskHandle, EXEC_OUTPUT_LIMIT};
use crate::error::AgentError;
pub use tls::CheckTls;

pub const PASSING: &str = "passing";
/// Neither passing nor critical (a script's exit code 1, HTTP 429, or failures in a row short
/// of `failures_before_critical`): not healthy.
pub const WARNING: &str = "warning";
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
        tls: CheckTls,
    },
    Tcp {
        addr: String,
    },
    /// The standard gRPC health check (`grpc.health.v1.Health/Check`) of `service` (empty:
    /// the server as a whole); `tls` is set with `grpc_use_tls`.
    Grpc {
        addr: String,
        service: String,
        tls: Option<CheckTls>,
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
    /// Consecutive passing results before it passes, failing ones before it is critical, and
    /// failing ones before it is a warning (0: failures never make it a warning).
    pub success_before_passing: u32,
    pub failures_before_critical: u32,
    pub failures_before_warning: u32,
    /// Its `check_restart` (its own, else its service's) and the task that restarts.
    pub restart: Option<(nomos_api::CheckRestart, String)>,
    /// Whether an allocation's health waits on it (`on_update` is not `ignore`).
    pub counts_for_health: bool,
    /// Whether a warning counts as passing for the allocation's health (`on_update =
    /// "ignore_warnings"`).
    pub warning_is_healthy: bool,
}

/// A check's status over its consecutive results. A passing or warning result counts as a
/// success: after `success_before_passing` of them in a row the status is that result. A
/// critical one counts as a failure: after `failures_before_critical` in a row the status is
/// critical, else after `failures_before_warning` (when set) a warning. The thresholds are at
/// least 1; in between the status stays. `None` until it first decides (pending).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckCounter {
    pub status: Option<&'static str>,
    passes: u32,
    fails: u32,
}

impl CheckCounter {
    /// Records one result (`passing`, `warning` or `critical`); returns the status after it.
    pub fn observe(&mut self, result: &'static str, def: &CheckDef) -> Option<&'static str> {
        if result == PASSING || result == WARNING {
            self.passes += 1;
            self.fails = 0;
            if self.passes >= def.success_before_passing.max(1) {
                self.status = Some(result);
            }
        } else {
            self.fails += 1;
            self.passes = 0;
            if self.fails >= def.failures_before_critical.max(1) {
                self.status = Some(CRITICAL);
            } else if def.failures_before_warning > 0 && self.fails >= def.failures_before_warning {
                self.status = Some(WARNING);
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
    /// (the count starts again). A warning is unhealthy unless `ignore_warnings`.
    pub fn observe(
        &mut self,
        status: &str,
        since_start: Duration,
        policy: &nomos_api::CheckRestart,
    ) -> bool {
        let healthy = status == PASSING || (status == WARNING && policy.ignore_warnings);
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
                failures_before_warning: c.failures_before_warning,
                restart,
                counts_for_health: c.on_update != "ignore",
                warning_is_healthy: c.on_update == "ignore_warnings",
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
            tls: tls_of(c),
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
        ("grpc", Some(addr)) => CheckTarget::Grpc {
            addr,
            service: c.grpc_service.clone(),
            tls: c.grpc_use_tls.then(|| tls_of(c)),
        },
        ("http" | "tcp" | "grpc", None) => {
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

fn tls_of(c: &nomos_api::Check) -> CheckTls {
    CheckTls {
        skip_verify: c.tls_skip_verify,
        server_name: c.tls_server_name.clone(),
    }
}

fn headers_of(c: &nomos_api::Check) -> Vec<(String, String)> {
    c.header
        .iter()
        .flat_map(|(k, vs)| vs.iter().map(move |v| (k.clone(), v.clone())))
        .collect()
}

/// A probe's verdict and what it saw.
type Probe = (&'static str, String);

/// The status an HTTP response code gives a check: 2xx passes, 429 (Too Many Requests) is a
/// warning, anything else is critical (Consul's rule).
pub fn http_status(code: u16) -> &'static str {
    match code {
        200..=299 => PASSING,
        429 => WARNING,
        _ => CRITICAL,
    }
}

/// The status a script's exit code gives a check: 0 passes, 1 is a warning, anything else
/// (a signal included) is critical (Consul's rule).
pub fn script_status(exit_code: Option<i32>) -> &'static str {
    match exit_code {
        Some(0) => PASSING,
        Some(1) => WARNING,
        _ => CRITICAL,
    }
}

/// An https probe ([`http_status`]): TLS per `tls` ([`tls::connect`]), verified against
/// `roots`, then the same request as [`http_probe`].
async fn https_probe(
    addr: &str,
    req: &HttpRequest<'_>,
    tls: &CheckTls,
    roots: tls::Roots<'_>,
) -> Result<Probe, String> {
    let url = format!("https://{addr}{}", req.path);
    let stream = tls::connect(addr, tls, &[b"http/1.1"], roots)
        .await
        .map_err(|e| format!("HTTP {} {url}: {e}", req.method))?;
    exchange(stream, addr, req, &url).await
}

/// Health from task states and check results: the checks must all be passing (or, for those
/// whose `on_update` is `ignore_warnings`, passing or warning; `expected` pairs each name with
/// that) for a healthy allocation; a task failure is unhealthy whatever the checks say.
pub fn combine_health(
    task_health: Option<bool>,
    expected: &[(String, bool)],
    results: &IndexMap<String, CheckResult>,
) -> Option<bool> {
    let fine = |(name, warning_ok): &(String, bool)| {
        results
            .get(name)
            .is_some_and(|r| r.status == PASSING || (*warning_ok && r.status == WARNING))
    };
    match task_health {
        Some(true) if expected.iter().all(fine) => Some(true),
        Some(true) => None,
        other => other,
    }
}

/// What an `http` or `https` check asks.
struct HttpRequest<'a> {
    path: &'a str,
    method: &'a str,
    headers: &'a [(String, String)],
}

/// An http probe ([`http_status`]).
async fn http_probe(addr: &str, req: &HttpRequest<'_>) -> Result<Probe, String> {
    let s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    exchange(s, addr, req, &format!("http://{addr}{}", req.path)).await
}

/// Sends an HTTP/1.0 request for `url` on `s` (to `addr`, its `Host`) and judges the status
/// line of the answer.
async fn exchange<S>(
    mut s: S,
    addr: &str,
    req: &HttpRequest<'_>,
    url: &str,
) -> Result<Probe, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let method = req.method;
    let mut head = format!(
        "{method} {} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: nomos-agent\r\n",
        req.path
    );
    for (k, v) in req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let failed = |e: std::io::Error| format!("HTTP {method} {url}: {e}");
    s.write_all(head.as_bytes()).await.map_err(failed)?;
    s.flush().await.map_err(failed)?;
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.map_err(failed)?;
    let text = String::from_utf8_lossy(&buf[..n]);
    let line = text.lines().next().unwrap_or_default().to_string();
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("HTTP {method} {url}: not an HTTP response: {line:?}"))?;
    Ok((http_status(code), format!("HTTP {method} {url}: {line}")))
}

/// Where a script check runs: its task's driver and handle, `None` while the task does not run.
pub type ScriptTask<'a> = Option<(&'a dyn Driver, &'a TaskHandle)>;

/// Runs a script check's command inside its task ([`Driver::exec`]), with the check's timeout;
/// the exit code decides ([`script_status`]) and the output (4 KiB at most) is kept.
async fn script_probe(
    command: &str,
    args: &[String],
    timeout: Duration,
    task: ScriptTask<'_>,
    task_name: &str,
) -> Result<Probe, String> {
    let Some((driver, handle)) = task else {
        return Err(format!("task {task_name:?} is not running"));
    };
    let req = ExecRequest {
        command: command.to_string(),
        args: args.to_vec(),
        timeout,
        output_limit: EXEC_OUTPUT_LIMIT,
    };
    match driver.exec(handle, &req).await {
        Ok(out) => {
            let status = script_status(out.exit_code);
            let text = out.text();
            Ok(match (status, out.exit_code) {
                (PASSING, _) => (status, text),
                (_, Some(code)) => (status, format!("{text} (exit code {code})")),
                _ => (
                    status,
                    format!("{text} (signal {})", out.signal.unwrap_or(0)),
                ),
            })
        }
        Err(e @ AgentError::ExecTimedOut { .. }) => Err(e.to_string()),
        Err(e) => Err(format!("running {command:?} in task {task_name:?}: {e}")),
    }
}

/// Runs one probe within the check's timeout; `script` is where a script check runs.
pub async fn run_check(def: &CheckDef, script: ScriptTask<'_>) -> (&'static str, String) {
    run_check_trusting(def, script, None).await
}

/// [`run_check`], verifying TLS certificates against `roots`.
async fn run_check_trusting(
    def: &CheckDef,
    script: ScriptTask<'_>,
    roots: tls::Roots<'_>,
) -> (&'static str, String) {
    let probe = async {
        match &def.target {
            CheckTarget::Http {
                addr,
                path,
                method,
                headers,
            } => {
                let req = HttpRequest {
                    path,
                    method,
                    headers,
                };
                http_probe(addr, &req).await
            }
            CheckTarget::Https {
                addr,
                path,
                method,
                headers,
                tls,
            } => {
                let req = HttpRequest {
                    path,
                    method,
                    headers,
                };
                https_probe(addr, &req, tls, roots).await
            }
            CheckTarget::Tcp { addr } => tokio::net::TcpStream::connect(addr)
                .await
                .map(|_| (PASSING, format!("TCP connect {addr}: Success")))
                .map_err(|e| format!("TCP connect {addr}: {e}")),
            CheckTarget::Grpc { addr, service, tls } => {
                grpc::probe(addr, service, tls.as_ref(), roots).await
            }
            CheckTarget::Script {
                command,
                args,
                task,
            } => script_probe(command, args, def.timeout, script, task).await,
            CheckTarget::Invalid(why) => Err(why.clone()),
        }
    };
    // A script gets a moment past its timeout: the driver kills it and says so itself.
    let grace = match def.target {
        CheckTarget::Script { .. } => Duration::from_secs(5),
        _ => Duration::ZERO,
    };
    match tokio::time::timeout(def.timeout + grace, probe).await {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(out)) => (CRITICAL, out),
        Err(_) => (CRITICAL, format!("timed out after {:?}", def.timeout)),
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
                CheckTarget::Grpc {
                    addr: "10.0.0.1:8080".into(),
                    service: String::new(),
                    tls: None,
                },
            ),
            (
                Check {
                    check_type: "grpc".into(),
                    grpc_service: "db".into(),
                    grpc_use_tls: true,
                    tls_skip_verify: true,
                    ..Default::default()
                },
                CheckTarget::Grpc {
                    addr: "10.0.0.1:8080".into(),
                    service: "db".into(),
                    tls: Some(CheckTls {
                        skip_verify: true,
                        server_name: String::new(),
                    }),
                },
            ),
            (
                Check {
                    check_type: "grpc".into(),
                    grpc_use_tls: true,
                    tls_server_name: "db.internal".into(),
                    ..Default::default()
                },
                CheckTarget::Grpc {
                    addr: "10.0.0.1:8080".into(),
                    service: String::new(),
                    tls: Some(CheckTls {
                        skip_verify: false,
                        server_name: "db.internal".into(),
                    }),
                },
            ),
            (
                Check {
                    check_type: "grpc".into(),
                    tls_server_name: "plain.internal".into(),
                    ..Default::default()
                },
                CheckTarget::Grpc {
                    addr: "10.0.0.1:8080".into(),
                    service: String::new(),
                    tls: None,
                },
            ),
            (
                Check {
                    check_type: "grpc".into(),
                    port: "admin".into(),
                    ..Default::default()
                },
                CheckTarget::Invalid("port label \"admin\" is not allocated".into()),
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
                    tls: CheckTls::default(),
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
    fn health_needs_every_check_passing_or_a_warning_where_warnings_are_ignored() {
        let result = |status: &str| CheckResult {
            status: status.into(),
            ..Default::default()
        };
        let results = |pairs: &[(&str, &str)]| -> IndexMap<String, CheckResult> {
            pairs
                .iter()
                .map(|(n, st)| (n.to_string(), result(st)))
                .collect()
        };
        let strict = vec![("web.a".to_string(), false), ("web.b".to_string(), false)];
        let lenient_b = vec![("web.a".to_string(), false), ("web.b".to_string(), true)];
        let a = PASSING;
        // (expected checks, results, task health, allocation health)
        type Case<'a> = (
            &'a [(String, bool)],
            Vec<(&'a str, &'a str)>,
            Option<bool>,
            Option<bool>,
        );
        let cases: Vec<Case> = vec![
            (&strict, vec![("web.a", a)], Some(true), None),
            (
                &strict,
                vec![("web.a", a), ("web.b", CRITICAL)],
                Some(true),
                None,
            ),
            (
                &strict,
                vec![("web.a", a), ("web.b", a)],
                Some(true),
                Some(true),
            ),
            (
                &strict,
                vec![("web.a", a), ("web.b", WARNING)],
                Some(true),
                None,
            ),
            (
                &lenient_b,
                vec![("web.a", a), ("web.b", WARNING)],
                Some(true),
                Some(true),
            ),
            (
                &lenient_b,
                vec![("web.a", WARNING), ("web.b", a)],
                Some(true),
                None,
            ),
            (
                &lenient_b,
                vec![("web.a", a), ("web.b", CRITICAL)],
                Some(true),
                None,
            ),
            (
                &strict,
                vec![("web.a", a), ("web.b", a)],
                Some(false),
                Some(false),
            ),
            (&strict, vec![("web.a", a), ("web.b", a)], None, None),
            (&[], vec![], Some(true), Some(true)),
        ];
        for (expected, got, tasks, want) in cases {
            let r = results(&got);
            assert_eq!(
                combine_health(tasks, expected, &r),
                want,
                "{expected:?} {got:?}"
            );
        }
    }

    #[test]
    fn http_codes_and_script_exit_codes_follow_consuls_rule() {
        for (code, want) in [
            (200, PASSING),
            (204, PASSING),
            (299, PASSING),
            (301, CRITICAL),
            (429, WARNING),
            (500, CRITICAL),
            (503, CRITICAL),
        ] {
            assert_eq!(http_status(code), want, "{code}");
        }
        for (exit, want) in [
            (Some(0), PASSING),
            (Some(1), WARNING),
            (Some(2), CRITICAL),
            (Some(126), CRITICAL),
            (Some(137), CRITICAL),
            (None, CRITICAL),
        ] {
            assert_eq!(script_status(exit), want, "{exit:?}");
        }
    }

    #[tokio::test]
    async fn probes_pass_warn_and_fail() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 512];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let resp = if req.starts_with("GET /ok ") {
                    "HTTP/1.0 200 OK\r\n\r\n"
                } else if req.starts_with("GET /busy ") {
                    "HTTP/1.0 429 Too Many Requests\r\n\r\n"
                } else {
                    "HTTP/1.0 503 Service Unavailable\r\n\r\n"
                };
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        let http = |path: &str| {
            probe_def(CheckTarget::Http {
                addr: addr.clone(),
                path: path.into(),
                method: "GET".into(),
                headers: vec![],
            })
        };
        assert_eq!(run_check(&http("/ok"), None).await.0, PASSING);
        assert_eq!(run_check(&http("/busy"), None).await.0, WARNING);
        assert_eq!(run_check(&http("/bad"), None).await.0, CRITICAL);
        let tcp = probe_def(CheckTarget::Tcp { addr: addr.clone() });
        assert_eq!(run_check(&tcp, None).await.0, PASSING);
        let script = probe_def(CheckTarget::Script {
            command: "true".into(),
            args: vec![],
            task: "t".into(),
        });
        let (status, out) = run_check(&script, None).await;
        assert_eq!(
            (status, out.as_str()),
            (CRITICAL, "task \"t\" is not running")
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
            failures_before_warning: 0,
            restart: None,
            counts_for_health: true,
            warning_is_healthy: false,
        }
    }

    #[test]
    fn a_check_passes_warns_or_turns_critical_after_its_results_in_a_row() {
        // (success_before_passing, failures_before_warning, failures_before_critical, results
        // as + passing, ~ warning, - critical; statuses after each as p, w, c or . for pending)
        let cases: &[(u32, u32, u32, &str, &str)] = &[
            (0, 0, 0, "+-+", "pcp"),
            (3, 0, 0, "++-+++", "..cccp"),
            (0, 0, 3, "+--+---", "ppppppc"),
            (2, 0, 2, "-+-++-", "....pp"),
            // A warning result counts as a success and becomes the status.
            (0, 0, 0, "~+~-", "wpwc"),
            (2, 0, 0, "~~+", ".wp"),
            // Failures turn the check to a warning first, then critical.
            (0, 1, 3, "+---+", "pwwcp"),
            (0, 2, 3, "---", ".wc"),
            (0, 2, 4, "+--+----", "ppwppwwc"),
            // A warning threshold at or past the critical one is never reached first.
            (0, 3, 2, "---", ".cc"),
            (0, 5, 0, "-", "c"),
        ];
        let status = |c: char| match c {
            '+' => PASSING,
            '~' => WARNING,
            _ => CRITICAL,
        };
        let short = |s: Option<&str>| match s {
            Some(PASSING) => 'p',
            Some(WARNING) => 'w',
            Some(_) => 'c',
            None => '.',
        };
        for (sbp, fbw, fbc, results, want) in cases {
            let mut def = probe_def(CheckTarget::Invalid(String::new()));
            def.success_before_passing = *sbp;
            def.failures_before_warning = *fbw;
            def.failures_before_critical = *fbc;
            let mut counter = CheckCounter::default();
            let got: String = results
                .chars()
                .map(|r| short(counter.observe(status(r), &def)))
                .collect();
            assert_eq!(&got, want, "sbp={sbp} fbw={fbw} fbc={fbc} {results}");
        }
    }

    #[test]
    fn check_restart_is_due_after_its_limit_of_unhealthy_results_past_the_grace() {
        let mut policy = nomos_api::CheckRestart {
            limit: 2,
            grace_ns: 10_000_000_000,
            ignore_warnings: false,
        };
        let s = Duration::from_secs;
        // (status, seconds since the task started) → restart due
        let steps = [
            (CRITICAL, s(1), false),  // inside the grace: not counted
            (CRITICAL, s(5), false),  // still inside
            (CRITICAL, s(11), false), // 1
            (PASSING, s(12), false),  // a pass starts the count again
            (CRITICAL, s(13), false), // 1
            (CRITICAL, s(14), true),  // 2: restart, count starts again
            (WARNING, s(15), false),  // 1: a warning is unhealthy
            (WARNING, s(16), true),   // 2
        ];
        let mut counter = RestartCounter::default();
        for (i, (status, since, due)) in steps.into_iter().enumerate() {
            assert_eq!(counter.observe(status, since, &policy), due, "step {i}");
        }
        policy.ignore_warnings = true;
        let mut counter = RestartCounter::default();
        let ignoring = [
            (WARNING, false),
            (WARNING, false),
            (CRITICAL, false),
            (WARNING, false), // healthy with ignore_warnings: the count starts again
            (CRITICAL, false),
            (CRITICAL, true),
        ];
        for (i, (status, due)) in ignoring.into_iter().enumerate() {
            assert_eq!(
                counter.observe(status, s(60), &policy),
                due,
                "ignoring, step {i}"
            );
        }
        let off = nomos_api::CheckRestart::default();
        assert!(
            !RestartCounter::default().observe(CRITICAL, s(100), &off),
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
            tls_server_name: "web.internal".into(),
            success_before_passing: 2,
            failures_before_critical: 3,
            failures_before_warning: 1,
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
                tls: CheckTls {
                    skip_verify: true,
                    server_name: "web.internal".into(),
                },
            }
        );
        assert_eq!(
            (
                defs[0].success_before_passing,
                defs[0].failures_before_critical,
                defs[0].failures_before_warning
            ),
            (2, 3, 1)
        );
        assert!(defs[0].counts_for_health && !defs[0].warning_is_healthy);
        g.services[0].checks[0].on_update = "ignore".into();
        assert!(
            !check_defs(&g, &alloc, "")[0].counts_for_health,
            "on_update = ignore"
        );
        g.services[0].checks[0].on_update = "ignore_warnings".into();
        let lenient = &check_defs(&g, &alloc, "")[0];
        assert!(lenient.counts_for_health && lenient.warning_is_healthy);
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

    /// Serves `app` over TLS on loopback with a certificate of a fresh CA nobody trusts,
    /// offering `alpn`; its address.
    pub(super) async fn serve_untrusted_tls(app: axum::Router, alpn: &[&[u8]]) -> String {
        serve_tls_at(app, alpn, "127.0.0.1").await.0
    }

    /// Serves `app` over TLS on `ip` (a loopback address) offering `alpn`, with a certificate
    /// of a fresh CA for `server.global.nomad`, `localhost` and 127.0.0.1 only; its address
    /// and the CA's certificate file.
    pub(super) async fn serve_tls_at(
        app: axum::Router,
        alpn: &[&[u8]],
        ip: &str,
    ) -> (String, std::path::PathBuf) {
        use nomos_tls::generate::{self, CertRequest, Role};
        let dir = tempfile::tempdir().unwrap().keep();
        let ca = generate::ca(1).unwrap();
        let pair = generate::cert(&ca, &CertRequest::new(Role::Server)).unwrap();
        let (cert, key, ca_file) = (dir.join("c.pem"), dir.join("k.pem"), dir.join("ca.pem"));
        generate::write_new(&pair, &cert, &key).unwrap();
        std::fs::write(&ca_file, &ca.cert_pem).unwrap();
        let tls = nomos_tls::ServerTls {
            cert_file: cert,
            key_file: key,
            client_ca: None,
        };
        let config = nomos_tls::server_config(&tls, alpn).unwrap();
        let tcp = tokio::net::TcpListener::bind(format!("{ip}:0"))
            .await
            .unwrap();
        let addr = tcp.local_addr().unwrap().to_string();
        let listener = nomos_tls::listener::TlsListener::new(tcp, config);
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr, ca_file)
    }

    fn https_check(addr: &str, skip_verify: bool, server_name: &str) -> CheckDef {
        probe_def(CheckTarget::Https {
            addr: addr.to_string(),
            path: "/h".into(),
            method: "GET".into(),
            headers: vec![],
            tls: CheckTls {
                skip_verify,
                server_name: server_name.into(),
            },
        })
    }

    fn ok_app() -> axum::Router {
        axum::Router::new().route("/h", axum::routing::get(|| async { "ok" }))
    }

    #[tokio::test]
    async fn an_https_check_trusts_an_unknown_certificate_only_with_tls_skip_verify() {
        let addr = serve_untrusted_tls(ok_app(), &[b"http/1.1"]).await;
        let (status, out) = run_check(&https_check(&addr, true, ""), None).await;
        assert_eq!(status, PASSING, "{out}");
        let (status, out) = run_check(&https_check(&addr, false, ""), None).await;
        assert_eq!(status, CRITICAL, "{out}");
        assert!(out.contains("TLS handshake"), "{out}");
    }

    #[tokio::test]
    async fn an_https_check_verifies_the_certificate_for_tls_server_name() {
        // The certificate names 127.0.0.1, not 127.0.0.2, where the server listens.
        let (addr, ca) = serve_tls_at(ok_app(), &[b"http/1.1"], "127.0.0.2").await;
        let run = |name: &'static str| {
            let (addr, ca) = (addr.clone(), ca.clone());
            async move {
                run_check_trusting(&https_check(&addr, false, name), None, Some(ca.as_path())).await
            }
        };
        let (status, out) = run("server.global.nomad").await;
        assert_eq!(status, PASSING, "{out}");
        assert!(out.contains("200"), "{out}");
        for wrong in ["", "other.global.nomad"] {
            let (status, out) = run(wrong).await;
            assert_eq!(status, CRITICAL, "{wrong:?}: {out}");
            assert!(out.contains("certificate"), "{wrong:?}: {out}");
        }
        let (status, out) = run("not a name!").await;
        assert_eq!(status, CRITICAL, "{out}");
        assert!(out.contains("TLS server name"), "{out}");
    }
}
