//! A batch group's `max_run_duration`: the agent stops the allocation's tasks once that long
//! has passed since the allocation was created, and reports it complete in Nomad's words.

mod common;

use common::world::{now_ms, World};
use common::*;
use nomos_api::{Allocation, ClientStatus, JobType, TaskRunState};

/// Places a one-task batch allocation `id` running `script`, its group stopped after
/// `max_run_ms`, created now.
async fn place_batch(w: &World, id: &str, script: &str, max_run_ms: u64) -> Allocation {
    let mut job = job(
        id,
        JobType::Batch,
        vec![raw_task("t", "sh", &["-c", script])],
    );
    job.groups[0].max_run_duration_ns = Some(max_run_ms * 1_000_000);
    let mut a = alloc(id, "n1", &job, 0);
    a.created_at_ms = now_ms();
    place(&*w.store, &a, &job).await;
    a
}

#[tokio::test]
async fn a_batch_task_running_past_max_run_duration_is_stopped_and_the_allocation_completes() {
    let w = World::start();
    let a = place_batch(&w, "m1", "echo started; sleep 600", 2_000).await;
    w.status_where("m1", "running", |s| {
        s.client_status == ClientStatus::Running
    })
    .await;
    let s = w
        .status_where("m1", "stopped by max_run_duration", |s| {
            s.client_status.is_terminal()
        })
        .await;
    let waited = now_ms() - a.created_at_ms;
    assert_eq!(s.client_status, ClientStatus::Complete);
    assert_eq!(s.client_description, "allocation exceeded max_run_duration");
    assert_eq!(s.task_states["t"].state, TaskRunState::Dead);
    assert!(
        waited >= 2_000,
        "stopped after {waited} ms, before the deadline"
    );
    assert!(waited < 30_000, "stopped only after {waited} ms");
    w.stop(&[]).await;
}

#[tokio::test]
async fn a_batch_task_that_ends_before_max_run_duration_is_left_alone() {
    let w = World::start();
    place_batch(&w, "q1", "echo done", 60_000).await;
    let s = w
        .status_where("q1", "complete", |s| s.client_status.is_terminal())
        .await;
    assert_eq!(s.client_status, ClientStatus::Complete);
    assert_eq!(s.client_description, "All tasks have completed");
    w.stop(&[]).await;
}
