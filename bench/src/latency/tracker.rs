//! What the event stream says about the bench's allocations: which job each allocation
//! belongs to (from `/nomos/allocs/…`) and its client status and task events (from
//! `/nomos/allocstatus/…`), so a run can tell when every allocation of its job is `running`,
//! or which task failed and with what event.

use std::collections::HashMap;

use nomos_api::{AllocStatus, Allocation, ClientStatus, DesiredStatus};
use serde_json::Value;

/// Task event types that mean a `sleep 3600` task did not simply start.
const FAILURE_EVENTS: &[&str] = &[
    "Driver Failure",
    "Setup Failure",
    "Failed Validation",
    "Terminated",
    "Not Restarting",
];

#[derive(Debug, Clone)]
struct Alloc {
    job: String,
    stopping: bool,
}

/// The allocations seen so far.
#[derive(Debug, Default)]
pub struct Tracker {
    allocs: HashMap<String, Alloc>,
    statuses: HashMap<String, AllocStatus>,
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
    /// Takes one event of `/v1/events` (`{"type", "topic", "key", "value"}`); other topics are
    /// ignored. An error names what did not decode.
    pub fn apply(&mut self, data: &str) -> Result<(), String> {
        let ev: Value = serde_json::from_str(data)
            .map_err(|e| format!("an event is not JSON ({e}): {data}"))?;
        let key = ev["key"].as_str().unwrap_or_default();
        let Some(id) = key.rsplit('/').next().filter(|id| !id.is_empty()) else {
            return Ok(());
        };
        let deleted = ev["type"] == "delete";
        match ev["topic"].as_str() {
            Some("allocs") if deleted => {
                self.allocs.remove(id);
                self.statuses.remove(id);
            }
            Some("allocs") => {
                let a: Allocation = decode(key, &ev["value"])?;
                let stopping = a.desired_status != DesiredStatus::Run;
                let alloc = Alloc {
                    job: a.job_id,
                    stopping,
                };
                self.allocs.insert(id.to_string(), alloc);
            }
            Some("allocstatus") if deleted => {
                self.statuses.remove(id);
            }
            Some("allocstatus") => {
                let s: AllocStatus = decode(key, &ev["value"])?;
                self.statuses.insert(id.to_string(), s);
            }
            _ => {}
        }
        Ok(())
    }

    /// Where `job` stands.
    pub fn progress(&self, job: &str) -> Progress {
        let mut p = Progress::default();
        for (id, a) in self.allocs.iter().filter(|(_, a)| a.job == job) {
            let status = self.statuses.get(id);
            let client = status.map(|s| s.client_status).unwrap_or_default();
            if !client.is_terminal() {
                p.live += 1;
            }
            if a.stopping {
                continue;
            }
            p.wanted += 1;
            if client == ClientStatus::Running {
                p.running += 1;
            }
            if p.failure.is_none() {
                p.failure = status.and_then(|s| failure_of(id, s));
            }
        }
        p
    }

