//! What the event stream says about the bench's allocations: each `Allocation` event of
//! `GET /v1/event/stream` carries the whole allocation in Nomad's shape (its job, desired and
//! client status, task states with their events), so a run can tell when every allocation of
//! its job is `running`, or which task failed and with what event.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

/// Task event types that mean a `sleep 3600` task did not simply start.
const FAILURE_EVENTS: &[&str] = &[
    "Driver Failure",
    "Setup Failure",
    "Failed Validation",
    "Terminated",
    "Not Restarting",
];

/// The parts of Nomad's allocation the tracker reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Alloc {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "JobID")]
    job_id: String,
    desired_status: String,
    client_status: String,
    client_description: String,
    task_states: Option<HashMap<String, TaskState>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct TaskState {
    failed: bool,
    events: Option<Vec<TaskEvent>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct TaskEvent {
    #[serde(rename = "Type")]
    kind: String,
    message: String,
}

/// The allocations seen so far, by ID (the latest event of each).
#[derive(Debug, Default)]
pub struct Tracker {
    allocs: HashMap<String, Alloc>,
}

/// Where one job stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Allocations of the job that should run.
    pub wanted: usize,
    /// Of those, how many report `running`.
    pub running: usize,
    /// Allocations of the job (any desired status) not yet in a terminal client status.
    pub live: usize,
    /// The first failure seen among the allocations that should run, as
    /// `allocation ID task NAME: TYPE: MESSAGE`.
    pub failure: Option<String>,
}

impl Tracker {
    /// Takes one line of the stream (`{"Index", "Events": [...]}`, or a `{}` heartbeat);
    /// events of other topics are ignored. An error names what did not decode.
    pub fn apply(&mut self, line: &str) -> Result<(), String> {
        let batch: Value =
            serde_json::from_str(line).map_err(|e| format!("a line is not JSON ({e}): {line}"))?;
        let events = batch["Events"].as_array().cloned().unwrap_or_default();
        for ev in events.iter().filter(|e| e["Topic"] == "Allocation") {
            let a = Alloc::deserialize(&ev["Payload"]["Allocation"])
                .map_err(|e| format!("allocation event {} does not decode: {e}", ev["Key"]))?;
            // Removed from the store (a purge): nothing of it is left to wait for.
            if ev["Type"] == "AllocationDeleted" {
                self.allocs.remove(&a.id);
                continue;
            }
            self.allocs.insert(a.id.clone(), a);
        }
        Ok(())
    }

    /// Where `job` stands.
    pub fn progress(&self, job: &str) -> Progress {
        let mut p = Progress::default();
        let mut of_job: Vec<&Alloc> = self.allocs.values().filter(|a| a.job_id == job).collect();
        of_job.sort_by(|a, b| a.id.cmp(&b.id));
        for a in of_job {
            if !matches!(a.client_status.as_str(), "complete" | "failed" | "lost") {
                p.live += 1;
            }
            if a.desired_status != "run" {
                continue;
            }
            p.wanted += 1;
            if a.client_status == "running" {
                p.running += 1;
            }
            if p.failure.is_none() {
                p.failure = failure_of(a);
            }
        }
        p
    }

    /// Drops what is known about `job`'s allocations.
    pub fn forget(&mut self, job: &str) {
        self.allocs.retain(|_, a| a.job_id != job);
    }
}

