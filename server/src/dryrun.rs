//! The plan's scheduler dry run: a snapshot of the cluster built from what the store holds now
//! (nodes, their specs and liveness, every live allocation's resources and ports), and the
//! controllers' pure placement engine asked to place the group's new allocations on it.
//! Nothing is written.

use nomos_api::{DesiredStatus, Job, TaskGroup};
use nomos_controllers::scheduler::{
    self, AllocUsage, ClusterSnapshot, PlacementRequest, SchedulerConfig,
};

use crate::views::{AllocView, NodeView, PlanGroup};

/// Builds the snapshot the scheduler would see. Each allocation's usage is taken from its job's
/// current spec (the group it belongs to).
pub fn snapshot(specs: &[Job], nodes: &[NodeView], allocs: &[AllocView]) -> ClusterSnapshot {
    let mut snap = ClusterSnapshot::new();
    for n in nodes {
        snap.upsert_node(n.node.clone(), Some(&n.spec), n.status == "ready");
    }
    for a in allocs {
        let al = &a.allocation;
        if al.desired_status != DesiredStatus::Run || a.client_status().is_terminal() {
            continue;
        }
        let group = specs
            .iter()
            .find(|j| j.id == al.job_id && j.namespace == al.namespace)
            .and_then(|j| j.groups.iter().find(|g| g.name == al.task_group));
        let (cpu, memory_mb, _) = group.map(AllocUsage::ask).unwrap_or_default();
        snap.add_alloc(AllocUsage {
            id: al.id.clone(),
            job: format!("{}/{}", al.namespace, al.job_id),
            group: al.task_group.clone(),
            node: al.node.clone(),
            cpu,
            memory_mb,
            ports: al.ports.iter().map(|p| p.value).collect(),
        });
    }
    snap
}

/// Places the group's missing allocations (all of them for a destructive update, after freeing
/// what the old ones hold) and records the outcome in `out`.
pub fn place_group(
    specs: &[Job],
    nodes: &[NodeView],
    allocs: &[AllocView],
    job: &Job,
    group: &TaskGroup,
    replace_all: bool,
    out: &mut PlanGroup,
) {
    let mut snap = snapshot(specs, nodes, allocs);
    let mine: Vec<&AllocView> = allocs
        .iter()
        .filter(|a| {
            a.allocation.job_id == job.id
                && a.allocation.namespace == job.namespace
                && a.allocation.task_group == group.name
                && a.allocation.desired_status == DesiredStatus::Run
                && !a.client_status().is_terminal()
        })
        .collect();
    let wanted = if replace_all {
        for a in &mine {
            snap.remove_alloc(&a.allocation.id);
        }
        group.count
    } else {
        group.count.saturating_sub(mine.len() as u32)
    };
    if wanted == 0 {
        return;
    }
    let requests: Vec<PlacementRequest> = (0..wanted)
        .map(|i| PlacementRequest {
            alloc_id: format!("plan-{i}"),
            penalty_node: None,
        })
        .collect();
    let results = scheduler::place(
        &mut snap,
        job,
        group,
        &requests,
        &SchedulerConfig::default(),
        0,
    );
    for r in results {
        match r {
            Ok(p) => {
                out.placed += 1;
                *out.placements.entry(p.node).or_default() += 1;
            }
            Err(f) => {
                if out.placement_failure.is_none() {
                    out.placement_failure = Some(f.summary());
                }
            }
        }
    }
}
