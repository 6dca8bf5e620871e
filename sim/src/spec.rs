//! The jobs a simulation runs, and how their tasks behave. A behaviour is written into the job
//! itself (task meta `sim_behavior`), so each version carries its own script and the simulated
//! agents read it from the version they fetched, exactly as a real agent reads a command.

use nomos_api::{
    Check, Disconnect, Job, JobType, MigrateStrategy, Periodic, ReschedulePolicy, Resources,
    RestartPolicy, Service, Task, TaskGroup, UpdateStrategy,
};

const SEC: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;

/// What a task of a version does once started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// Runs for good; its check passes.
    Healthy,
    /// Runs, then exits with `code` after `after_ms` (each run, restarts included).
    Exits { code: i32, after_ms: i64 },
    /// Runs for good, but its check never passes.
    NeverHealthy,
    /// Runs for good; its check alternates passing and critical every `period_ms`.
    Flaps { period_ms: i64 },
    /// Killed by the kernel's OOM killer after `after_ms`.
    OomKilled { after_ms: i64 },
}

impl Behavior {
    pub fn encode(self) -> String {
        match self {
            Behavior::Healthy => "healthy".into(),
            Behavior::Exits { code, after_ms } => format!("exits {code} {after_ms}"),
            Behavior::NeverHealthy => "never-healthy".into(),
            Behavior::Flaps { period_ms } => format!("flaps {period_ms}"),
            Behavior::OomKilled { after_ms } => format!("oom {after_ms}"),
        }
    }

    pub fn decode(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.split_whitespace().collect();
        let num = |i: usize| parts.get(i).and_then(|p| p.parse::<i64>().ok());
        Some(match *parts.first()? {
            "healthy" => Behavior::Healthy,
            "exits" => Behavior::Exits {
                code: num(1)? as i32,
                after_ms: num(2)?,
            },
            "never-healthy" => Behavior::NeverHealthy,
            "flaps" => Behavior::Flaps { period_ms: num(1)? },
            "oom" => Behavior::OomKilled { after_ms: num(1)? },
            _ => return None,
        })
    }

    /// Whether a version with this behaviour can ever finish a deployment.
    pub fn is_good(self) -> bool {
        self == Behavior::Healthy
    }
}

/// The kinds of job a run mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Service,
    Batch,
    System,
    Periodic,
}

/// The rollout settings of a service group.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    pub max_parallel: u32,
    pub canary: u32,
    pub auto_revert: bool,
    pub auto_promote: bool,
    pub min_healthy_ms: u64,
    pub healthy_deadline_ms: u64,
    /// 0: none (the first unhealthy allocation fails the deployment).
    pub progress_deadline_ms: u64,
    /// `checks` (a group check must pass) or `task_states`.
    pub health_check: &'static str,
}

/// Everything about a job except the behaviour of its current version.
#[derive(Debug, Clone, PartialEq)]
pub struct JobShape {
    pub id: String,
    pub kind: Kind,
    pub count: u32,
    pub cpu: u32,
    pub memory_mb: u32,
    pub rollout: Rollout,
    pub reschedule: Option<ReschedulePolicy>,
    pub restart_attempts: u32,
    pub restart_delay_ms: u64,
    pub lost_after_ms: u64,
    pub migrate_max_parallel: u32,
}

pub const BEHAVIOR_META: &str = "sim_behavior";
const GENERATION_META: &str = "sim_generation";