/// The failure an allocation shows, if any: a failed or lost allocation, a failed task, or a
/// task event that a long `sleep` should never have.
fn failure_of(a: &Alloc) -> Option<String> {
    let id = &a.id;
    for (task, state) in a.task_states.iter().flatten() {
        let bad = state
            .events
            .iter()
            .flatten()
            .find(|e| FAILURE_EVENTS.contains(&e.kind.as_str()));
        if let Some(e) = bad {
            return Some(format!(
                "allocation {id} task {task}: {}: {}",
                e.kind, e.message
            ));
        }
        if state.failed {
            return Some(format!("allocation {id} task {task} failed"));
        }
    }
    matches!(a.client_status.as_str(), "failed" | "lost").then(|| {
        format!(
            "allocation {id} is {}: {}",
            a.client_status, a.client_description
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// One line of the stream with one allocation event.
    fn alloc(id: &str, job: &str, desired: &str, client: &str, events: Value) -> String {
        let states = if events.is_null() {
            Value::Null
        } else {
            json!({"sleep": {"State": "running", "Failed": false, "Events": events}})
        };
        json!({"Index": 7, "Events": [{"Topic": "Allocation", "Type": "AllocationUpdated",
               "Key": id, "Namespace": "default", "FilterKeys": [job], "Index": 7,
               "Payload": {"Allocation": {"ID": id, "JobID": job, "DesiredStatus": desired,
                           "ClientStatus": client, "ClientDescription": "",
                           "TaskStates": states}}}]})
        .to_string()
    }

    fn progress(lines: &[String], job: &str) -> Progress {
        let mut t = Tracker::default();
        for l in lines {
            t.apply(l).unwrap();
        }
        t.progress(job)
    }

    #[test]
    fn progress_counts_the_jobs_allocations_by_status() {
        let started = json!([{"Type": "Started", "Message": ""}]);
        let p = |wanted, running, live| Progress {
            wanted,
            running,
            live,
            failure: None,
        };
        for (lines, want) in [
            (vec![], p(0, 0, 0)),
            (
                vec![alloc("a", "j", "run", "pending", Value::Null)],
                p(1, 0, 1),
            ),
            (
                vec![alloc("a", "j", "run", "running", started.clone())],
                p(1, 1, 1),
            ),
            (
                vec![
                    alloc("a", "j", "run", "pending", Value::Null),
                    alloc("b", "other", "run", "pending", Value::Null),
                ],
                p(1, 0, 1),
            ),
            (
                vec![
                    alloc("a", "j", "run", "running", started.clone()),
                    alloc("a", "j", "stop", "running", started),
                ],
                p(0, 0, 1),
            ),
            (
                vec![alloc("a", "j", "stop", "complete", json!([]))],
                p(0, 0, 0),
            ),
        ] {
            assert_eq!(progress(&lines, "j"), want, "{lines:?}");
        }
    }

    #[test]
    fn a_failed_task_names_its_event() {
        let events = json!([
            {"Type": "Received", "Message": ""},
            {"Type": "Driver Failure", "Message": "no such file: /bin/sleep"}
        ]);
        let p = progress(&[alloc("a", "j", "run", "pending", events)], "j");
        assert_eq!(
            p.failure.as_deref(),
            Some("allocation a task sleep: Driver Failure: no such file: /bin/sleep")
        );
        let p = progress(&[alloc("a", "j", "run", "failed", json!([]))], "j");
        assert_eq!(p.failure.as_deref(), Some("allocation a is failed: "));
    }

    #[test]
    fn forgetting_a_job_drops_only_its_allocations() {
        let mut t = Tracker::default();
        for l in [
            alloc("a", "j", "run", "pending", Value::Null),
            alloc("b", "k", "run", "pending", Value::Null),
        ] {
            t.apply(&l).unwrap();
        }
        t.forget("j");
        assert_eq!(t.progress("j").wanted, 0);
        assert_eq!(t.progress("k").wanted, 1);
    }

    #[test]
    fn a_deleted_allocation_is_no_longer_live() {
        let mut t = Tracker::default();
        t.apply(&alloc("a", "j", "stop", "running", Value::Null))
            .unwrap();
        assert_eq!(t.progress("j").live, 1);
        let deleted = alloc("a", "j", "stop", "running", Value::Null)
            .replace("AllocationUpdated", "AllocationDeleted");
        t.apply(&deleted).unwrap();
        assert_eq!(t.progress("j").live, 0);
    }

    #[test]
    fn heartbeats_and_other_topics_are_ignored_and_garbage_is_an_error() {
        let mut t = Tracker::default();
        assert_eq!(t.apply("{}"), Ok(()));
        let job =
            json!({"Index": 3, "Events": [{"Topic": "Job", "Key": "j", "Payload": {"Job": {}}}]});
        assert_eq!(t.apply(&job.to_string()), Ok(()));
        assert!(t.apply("not json").unwrap_err().contains("not JSON"));
        let bad = json!({"Index": 3, "Events": [{"Topic": "Allocation", "Key": "a",
                          "Payload": {"Allocation": {"JobID": 5}}}]});
        assert!(t.apply(&bad.to_string()).unwrap_err().contains("\"a\""));
    }
}
