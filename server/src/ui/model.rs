//! What the UI's templates show, built purely from the API's views: table rows with their links,
//! resource bars, short IDs and times ("3m ago", with the UTC time as a tooltip). The clock is
//! passed in, so every function here is tested without a store.

use std::collections::HashMap;

use indexmap::IndexMap;
use nomos_api::{DesiredStatus, GroupSummary, Job};
use nomos_controllers::scheduler::ClusterSnapshot;
use serde::Serialize;

use crate::views::{AllocView, JobListEntry, NodeView};

/// The first 8 characters of an ID, as `nctl` and Nomad show them.
pub fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

/// Percent-encodes one path segment (everything but RFC 3986's unreserved characters).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?namespace=NS` for a namespace other than `default`.
pub fn ns_query(namespace: &str) -> String {
    if namespace.is_empty() || namespace == "default" {
        String::new()
    } else {
        format!("?namespace={}", encode_segment(namespace))
    }
}

pub fn job_href(namespace: &str, id: &str) -> String {
    format!("/ui/job/{}{}", encode_segment(id), ns_query(namespace))
}

pub fn node_href(name: &str) -> String {
    format!("/ui/node/{}", encode_segment(name))
}

pub fn alloc_href(id: &str) -> String {
    format!("/ui/allocation/{}", encode_segment(id))
}

/// A duration in its largest unit or two: `45s`, `3m`, `2h5m`, `4d3h`.
pub fn human_duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => match (s % 3600) / 60 {
            0 => format!("{}h", s / 3600),
            m => format!("{}h{m}m", s / 3600),
        },
        _ => match (s % 86_400) / 3600 {
            0 => format!("{}d", s / 86_400),
            h => format!("{}d{h}h", s / 86_400),
        },
    }
}

/// How long ago `t_ms` was (`—` for an unset time).
pub fn age(now_ms: i64, t_ms: i64) -> String {
    if t_ms <= 0 {
        "—".into()
    } else {
        human_duration(now_ms - t_ms)
    }
}

/// A time in UTC, to the second (`—` for an unset time).
pub fn utc(t_ms: i64) -> String {
    if t_ms <= 0 {
        return "—".into();
    }
    match jiff::Timestamp::from_millisecond(t_ms) {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => "—".into(),
    }
}

/// A point in time shown relative to now, with the UTC time as a tooltip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct When {
    /// `5m ago`, `in 3m`, `now` or `—`.
    pub text: String,
    pub title: String,
}

pub fn when(now_ms: i64, t_ms: Option<i64>) -> When {
    match t_ms.filter(|t| *t > 0) {
        None => When {
            text: "—".into(),
            title: String::new(),
        },
        Some(t) => {
            let d = t - now_ms;
            let text = if d.abs() < 1000 {
                "now".to_string()
            } else if d > 0 {
                format!("in {}", human_duration(d))
            } else {
                format!("{} ago", human_duration(-d))
            };
            When {
                text,
                title: utc(t),
            }
        }
    }
}

/// `1.2 GHz` or `800 MHz`.
pub fn mhz(v: u64) -> String {
    if v >= 1000 {
        format!("{:.1} GHz", v as f64 / 1000.0)
    } else {
        format!("{v} MHz")
    }
}

/// `1.5 GiB` or `512 MiB`.
pub fn mib(v: u64) -> String {
    if v >= 1024 {
        format!("{:.1} GiB", v as f64 / 1024.0)
    } else {
        format!("{v} MiB")
    }
}

/// A small "used of capacity" bar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bar {
    pub used: u64,
    pub total: u64,
    /// 0..=100 (capped; `text` tells the real numbers when over-committed).
    pub percent: u32,
    /// `1.2 GHz / 4.0 GHz`.
    pub text: String,
    /// `ok` below 75 %, `warn` below 95 %, `full` above.
    pub level: &'static str,
}

pub fn bar(used: u64, total: u64, fmt: fn(u64) -> String) -> Bar {
    let percent = match total {
        0 if used == 0 => 0,
        0 => 100,
        t => ((used.saturating_mul(100)) / t).min(100) as u32,
    };
    Bar {
        used,
        total,
        percent,
        text: format!("{} / {}", fmt(used), fmt(total)),
        level: match percent {
            0..=74 => "ok",
            75..=94 => "warn",
            _ => "full",
        },
    }
}