/// The job for `shape` whose task behaves as `behavior`; `generation` makes every user write
/// a distinct spec (a new version), as an edited job file does.
pub fn build(shape: &JobShape, behavior: Behavior, generation: u32) -> Job {
    let mut task = Task {
        name: "main".into(),
        driver: "raw_exec".into(),
        resources: Resources {
            cpu: shape.cpu,
            memory_mb: shape.memory_mb,
            ..Default::default()
        },
        ..Default::default()
    };
    task.config
        .insert("command".into(), serde_json::json!("/bin/sim-task"));
    task.meta.insert(BEHAVIOR_META.into(), behavior.encode());
    task.meta
        .insert(GENERATION_META.into(), generation.to_string());
    let r = &shape.rollout;
    let mut group = TaskGroup {
        name: "g".into(),
        count: shape.count,
        tasks: vec![task],
        restart: Some(RestartPolicy {
            attempts: shape.restart_attempts,
            interval_ns: 30 * 60 * SEC,
            delay_ns: shape.restart_delay_ms * MS,
            mode: "fail".into(),
            render_templates: false,
        }),
        reschedule: shape.reschedule.clone(),
        migrate: Some(MigrateStrategy {
            max_parallel: shape.migrate_max_parallel,
            health_check: "task_states".into(),
            min_healthy_time_ns: 2 * SEC,
            healthy_deadline_ns: 60 * SEC,
        }),
        disconnect: Some(Disconnect {
            lost_after_ns: shape.lost_after_ms * MS,
            replace: true,
            reconcile: "keep_original".into(),
            stop_on_client_after_ns: None,
        }),
        ..Default::default()
    };
    if shape.kind == Kind::Service && r.health_check == "checks" {
        group.services.push(Service {
            name: format!("{}-svc", shape.id),
            provider: "nomad".into(),
            checks: vec![Check {
                name: "alive".into(),
                check_type: "script".into(),
                command: "/bin/true".into(),
                interval_ns: 5 * SEC,
                timeout_ns: 2 * SEC,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    let mut job = Job {
        id: shape.id.clone(),
        name: shape.id.clone(),
        namespace: "default".into(),
        region: "global".into(),
        priority: 50,
        datacenters: vec!["dc1".into()],
        groups: vec![group],
        ..Default::default()
    };
    match shape.kind {
        Kind::Service => {
            job.job_type = JobType::Service;
            job.update = Some(UpdateStrategy {
                max_parallel: r.max_parallel,
                health_check: r.health_check.into(),
                min_healthy_time_ns: r.min_healthy_ms * MS,
                healthy_deadline_ns: r.healthy_deadline_ms * MS,
                progress_deadline_ns: r.progress_deadline_ms * MS,
                auto_revert: r.auto_revert,
                auto_promote: r.auto_promote,
                canary: r.canary,
                stagger_ns: 30 * SEC,
            });
        }
        Kind::Batch => job.job_type = JobType::Batch,
        Kind::System => job.job_type = JobType::System,
        Kind::Periodic => {
            job.job_type = JobType::Batch;
            job.periodic = Some(Periodic {
                crons: vec!["*/2 * * * *".into()],
                time_zone: "UTC".into(),
                prohibit_overlap: true,
                enabled: true,
            });
        }
    }
    job
}

/// The behaviour written into a version, if it is one of the simulation's.
pub fn behavior_of(job: &Job) -> Behavior {
    job.groups
        .first()
        .and_then(|g| g.tasks.first())
        .and_then(|t| t.meta.get(BEHAVIOR_META))
        .and_then(|b| Behavior::decode(b))
        .unwrap_or(Behavior::Healthy)
}

/// The stored form of a job (what a GitOps pipeline writes at `/nomos/jobs/<ns>/<job>`).
pub fn stored(job: &Job) -> Vec<u8> {
    serde_json::to_vec(job).unwrap_or_default()
}

/// A default shape: a service of `count` copies rolling one at a time.
pub fn service(id: &str, count: u32) -> JobShape {
    JobShape {
        id: id.into(),
        kind: Kind::Service,
        count,
        cpu: 200,
        memory_mb: 128,
        rollout: Rollout {
            max_parallel: 1,
            canary: 0,
            auto_revert: false,
            auto_promote: false,
            min_healthy_ms: 2_000,
            healthy_deadline_ms: 60_000,
            progress_deadline_ms: 300_000,
            health_check: "checks",
        },
        reschedule: None,
        restart_attempts: 1,
        restart_delay_ms: 2_000,
        lost_after_ms: 60_000,
        migrate_max_parallel: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviours_round_trip_through_their_text() {
        for b in [
            Behavior::Healthy,
            Behavior::Exits {
                code: 1,
                after_ms: 3000,
            },
            Behavior::NeverHealthy,
            Behavior::Flaps { period_ms: 7000 },
            Behavior::OomKilled { after_ms: 100 },
        ] {
            assert_eq!(Behavior::decode(&b.encode()), Some(b));
        }
        assert_eq!(Behavior::decode("dance"), None);
    }

    #[test]
    fn every_kind_of_simulated_job_is_a_valid_stored_spec() {
        for kind in [Kind::Service, Kind::Batch, Kind::System, Kind::Periodic] {
            let mut shape = service("j", 2);
            shape.kind = kind;
            let job = build(&shape, Behavior::Healthy, 1);
            let parsed = nomos_api::parse_stored_spec("/nomos/jobs/default/j", &stored(&job))
                .unwrap_or_else(|e| panic!("{kind:?}: {e:?}"));
            let back = &parsed.jobs[0];
            assert_eq!(behavior_of(back), Behavior::Healthy);
            assert_eq!(back.groups[0].count, 2);
        }
    }
}
