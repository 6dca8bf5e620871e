//! Pure decisions of the agent: which allocations to start, stop or forget given the desired
//! allocations and what runs locally, and an allocation's overall status from its tasks.

use std::collections::{BTreeMap, BTreeSet};

use indexmap::IndexMap;
use nomos_api::{Allocation, ClientStatus, DesiredStatus, TaskRunState, TaskState};

/// What the agent knows about an allocation it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAlloc {
    pub job_version: u64,
    /// The `job_spec_hash` of the allocation value it runs (empty on old allocations).
    pub job_spec_hash: String,
    pub stopping: bool,
}

/// One step of convergence.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Desired to run and not running here: fetch its job version and start it.
    Start(Allocation),
    /// Running here and now desired `stop`/`evict`: stop its tasks, keep reporting.
    Stop(String),
    /// Running here, its key is gone: stop its tasks, then remove its state and status.
    Forget(String),
    /// Running here and still desired, naming another job version or spec.
    Update(Allocation),
}

/// What an allocation's status says once its group's `max_run_duration` stopped it (Nomad's
/// words; the allocation is then `complete`).
pub const MAX_RUN_EXCEEDED: &str = "allocation exceeded max_run_duration";

/// Whether an allocation created at `created_at_ms` must be stopped at `now_ms` because its
/// group's `max_run_duration` (measured, as Nomad does, from the allocation's creation) has
/// passed.
pub fn max_run_exceeded(group: &nomos_api::TaskGroup, created_at_ms: i64, now_ms: i64) -> bool {
    group.max_run_duration_ns.is_some_and(|ns| {
        let ms = i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX);
        now_ms >= created_at_ms.saturating_add(ms)
    })
}

/// Converges local allocations onto the desired ones (keyed by allocation id).
pub fn plan(
    desired: &BTreeMap<String, Allocation>,
    local: &BTreeMap<String, LocalAlloc>,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for (id, alloc) in desired {
        let wants_run = alloc.desired_status == DesiredStatus::Run;
        match local.get(id) {
            None if wants_run => actions.push(Action::Start(alloc.clone())),
            None => {}
            Some(l) if !wants_run && !l.stopping => actions.push(Action::Stop(id.clone())),
            Some(l)
                if wants_run
                    && !l.stopping
                    && (l.job_version != alloc.job_version
                        || l.job_spec_hash != alloc.job_spec_hash) =>
            {
                actions.push(Action::Update(alloc.clone()))
            }
            Some(_) => {}
        }
    }
    let desired_ids: BTreeSet<&String> = desired.keys().collect();
    for id in local.keys() {
        if !desired_ids.contains(id) {
            actions.push(Action::Forget(id.clone()));
        }
    }
    actions
}

/// The spec hash of a stored job version, as compared with an allocation's `job_spec_hash`
/// (`wanted`): the hash of the parsed job ([`nomos_api::spec_hash`]), or, when only that one
/// matches, the hash of the stored bytes themselves (controllers store a version as exactly the
/// compact JSON the hash is taken of, so a float that does not survive parsing bit for bit
/// cannot make the same spec look like another).
pub fn stored_spec_hash(stored: &[u8], job: &nomos_api::Job, wanted: &str) -> String {
    use sha2::{Digest, Sha256};
    let parsed = nomos_api::spec_hash(job);
    if parsed == wanted {
        return parsed;
    }
    let digest = Sha256::digest(stored);
    let raw: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    if raw == wanted {
        raw
    } else {
        parsed
    }
}

/// The allocation's client status from its tasks' states.
pub fn client_status(tasks: &IndexMap<String, TaskState>) -> ClientStatus {
    if tasks.is_empty() {
        return ClientStatus::Pending;
    }
    if tasks
        .values()
        .any(|t| t.state == TaskRunState::Dead && t.failed)
    {
        return ClientStatus::Failed;
    }
    if tasks.values().all(|t| t.state == TaskRunState::Dead) {
        return ClientStatus::Complete;
    }
    if tasks.values().any(|t| t.state == TaskRunState::Running) {
        return ClientStatus::Running;
    }
    ClientStatus::Pending
}

/// Health from task states: healthy once every task has run for `min_healthy_ms` (or a batch
/// allocation completed), unhealthy once it failed, unknown before.
pub fn health(
    tasks: &IndexMap<String, TaskState>,
    min_healthy_ms: u64,
    now_ms: i64,
) -> Option<bool> {
    match client_status(tasks) {
        ClientStatus::Failed => Some(false),
        ClientStatus::Complete => Some(true),
        ClientStatus::Running
            if tasks.values().all(|t| {
                t.state == TaskRunState::Running || (t.state == TaskRunState::Dead && !t.failed)
            }) =>
        {
            let newest = tasks
                .values()
                .filter(|t| t.state == TaskRunState::Running)
                .map(|t| t.started_at_ms)
                .max()
                .unwrap_or(now_ms);
            (now_ms - newest >= min_healthy_ms as i64).then_some(true)
        }
        _ => None,
    }
}