/// What a node's live allocations hold of what it can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct NodeUsage {
    pub ready: bool,
    pub cpu_used_mhz: u64,
    pub cpu_total_mhz: u64,
    pub memory_used_mb: u64,
    pub memory_total_mb: u64,
}

/// Per node: capacity (minus the node's reservation) and what its live allocations (desired to
/// run, not finished) hold, from the controllers' own snapshot ([`crate::usage`]).
pub fn node_usage(snap: &ClusterSnapshot) -> HashMap<String, NodeUsage> {
    snap.nodes()
        .map(|n| {
            (
                n.node.name.clone(),
                NodeUsage {
                    ready: n.ready,
                    cpu_used_mhz: n.used_cpu as u64,
                    cpu_total_mhz: n.cpu_capacity() as u64,
                    memory_used_mb: n.used_memory_mb as u64,
                    memory_total_mb: n.memory_capacity() as u64,
                },
            )
        })
        .collect()
}

/// One group's counts in a jobs table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupRow {
    pub name: String,
    pub summary: GroupSummary,
}

/// One line of the jobs table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRow {
    pub namespace: String,
    pub id: String,
    pub name: String,
    pub job_type: String,
    pub status: String,
    pub version: u64,
    pub priority: i32,
    pub groups: Vec<GroupRow>,
    /// Periodic children folded under this job.
    pub children: usize,
    pub href: String,
}

pub fn job_row(e: &JobListEntry, children: usize) -> JobRow {
    JobRow {
        namespace: e.namespace.clone(),
        id: e.id.clone(),
        name: e.name.clone(),
        job_type: e.job_type.clone(),
        status: e.status.clone(),
        version: e.version,
        priority: e.priority,
        groups: groups(&e.summary),
        children,
        href: job_href(&e.namespace, &e.id),
    }
}

pub fn groups(summary: &IndexMap<String, GroupSummary>) -> Vec<GroupRow> {
    summary
        .iter()
        .map(|(name, s)| GroupRow {
            name: name.clone(),
            summary: s.clone(),
        })
        .collect()
}

/// `(namespace, parent id)` of every periodic or dispatched child among the stored specs, by
/// `(namespace, id)`.
pub fn periodic_parents(specs: &[Job]) -> HashMap<(String, String), String> {
    specs
        .iter()
        .filter_map(|j| {
            let parent = j.parent_id()?;
            Some(((j.namespace.clone(), j.id.clone()), parent.to_string()))
        })
        .collect()
}

/// The overview's jobs: periodic children are folded under their parent (counted on its row),
/// unless the parent is gone.
pub fn job_rows(entries: &[JobListEntry], specs: &[Job]) -> Vec<JobRow> {
    let parents = periodic_parents(specs);
    let exists = |ns: &str, id: &str| entries.iter().any(|e| e.namespace == ns && e.id == id);
    let mut children: HashMap<(String, String), usize> = HashMap::new();
    for ((ns, _), parent) in &parents {
        *children.entry((ns.clone(), parent.clone())).or_default() += 1;
    }
    entries
        .iter()
        .filter(
            |e| match parents.get(&(e.namespace.clone(), e.id.clone())) {
                Some(parent) => !exists(&e.namespace, parent),
                None => true,
            },
        )
        .map(|e| {
            let n = children
                .get(&(e.namespace.clone(), e.id.clone()))
                .copied()
                .unwrap_or(0);
            job_row(e, n)
        })
        .collect()
}

/// One line of the nodes (topology) table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeRow {
    pub name: String,
    pub id_short: String,
    pub datacenter: String,
    pub node_class: String,
    pub status: String,
    pub eligible: bool,
    pub draining: bool,
    /// The drain loop's state (`draining`, `blocked`, `complete`, `cancelled`), once reported.
    pub drain_state: Option<String>,
    pub allocations: u32,
    pub cpu: Bar,
    pub memory: Bar,
    pub href: String,
}

pub fn node_row(n: &NodeView, usage: Option<&NodeUsage>) -> NodeRow {
    let u = usage.copied().unwrap_or_default();
    NodeRow {
        name: n.node.name.clone(),
        id_short: short_id(&n.node.id),
        datacenter: n.node.datacenter.clone(),
        node_class: n.node.node_class.clone(),
        status: n.status.clone(),
        eligible: n.eligible,
        draining: n.draining,
        drain_state: n.drain_status.as_ref().map(|d| d.state.to_string()),
        allocations: n.allocations,
        cpu: bar(u.cpu_used_mhz, u.cpu_total_mhz, mhz),
        memory: bar(u.memory_used_mb, u.memory_total_mb, mib),
        href: node_href(&n.node.name),
    }
}

