//! A batch group's `max_run_duration`: the agent stops the allocation's tasks once that long
//! has passed since the allocation was created, and reports it complete in Nomad's words.

mod common;

use common::world::{now_ms, World};
use common::*;
use nomos_api::{ClientStatus, JobType, TaskRunState};

#[tokio::test]
async fn a_batch_task_running_past_max_run_duration_is_stopped_and_the_allocation_completes() {
    let w = World::start();
    let mut job = job(
        "slow",
        JobType::Batch,
        vec![raw_task("t", "sh", &["-c", "echo started; sleep 600"])],
    );
    job.groups[0].max_run_duration_ns = Some(2_000_000_000);
    let mut a = alloc("m1", "n1", &job, 0);
    a.created_at_ms = now_ms();
    place(&*w.store, &a, &job).await;
    w.status_where("m1", "running", |s| s.client_status == ClientStatus::Running)
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
    assert!(waited >= 2_000, "stopped after {waited} ms, before the deadline");
    assert!(waited < 30_000, "stopped only after {waited} ms");
    w.stop(&[]).await;
}

#[tokio::test]
async fn a_batch_task_that_ends_before_max_run_duration_is_left_alone() {
    let w = World::start();
    let mut job = job(
        "quick",
        JobType::Batch,
        vec![raw_task("t", "sh", &["-c", "echo done"])],
    );
    job.groups[0].max_run_duration_ns = Some(60_000_000_000);
    let mut a = alloc("q1", "n1", &job, 0);
    a.created_at_ms = now_ms();
    place(&*w.store, &a, &job).await;
    let s = w
        .status_where("q1", "complete", |s| s.client_status.is_terminal())
        .await;
    assert_eq!(s.client_status, ClientStatus::Complete);
    assert_eq!(s.client_description, "All tasks have completed");
    w.stop(&[]).await;
}