/// The lifecycle phases of an allocation, in the order they are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Phase {
    #[default]
    Prestart,
    Main,
    Poststart,
    Poststop,
}

/// The lifecycle phase a task starts in (its `lifecycle.hook`; main tasks have none).
pub fn task_phase(lifecycle: Option<&nomos_api::Lifecycle>) -> Phase {
    match lifecycle.map(|l| l.hook.as_str()) {
        Some("prestart") => Phase::Prestart,
        Some("poststart") => Phase::Poststart,
        Some("poststop") => Phase::Poststop,
        _ => Phase::Main,
    }
}

/// Whether a task runs once to completion within the allocation (a hook that is not a sidecar).
pub fn is_ephemeral(lifecycle: Option<&nomos_api::Lifecycle>) -> bool {
    lifecycle
        .map(|l| !l.hook.is_empty() && !l.sidecar)
        .unwrap_or(false)
}

/// The phase an allocation has reached, from its tasks' `(phase, sidecar, state)`: main tasks
/// start once ephemeral prestart tasks completed and prestart sidecars run; poststart tasks once
/// every main task runs; poststop tasks once every main task is dead.
pub fn lifecycle_phase<S: std::borrow::Borrow<TaskState>>(tasks: &[(Phase, bool, S)]) -> Phase {
    let of = |phase: Phase, sidecar: Option<bool>| {
        tasks
            .iter()
            .filter(move |(p, s, _)| *p == phase && sidecar.map(|x| x == *s).unwrap_or(true))
            .map(|(_, _, st)| st.borrow())
    };
    // Main tasks all dead (ended, or killed before they started): poststop tasks run.
    if of(Phase::Main, None).next().is_some()
        && of(Phase::Main, None).all(|s| s.state == TaskRunState::Dead)
    {
        return Phase::Poststop;
    }
    let prestart_done =
        of(Phase::Prestart, Some(false)).all(|s| s.state == TaskRunState::Dead && !s.failed);
    let sidecars_up = of(Phase::Prestart, Some(true)).all(|s| s.state != TaskRunState::Pending);
    if !(prestart_done && sidecars_up) {
        return Phase::Prestart;
    }
    if !of(Phase::Main, None).all(|s| s.state != TaskRunState::Pending) {
        return Phase::Main;
    }
    if !of(Phase::Main, None).all(|s| s.state == TaskRunState::Dead) {
        return Phase::Poststart;
    }
    Phase::Poststop
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_run_duration_counts_from_the_allocations_creation() {
        let mut g = nomos_api::TaskGroup::default();
        assert!(
            !max_run_exceeded(&g, 0, i64::MAX),
            "no max_run_duration: never"
        );
        g.max_run_duration_ns = Some(5_000_000_000);
        let cases = [
            (1_000, 5_999, false),
            (1_000, 6_000, true),
            (1_000, 90_000, true),
        ];
        for (created, now, want) in cases {
            assert_eq!(
                max_run_exceeded(&g, created, now),
                want,
                "created {created}, now {now}"
            );
        }
    }

    fn alloc(id: &str, ver: u64, status: DesiredStatus) -> Allocation {
        Allocation {
            id: id.into(),
            job_version: ver,
            desired_status: status,
            ..Default::default()
        }
    }
    fn local(ver: u64, stopping: bool) -> LocalAlloc {
        LocalAlloc {
            job_version: ver,
            job_spec_hash: String::new(),
            stopping,
        }
    }

    fn alloc_of_spec(id: &str, ver: u64, hash: &str) -> Allocation {
        Allocation {
            job_spec_hash: hash.into(),
            ..alloc(id, ver, DesiredStatus::Run)
        }
    }

    #[test]
    fn plan_table() {
        use DesiredStatus::*;
        type Case = (
            &'static str,
            Vec<Allocation>,
            Vec<(&'static str, LocalAlloc)>,
            Vec<Action>,
        );
        let cases: Vec<Case> = vec![
            ("nothing to do", vec![], vec![], vec![]),
            (
                "desired and missing starts",
                vec![alloc("a", 1, Run)],
                vec![],
                vec![Action::Start(alloc("a", 1, Run))],
            ),
            (
                "desired stop and missing is ignored",
                vec![alloc("a", 1, Stop)],
                vec![],
                vec![],
            ),
            (
                "running and desired is left alone",
                vec![alloc("a", 1, Run)],
                vec![("a", local(1, false))],
                vec![],
            ),
            (
                "desired stop stops",
                vec![alloc("a", 1, Stop)],
                vec![("a", local(1, false))],
                vec![Action::Stop("a".into())],
            ),
            (
                "evict stops",
                vec![alloc("a", 1, Evict)],
                vec![("a", local(1, false))],
                vec![Action::Stop("a".into())],
            ),
            (
                "already stopping is not stopped twice",
                vec![alloc("a", 1, Stop)],
                vec![("a", local(1, true))],
                vec![],
            ),
            (
                "deleted key is forgotten",
                vec![],
                vec![("a", local(1, false))],
                vec![Action::Forget("a".into())],
            ),
            (
                "new job version updates",
                vec![alloc("a", 2, Run)],
                vec![("a", local(1, false))],
                vec![Action::Update(alloc("a", 2, Run))],
            ),
            (
                "another spec under the same version updates",
                vec![alloc_of_spec("a", 1, "h2")],
                vec![(
                    "a",
                    LocalAlloc {
                        job_spec_hash: "h1".into(),
                        ..local(1, false)
                    },
                )],
                vec![Action::Update(alloc_of_spec("a", 1, "h2"))],
            ),
        ];
        for (name, desired, locals, want) in cases {
            let d: BTreeMap<_, _> = desired.into_iter().map(|a| (a.id.clone(), a)).collect();
            let l: BTreeMap<_, _> = locals
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            assert_eq!(plan(&d, &l), want, "{name}");
        }
    }

    fn ts(state: TaskRunState, failed: bool, started: i64) -> TaskState {
        TaskState {
            state,
            failed,
            started_at_ms: started,
            ..Default::default()
        }
    }

    #[test]
    fn client_status_and_health_table() {
        use TaskRunState::*;
        let cases: Vec<(&str, Vec<TaskState>, ClientStatus, Option<bool>)> = vec![
            ("no tasks", vec![], ClientStatus::Pending, None),
            (
                "all pending",
                vec![ts(Pending, false, 0)],
                ClientStatus::Pending,
                None,
            ),
            (
                "running long enough",
                vec![ts(Running, false, 0), ts(Running, false, 100)],
                ClientStatus::Running,
                Some(true),
            ),
            (
                "running not long enough",
                vec![ts(Running, false, 0), ts(Running, false, 15_000)],
                ClientStatus::Running,
                None,
            ),
            (
                "one failed",
                vec![ts(Running, false, 0), ts(Dead, true, 0)],
                ClientStatus::Failed,
                Some(false),
            ),
            (
                "all done",
                vec![ts(Dead, false, 0), ts(Dead, false, 0)],
                ClientStatus::Complete,
                Some(true),
            ),
            (
                "one restarting",
                vec![ts(Running, false, 0), ts(Pending, false, 0)],
                ClientStatus::Running,
                None,
            ),
        ];
        for (name, states, want_status, want_health) in cases {
            let m: IndexMap<String, TaskState> = states
                .into_iter()
                .enumerate()
                .map(|(i, s)| (format!("t{i}"), s))
                .collect();
            assert_eq!(client_status(&m), want_status, "{name}");
            assert_eq!(health(&m, 10_000, 20_000), want_health, "{name}");
        }
    }

    #[test]
    fn lifecycle_phase_table() {
        use TaskRunState::*;
        let st = |state, failed| TaskState {
            state,
            failed,
            ..Default::default()
        };
        type Case = (&'static str, Vec<(Phase, bool, TaskState)>, Phase);
        let cases: Vec<Case> = vec![
            (
                "only main tasks pending",
                vec![(Phase::Main, false, st(Pending, false))],
                Phase::Main,
            ),
            (
                "prestart pending holds main",
                vec![
                    (Phase::Prestart, false, st(Pending, false)),
                    (Phase::Main, false, st(Pending, false)),
                ],
                Phase::Prestart,
            ),
            (
                "prestart running holds main",
                vec![
                    (Phase::Prestart, false, st(Running, false)),
                    (Phase::Main, false, st(Pending, false)),
                ],
                Phase::Prestart,
            ),
            (
                "prestart failed holds main",
                vec![
                    (Phase::Prestart, false, st(Dead, true)),
                    (Phase::Main, false, st(Pending, false)),
                ],
                Phase::Prestart,
            ),
            (
                "prestart done releases main",
                vec![
                    (Phase::Prestart, false, st(Dead, false)),
                    (Phase::Main, false, st(Pending, false)),
                ],
                Phase::Main,
            ),
            (
                "sidecar running releases main",
                vec![
                    (Phase::Prestart, true, st(Running, false)),
                    (Phase::Main, false, st(Pending, false)),
                ],
                Phase::Main,
            ),
            (
                "main running releases poststart",
                vec![
                    (Phase::Main, false, st(Running, false)),
                    (Phase::Poststart, false, st(Pending, false)),
                ],
                Phase::Poststart,
            ),
            (
                "main dead releases poststop",
                vec![
                    (Phase::Main, false, st(Dead, false)),
                    (Phase::Poststop, false, st(Pending, false)),
                ],
                Phase::Poststop,
            ),
            (
                "main killed before prestart finished releases poststop",
                vec![
                    (Phase::Prestart, false, st(Running, false)),
                    (Phase::Main, false, st(Dead, false)),
                    (Phase::Poststop, false, st(Pending, false)),
                ],
                Phase::Poststop,
            ),
        ];
        for (name, tasks, want) in cases {
            assert_eq!(lifecycle_phase(&tasks), want, "{name}");
        }
    }

    #[test]
    fn a_stored_version_matches_by_its_parsed_spec_or_its_exact_bytes() {
        let job = nomos_api::build::job("web").build();
        let bytes = serde_json::to_vec(&job).unwrap();
        let hash = nomos_api::spec_hash(&job);
        assert_eq!(stored_spec_hash(&bytes, &job, &hash), hash);
        // Bytes that parse to another job value still match when they are what was hashed.
        let other = nomos_api::build::job("other").build();
        assert_eq!(stored_spec_hash(&bytes, &other, &hash), hash);
        // Another spec reports its own hash.
        let pretty = serde_json::to_vec_pretty(&other).unwrap();
        let found = stored_spec_hash(&pretty, &other, &hash);
        assert_eq!(found, nomos_api::spec_hash(&other));
        assert_ne!(found, hash);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn desired_strategy() -> impl Strategy<Value = BTreeMap<String, Allocation>> {
            prop::collection::btree_map("[a-e]", (0u64..3, 0u8..3), 0..5).prop_map(|m| {
                m.into_iter()
                    .map(|(id, (ver, st))| {
                        let status = [
                            DesiredStatus::Run,
                            DesiredStatus::Stop,
                            DesiredStatus::Evict,
                        ][st as usize];
                        (id.clone(), alloc(&id, ver, status))
                    })
                    .collect()
            })
        }

        fn local_strategy() -> impl Strategy<Value = BTreeMap<String, LocalAlloc>> {
            prop::collection::btree_map("[a-e]", (0u64..3, any::<bool>()), 0..5).prop_map(|m| {
                m.into_iter()
                    .map(|(id, (v, s))| (id, local(v, s)))
                    .collect()
            })
        }

        fn apply(local: &mut BTreeMap<String, LocalAlloc>, actions: &[Action]) {
            for a in actions {
                match a {
                    Action::Start(x) => {
                        local.insert(
                            x.id.clone(),
                            LocalAlloc {
                                job_version: x.job_version,
                                job_spec_hash: x.job_spec_hash.clone(),
                                stopping: false,
                            },
                        );
                    }
                    Action::Stop(id) => {
                        if let Some(l) = local.get_mut(id) {
                            l.stopping = true;
                        }
                    }
                    Action::Forget(id) => {
                        local.remove(id);
                    }
                    Action::Update(x) => {
                        if let Some(l) = local.get_mut(&x.id) {
                            l.job_version = x.job_version;
                            l.job_spec_hash = x.job_spec_hash.clone();
                        }
                    }
                }
            }
        }

        proptest! {
            #[test]
            fn plans_never_start_what_is_not_desired_to_run_and_converge(desired in desired_strategy(), mut locals in local_strategy()) {
                let actions = plan(&desired, &locals);
                let mut seen = BTreeSet::new();
                for a in &actions {
                    let id = match a {
                        Action::Start(x) | Action::Update(x) => x.id.clone(),
                        Action::Stop(id) | Action::Forget(id) => id.clone(),
                    };
                    prop_assert!(seen.insert(id.clone()), "two actions for {}", id);
                    if let Action::Start(x) = a {
                        prop_assert_eq!(x.desired_status, DesiredStatus::Run);
                        prop_assert!(!locals.contains_key(&x.id));
                    }
                    if let Action::Forget(id) = a {
                        prop_assert!(!desired.contains_key(id));
                    }
                }
                for id in locals.keys() {
                    if !desired.contains_key(id) {
                        prop_assert!(actions.contains(&Action::Forget(id.clone())));
                    }
                }
                apply(&mut locals, &actions);
                prop_assert_eq!(plan(&desired, &locals), vec![], "a second plan after applying the first has nothing to do");
            }
        }
    }
}