/// One line of an allocations table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AllocRow {
    pub id: String,
    pub short_id: String,
    pub name: String,
    pub namespace: String,
    pub job_id: String,
    pub group: String,
    pub node: String,
    pub job_version: u64,
    pub desired: String,
    pub client_status: String,
    pub age: String,
    pub created: String,
    pub href: String,
    pub job_href: String,
    pub node_href: String,
}

/// A status enum's JSON name (`run`, `running`, ...).
pub fn enum_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub fn alloc_row(a: &AllocView, now_ms: i64) -> AllocRow {
    let al = &a.allocation;
    AllocRow {
        id: al.id.clone(),
        short_id: short_id(&al.id),
        name: al.name.clone(),
        namespace: al.namespace.clone(),
        job_id: al.job_id.clone(),
        group: al.task_group.clone(),
        node: al.node.clone(),
        job_version: al.job_version,
        desired: enum_name(&al.desired_status),
        client_status: enum_name(&a.client_status()),
        age: age(now_ms, al.created_at_ms),
        created: utc(al.created_at_ms),
        href: alloc_href(&al.id),
        job_href: job_href(&al.namespace, &al.job_id),
        node_href: node_href(&al.node),
    }
}

/// Allocations newest first, live ones (desired to run, not finished) before the rest.
pub fn alloc_rows<'a>(
    allocs: impl IntoIterator<Item = &'a AllocView>,
    now_ms: i64,
) -> Vec<AllocRow> {
    let mut v: Vec<&AllocView> = allocs.into_iter().collect();
    v.sort_by_key(|a| {
        let live =
            a.allocation.desired_status == DesiredStatus::Run && !a.client_status().is_terminal();
        (!live, std::cmp::Reverse(a.allocation.created_at_ms))
    });
    v.into_iter().map(|a| alloc_row(a, now_ms)).collect()
}

/// The numbers at the top of the overview.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Counts {
    pub jobs: usize,
    pub jobs_running: usize,
    pub jobs_pending: usize,
    pub jobs_dead: usize,
    pub nodes: usize,
    pub nodes_ready: usize,
    pub nodes_disconnected: usize,
    pub nodes_down: usize,
    pub allocs_running: usize,
    pub allocs_pending: usize,
    pub allocs_failed: usize,
    pub cpu: Option<Bar>,
    pub memory: Option<Bar>,
}

/// `jobs` are the overview's rows (periodic children folded under their parent).
pub fn counts(
    jobs: &[JobRow],
    nodes: &[NodeView],
    allocs: &[AllocView],
    usage: &HashMap<String, NodeUsage>,
) -> Counts {
    use nomos_api::ClientStatus;
    let jobs_with = |s: &str| jobs.iter().filter(|j| j.status == s).count();
    let nodes_with = |s: &str| nodes.iter().filter(|n| n.status == s).count();
    let live = |a: &&AllocView| a.allocation.desired_status == DesiredStatus::Run;
    let allocs_with = |s: ClientStatus| {
        allocs
            .iter()
            .filter(live)
            .filter(|a| a.client_status() == s)
            .count()
    };
    let total = cluster_usage(usage);
    Counts {
        jobs: jobs.len(),
        jobs_running: jobs_with("running"),
        jobs_pending: jobs_with("pending"),
        jobs_dead: jobs_with("dead"),
        nodes: nodes.len(),
        nodes_ready: nodes_with("ready"),
        nodes_disconnected: nodes_with("disconnected"),
        nodes_down: nodes_with("down"),
        allocs_running: allocs_with(ClientStatus::Running),
        allocs_pending: allocs_with(ClientStatus::Pending),
        allocs_failed: allocs
            .iter()
            .filter(|a| a.client_status() == ClientStatus::Failed)
            .count(),
        cpu: Some(bar(total.cpu_used_mhz, total.cpu_total_mhz, mhz)),
        memory: Some(bar(total.memory_used_mb, total.memory_total_mb, mib)),
    }
}

