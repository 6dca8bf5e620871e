//! The trace of a run: one line per event, with what each action changed in the store, so a
//! failing seed reads as a story. Its digest tells two runs of one seed apart (they must not
//! differ).

use std::fmt::Write as _;

use nomos_api::DesiredStatus;

use crate::observe::Snapshot;

#[derive(Debug, Default, Clone)]
pub struct Trace {
    pub lines: Vec<String>,
}

impl Trace {
    pub fn push(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    /// FNV-1a over every line.
    pub fn digest(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for l in &self.lines {
            for b in l.bytes().chain(std::iter::once(b'\n')) {
                h ^= b as u64;
                h = h.wrapping_mul(0x100_0000_01b3);
            }
        }
        h
    }

    /// The last `n` lines, numbered.
    pub fn tail(&self, n: usize) -> String {
        let start = self.lines.len().saturating_sub(n);
        let mut out = String::new();
        for (i, l) in self.lines.iter().enumerate().skip(start) {
            let _ = writeln!(out, "{i:5} {l}");
        }
        out
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

/// What changed between two snapshots, in a few words per change.
pub fn describe(prev: &Snapshot, cur: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (job, versions) in &cur.versions {
        for v in versions.keys() {
            if !prev.versions.get(job).is_some_and(|p| p.contains_key(v)) {
                out.push(format!("version {}/{v} accepted", job.1));
            }
        }
    }
    for (id, a) in &cur.allocs {
        match prev.allocs.get(id) {
            None => out.push(format!(
                "place {} {} v{} on {}{}{}",
                short(id),
                a.name,
                a.job_version,
                a.node,
                if a.previous_alloc.is_empty() {
                    String::new()
                } else {
                    format!(" replacing {}", short(&a.previous_alloc))
                },
                if a.desired_description == "canary" {
                    " (canary)"
                } else {
                    ""
                }
            )),
            Some(p) if p.desired_status != a.desired_status => out.push(format!(
                "{} {} {}: {}",
                if a.desired_status == DesiredStatus::Run {
                    "resume"
                } else {
                    "stop"
                },
                short(id),
                a.name,
                a.desired_description
            )),
            Some(p) if p.job_version != a.job_version => out.push(format!(
                "in-place {} {} v{} -> v{}",
                short(id),
                a.name,
                p.job_version,
                a.job_version
            )),
            _ => {}
        }
    }
    for id in prev.allocs.keys() {
        if !cur.allocs.contains_key(id) {
            out.push(format!("delete {}", short(id)));
        }
    }
    for (id, s) in &cur.alloc_status {
        let before = prev.alloc_status.get(id);
        if before.map(|b| (b.client_status, b.healthy)) != Some((s.client_status, s.healthy)) {
            out.push(format!(
                "status {} {:?} healthy={:?}",
                short(id),
                s.client_status,
                s.healthy
            ));
        }
    }
    for (job, deps) in &cur.deployments {
        for d in deps {
            let before = prev.deployment(job, &d.id);
            if before.map(|b| (&b.status, &b.status_description))
                != Some((&d.status, &d.status_description))
            {
                out.push(format!(
                    "deployment {} {}: {}",
                    d.id, d.status, d.status_description
                ));
            }
        }
    }
    for (n, lc) in &cur.lifecycle {
        if prev.lifecycle.get(n).map(|p| p.status) != Some(lc.status) {
            out.push(format!("node {n} is {:?}", lc.status));
        }
    }
    for (id, e) in &cur.evals {
        if prev.evals.get(id).map(|p| &p.status) != Some(&e.status) {
            out.push(format!(
                "eval {} {} {} {}",
                short(id),
                e.job_id,
                e.triggered_by,
                e.status
            ));
        }
    }
    out
}
