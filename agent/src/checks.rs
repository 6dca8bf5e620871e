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
            let target = match (c.check_type.as_str(), addr) {
                ("http", Some(addr)) if c.protocol.is_empty() || c.protocol == "http" => {
                    CheckTarget::Http {
                        addr,
                        path: if c.path.is_empty() {
                            "/".into()
                        } else {
                            c.path.clone()
                        },
                        method: if c.method.is_empty() {
                            "GET".into()
                        } else {
                            c.method.clone()
                        },
                        headers: c
                            .header
                            .iter()
                            .flat_map(|(k, vs)| vs.iter().map(move |v| (k.clone(), v.clone())))
                            .collect(),
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
                    task: task.clone(),
                },
                (other, _) => {
                    CheckTarget::Invalid(format!("check type {other:?} is not supported"))
                }
            };
            out.push(CheckDef {
                name: check_name(&svc_name, &c.name, &c.check_type, i),
                target,
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
                CheckTarget::Invalid(
                    "protocol \"https\" is not supported by the agent's checks".into(),
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
        let def = |target| CheckDef {
            name: "c".into(),
            target,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
        };
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
}