/// The sum over ready nodes: what the cluster can place on now, and what is held there.
pub fn cluster_usage(usage: &HashMap<String, NodeUsage>) -> NodeUsage {
    usage
        .values()
        .filter(|u| u.ready)
        .fold(NodeUsage::default(), |mut acc, u| {
            acc.ready = true;
            acc.cpu_used_mhz += u.cpu_used_mhz;
            acc.cpu_total_mhz += u.cpu_total_mhz;
            acc.memory_used_mb += u.memory_used_mb;
            acc.memory_total_mb += u.memory_total_mb;
            acc
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomos_api::build;

    #[test]
    fn durations_read_in_their_largest_units() {
        for (ms, want) in [
            (0, "0s"),
            (-5, "0s"),
            (45_000, "45s"),
            (180_000, "3m"),
            (3_600_000, "1h"),
            (7_500_000, "2h5m"),
            (86_400_000 * 4 + 3_600_000 * 3, "4d3h"),
        ] {
            assert_eq!(human_duration(ms), want, "{ms}");
        }
    }

    #[test]
    fn times_are_relative_with_the_utc_time_as_tooltip() {
        let now = 1_700_000_000_000;
        assert_eq!(when(now, Some(now - 300_000)).text, "5m ago");
        assert_eq!(when(now, Some(now + 180_000)).text, "in 3m");
        assert_eq!(when(now, Some(now)).text, "now");
        assert_eq!(when(now, None).text, "—");
        assert_eq!(when(now, Some(0)).text, "—");
        assert_eq!(
            when(now, Some(now)).title,
            "2023-11-14 22:13:20 UTC",
            "UTC, to the second"
        );
        assert_eq!(age(now, 0), "—");
    }

    #[test]
    fn bars_cap_at_full_and_grade_their_level() {
        let b = bar(1200, 4000, mhz);
        assert_eq!((b.percent, b.level), (30, "ok"));
        assert_eq!(b.text, "1.2 GHz / 4.0 GHz");
        assert_eq!(bar(80, 100, mib).level, "warn");
        let over = bar(150, 100, mib);
        assert_eq!((over.percent, over.level), (100, "full"));
        assert_eq!(over.text, "150 MiB / 100 MiB");
        assert_eq!(bar(0, 0, mib).percent, 0);
        assert_eq!(bar(5, 0, mib).percent, 100);
    }

    #[test]
    fn links_encode_their_segments_and_name_other_namespaces() {
        assert_eq!(job_href("default", "web"), "/ui/job/web");
        assert_eq!(
            job_href("prod", "a b/c"),
            "/ui/job/a%20b%2Fc?namespace=prod"
        );
        assert_eq!(node_href("n1.dc"), "/ui/node/n1.dc");
        assert_eq!(alloc_href("<x>"), "/ui/allocation/%3Cx%3E");
        assert_eq!(short_id("0123456789ab"), "01234567");
    }

    fn entry(ns: &str, id: &str) -> JobListEntry {
        JobListEntry {
            namespace: ns.into(),
            id: id.into(),
            name: id.into(),
            job_type: "batch".into(),
            priority: 50,
            stop: false,
            status: "running".into(),
            version: 0,
            summary: IndexMap::new(),
            modify_index: 1,
        }
    }

    fn child(ns: &str, id: &str, parent: &str) -> Job {
        let mut j = Job {
            namespace: ns.into(),
            ..build::job(id).build()
        };
        j.labels.insert(
            nomos_controllers::periodic::PARENT_LABEL.into(),
            parent.into(),
        );
        j
    }

    #[test]
    fn periodic_children_fold_under_their_parent_unless_it_is_gone() {
        let entries = [
            entry("default", "report"),
            entry("default", "report-periodic-1"),
            entry("default", "report-periodic-2"),
            entry("default", "orphan-periodic-1"),
            entry("default", "web"),
        ];
        let specs = [
            child("default", "report-periodic-1", "report"),
            child("default", "report-periodic-2", "report"),
            child("default", "orphan-periodic-1", "orphan"),
        ];
        let rows = job_rows(&entries, &specs);
        let shown: Vec<(&str, usize)> = rows.iter().map(|r| (r.id.as_str(), r.children)).collect();
        assert_eq!(shown, [("report", 2), ("orphan-periodic-1", 0), ("web", 0)]);
    }
}