    /// Drops what is known about `job`'s allocations.
    pub fn forget(&mut self, job: &str) {
        let gone: Vec<String> = self
            .allocs
            .iter()
            .filter(|(_, a)| a.job == job)
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            self.allocs.remove(&id);
            self.statuses.remove(&id);
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(key: &str, value: &Value) -> Result<T, String> {
    T::deserialize(value).map_err(|e| format!("{key} does not decode: {e}"))
}

/// The failure an allocation status shows, if any: a failed or lost allocation, a failed task,
/// or a task event that a long `sleep` should never have.
fn failure_of(id: &str, s: &AllocStatus) -> Option<String> {
    for (task, state) in &s.task_states {
        let bad = state
            .events
            .iter()
            .find(|e| FAILURE_EVENTS.contains(&e.event_type.as_str()));
        if let Some(e) = bad {
            return Some(format!(
                "allocation {id} task {task}: {}: {}",
                e.event_type, e.message
            ));
        }
        if state.failed {
            return Some(format!("allocation {id} task {task} failed"));
        }
    }
    matches!(s.client_status, ClientStatus::Failed | ClientStatus::Lost).then(|| {
        format!(
            "allocation {id} is {:?}: {}",
            s.client_status, s.client_description
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alloc(id: &str, job: &str, desired: &str) -> String {
        json!({"type": "put", "topic": "allocs", "key": format!("/nomos/allocs/n1/{id}"),
               "value": {"id": id, "job_id": job, "namespace": "default", "node": "n1",
                         "desired_status": desired}})
        .to_string()
    }

    fn status(id: &str, client: &str, events: Value) -> String {
        json!({"type": "put", "topic": "allocstatus", "key": format!("/nomos/allocstatus/n1/{id}"),
               "value": {"alloc_id": id, "client_status": client,
                         "task_states": {"sleep": {"state": "running", "events": events}}}})
        .to_string()
    }

    fn delete(topic: &str, id: &str) -> String {
        json!({"type": "delete", "topic": topic, "key": format!("/nomos/{topic}/n1/{id}"),
               "value": null})
        .to_string()
    }

    fn progress(events: &[String], job: &str) -> Progress {
        let mut t = Tracker::default();
        for e in events {
            t.apply(e).unwrap();
        }
        t.progress(job)
    }

    #[test]
    fn progress_counts_the_jobs_allocations_by_status() {
        let started = json!([{"type": "Started", "message": "", "time_ms": 1}]);
        let p = |wanted, running, live| Progress {
            wanted,
            running,
            live,
            failure: None,
        };
        for (events, want) in [
            (vec![], p(0, 0, 0)),
            (vec![alloc("a", "j", "run")], p(1, 0, 1)),
            (
                vec![
                    alloc("a", "j", "run"),
                    status("a", "running", started.clone()),
                ],
                p(1, 1, 1),
            ),
            (
                vec![alloc("a", "j", "run"), alloc("b", "other", "run")],
                p(1, 0, 1),
            ),
            (
                vec![
                    alloc("a", "j", "run"),
                    status("a", "running", started.clone()),
                    alloc("a", "j", "stop"),
                ],
                p(0, 0, 1),
            ),
            (
                vec![alloc("a", "j", "stop"), status("a", "complete", json!([]))],
                p(0, 0, 0),
            ),
            (
                vec![alloc("a", "j", "run"), delete("allocs", "a")],
                p(0, 0, 0),
            ),
            (
                vec![
                    alloc("a", "j", "run"),
                    status("a", "running", started),
                    delete("allocstatus", "a"),
                ],
                p(1, 0, 1),
            ),
        ] {
            assert_eq!(progress(&events, "j"), want, "{events:?}");
        }
    }

    #[test]
    fn a_failed_task_names_its_event() {
        let events = json!([
            {"type": "Received", "message": "", "time_ms": 1},
            {"type": "Driver Failure", "message": "no such file: /bin/sleep", "time_ms": 2}
        ]);
        let p = progress(
            &[alloc("a", "j", "run"), status("a", "pending", events)],
            "j",
        );
        assert_eq!(
            p.failure.as_deref(),
            Some("allocation a task sleep: Driver Failure: no such file: /bin/sleep")
        );
        let p = progress(
            &[alloc("a", "j", "run"), status("a", "failed", json!([]))],
            "j",
        );
        assert_eq!(p.failure.as_deref(), Some("allocation a is Failed: "));
    }

    #[test]
    fn forgetting_a_job_drops_only_its_allocations() {
        let mut t = Tracker::default();
        for e in [alloc("a", "j", "run"), alloc("b", "k", "run")] {
            t.apply(&e).unwrap();
        }
        t.forget("j");
        assert_eq!(t.progress("j").wanted, 0);
        assert_eq!(t.progress("k").wanted, 1);
    }

    #[test]
    fn other_topics_are_ignored_and_garbage_is_an_error() {
        let mut t = Tracker::default();
        let job = json!({"type": "put", "topic": "jobs", "key": "/nomos/jobs/default/j",
                         "value": {"id": "j"}});
        assert_eq!(t.apply(&job.to_string()), Ok(()));
        assert!(t.apply("not json").unwrap_err().contains("not JSON"));
        let bad = json!({"type": "put", "topic": "allocs", "key": "/nomos/allocs/n1/a",
                         "value": {"job_id": 5}});
        assert!(t
            .apply(&bad.to_string())
            .unwrap_err()
            .contains("/nomos/allocs/n1/a"));
    }
}
