//! Table and property tests of the periodic schedule and launch decisions.

use super::*;
use nomos_api::{GroupSummary, JobType, Periodic};
use proptest::prelude::*;

fn ms(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<jiff::Timestamp>()
        .expect("valid timestamp in test")
        .as_millisecond()
}

fn sched(cron: &str, tz: &str) -> Schedule {
    Schedule::new(&[cron.to_string()], tz).expect("valid schedule in test")
}

fn periodic_job(cron: &str, prohibit_overlap: bool) -> Job {
    Job {
        id: "report".into(),
        namespace: "default".into(),
        job_type: JobType::Batch,
        periodic: Some(Periodic {
            crons: vec![cron.into()],
            time_zone: "UTC".into(),
            prohibit_overlap,
            enabled: true,
        }),
        ..Default::default()
    }
}

fn child(parent: &str, tick: &str, state: ChildState) -> Child {
    let t = ms(tick);
    Child {
        id: child_id(parent, t),
        launch_ms: t,
        state,
        finished_ms: None,
    }
}

fn waiting_for(tick: &str) -> PeriodicStatus {
    PeriodicStatus {
        next_launch_ms: Some(ms(tick)),
        ..Default::default()
    }
}

// ---- schedules across daylight-saving changes ----

// Nomad's rule (its periodic docs): a time that a spring-forward change skips does not run
// that day; a time that a fall-back change repeats runs twice.

#[test]
fn fixed_time_in_a_new_york_spring_forward_gap_is_skipped_that_day() {
    let s = sched("30 2 * * *", "America/New_York");
    // 2024-03-10 02:30 does not exist in New York (02:00 EST -> 03:00 EDT).
    assert_eq!(
        s.next_after(ms("2024-03-09T17:00:00Z")),
        Some(ms("2024-03-11T06:30:00Z")),
        "no run on the 10th: 02:30 EDT on the 11th"
    );
}

#[test]
fn fixed_time_in_a_new_york_fall_back_fold_runs_in_both_passes() {
    let s = sched("30 1 * * *", "America/New_York");
    // 2024-11-03 01:30 happens twice: 05:30Z (EDT) and 06:30Z (EST).
    let ticks = s.ticks_between(ms("2024-11-02T12:00:00Z"), ms("2024-11-05T00:00:00Z"), 10);
    let want = [
        "2024-11-03T05:30:00Z",
        "2024-11-03T06:30:00Z",
        "2024-11-04T06:30:00Z",
    ];
    assert_eq!(ticks, want.map(ms));
    // Looking back from inside the fold finds the pass just made.
    assert_eq!(
        s.last_at_or_before(ms("2024-11-03T06:45:00Z")),
        Some(ms("2024-11-03T06:30:00Z"))
    );
    assert_eq!(
        s.last_at_or_before(ms("2024-11-03T06:15:00Z")),
        Some(ms("2024-11-03T05:30:00Z"))
    );
}

#[test]
fn the_hour_after_a_fold_runs_once() {
    // 02:00 comes once on 2024-11-03 in New York: after the clocks went back to 01:00.
    let s = sched("0 2 * * *", "America/New_York");
    let ticks = s.ticks_between(ms("2024-11-03T00:00:00Z"), ms("2024-11-04T12:00:00Z"), 10);
    assert_eq!(
        ticks,
        ["2024-11-03T07:00:00Z", "2024-11-04T07:00:00Z"].map(ms)
    );
}

#[test]
fn fixed_time_in_a_berlin_spring_forward_gap_is_skipped_that_day() {
    let s = sched("0 2 * * *", "Europe/Berlin");
    // 2024-03-31 02:00 CET -> 03:00 CEST: no 02:00 that day.
    assert_eq!(
        s.next_after(ms("2024-03-30T12:00:00Z")),
        Some(ms("2024-04-01T00:00:00Z"))
    );
}

#[test]
fn the_last_minute_before_a_gap_still_runs() {
    let s = sched("59 1 * * *", "Europe/Berlin");
    assert_eq!(
        s.next_after(ms("2024-03-30T12:00:00Z")),
        Some(ms("2024-03-31T00:59:00Z"))
    );
}

#[test]
fn interval_in_berlin_fall_back_runs_in_both_passes_every_half_hour_of_real_time() {
    let s = sched("*/30 * * * *", "Europe/Berlin");
    // 2024-10-27 03:00 CEST -> 02:00 CET: local 02:00-02:59 happens twice.
    let ticks = s.ticks_between(ms("2024-10-26T23:59:00Z"), ms("2024-10-27T02:00:00Z"), 10);
    let want: Vec<i64> = ["00:00", "00:30", "01:00", "01:30", "02:00"]
        .iter()
        .map(|t| ms(&format!("2024-10-27T{t}:00Z")))
        .collect();
    assert_eq!(ticks, want);
}

#[test]
fn interval_in_new_york_spring_forward_skips_the_missing_hour() {
    let s = sched("0 * * * *", "America/New_York");
    let ticks = s.ticks_between(ms("2024-03-10T05:30:00Z"), ms("2024-03-10T08:00:00Z"), 10);
    // 01:00 EST (06:00Z), then 03:00 EDT (07:00Z), 04:00 EDT (08:00Z): one hour of real time each.
    assert_eq!(
        ticks,
        vec![
            ms("2024-03-10T06:00:00Z"),
            ms("2024-03-10T07:00:00Z"),
            ms("2024-03-10T08:00:00Z")
        ]
    );
}

#[test]
fn several_crons_take_the_earliest_tick() {
    let s = Schedule::new(&["0 12 * * *".into(), "0 6 * * *".into()], "UTC").unwrap();
    assert_eq!(
        s.next_after(ms("2024-01-01T00:00:00Z")),
        Some(ms("2024-01-01T06:00:00Z"))
    );
    assert_eq!(
        s.next_after(ms("2024-01-01T06:00:00Z")),
        Some(ms("2024-01-01T12:00:00Z"))
    );
}

#[test]
fn schedule_errors_name_the_problem() {
    assert_eq!(
        Schedule::new(&[], "UTC").unwrap_err(),
        ScheduleError::NoCron
    );
    assert!(matches!(
        Schedule::new(&["* * *".into()], "UTC"),
        Err(ScheduleError::Cron { .. })
    ));
    assert_eq!(
        Schedule::new(&["* * * * *".into()], "Mars/Olympus").unwrap_err(),
        ScheduleError::TimeZone("Mars/Olympus".into())
    );
}

// ---- fields as Nomad reads them: 5, 6 (year last), 7 (second first, year last) ----

#[test]
fn crons_of_five_six_and_seven_fields_read_as_nomad_reads_them() {
    // (expression, after, the next ticks)
    let cases: &[(&str, &str, &[&str])] = &[
        // Five fields: minute hour day month weekday.
        (
            "0 12 * * *",
            "2024-01-01T00:00:00Z",
            &["2024-01-01T12:00:00Z", "2024-01-02T12:00:00Z"],
        ),
        // Six fields end with the year, not start with seconds: every ten minutes.
        (
            "*/10 * * * * *",
            "2024-01-01T00:00:00Z",
            &["2024-01-01T00:10:00Z", "2024-01-01T00:20:00Z"],
        ),
        (
            "0 12 1 * * 2025",
            "2024-06-01T00:00:00Z",
            &["2025-01-01T12:00:00Z", "2025-02-01T12:00:00Z"],
        ),
        // Seven fields: second first, year last.
        (
            "30 0 12 * * * *",
            "2024-01-01T00:00:00Z",
            &["2024-01-01T12:00:30Z", "2024-01-02T12:00:30Z"],
        ),
        (
            "0 0 0 1 1 * 2030",
            "2026-06-01T00:00:00Z",
            &["2030-01-01T00:00:00Z"],
        ),
        // Shortcuts.
        ("@daily", "2024-01-01T00:00:00Z", &["2024-01-02T00:00:00Z"]),
        (
            "@midnight",
            "2024-01-01T00:00:00Z",
            &["2024-01-02T00:00:00Z"],
        ),
        ("@hourly", "2024-01-01T00:30:00Z", &["2024-01-01T01:00:00Z"]),
    ];
    for (expr, after, want) in cases {
        let s = sched(expr, "UTC");
        let got = s.ticks_between(ms(after), ms("2100-01-01T00:00:00Z"), want.len());
        let want: Vec<i64> = want.iter().map(|t| ms(t)).collect();
        assert_eq!(got, want, "{expr}");
    }
}

#[test]
fn a_year_fires_only_in_that_year() {
    let s = sched("0 0 0 1 1 * 2030", "UTC");
    let first = s.next_after(ms("2026-06-01T00:00:00Z")).unwrap();
    assert_eq!(first, ms("2030-01-01T00:00:00Z"));
    assert_eq!(s.next_after(first), None, "not again in 2031");
}

#[test]
fn a_year_that_has_passed_never_fires() {
    for expr in ["0 0 0 1 1 * 2020", "0 0 1 1 * 2019", "*/5 * * * * 2023"] {
        for tz in ["UTC", "America/New_York"] {
            let s = sched(expr, tz);
            assert_eq!(
                s.next_after(ms("2024-06-01T00:00:00Z")),
                None,
                "{expr} in {tz}"
            );
        }
    }
}

#[test]
fn a_year_field_in_a_time_zone_with_daylight_saving() {
    // 02:30 every day of 2025 in New York: skipped on 9 March (gap), once on 2 November.
    let s = sched("30 2 * * * 2025", "America/New_York");
    let march = s.ticks_between(ms("2025-03-08T00:00:00Z"), ms("2025-03-11T00:00:00Z"), 10);
    assert_eq!(
        march,
        ["2025-03-08T07:30:00Z", "2025-03-10T06:30:00Z"].map(ms)
    );
    let last = s.last_at_or_before(ms("2030-01-01T00:00:00Z"));
    assert_eq!(last, Some(ms("2025-12-31T07:30:00Z")));
}

// ---- child names ----

#[test]
fn child_ids_are_deterministic_from_the_tick() {
    let t = ms("2024-01-01T00:05:00Z");
    assert_eq!(child_id("report", t), "report-periodic-1704067500");
    assert_eq!(child_tick("report", "report-periodic-1704067500"), Some(t));
    assert_eq!(child_tick("report", "other-periodic-1704067500"), None);
    assert_eq!(child_tick("report", "report-periodic-x"), None);
    let c = child_job(&periodic_job("*/5 * * * *", false), t);
    assert_eq!(c.id, "report-periodic-1704067500");
    assert_eq!(c.name, "report/periodic-1704067500");
    assert!(nomos_api::validate::validate(&Job {
        datacenters: vec!["dc1".into()],
        priority: 50,
        ..c.clone()
    })
    .iter()
    .all(|i| !i.message.contains("invalid job id")));
    assert!(c.periodic.is_none());
    assert_eq!(
        c.labels.get(PARENT_LABEL).map(String::as_str),
        Some("report")
    );
}

// ---- launch decisions ----

struct Case {
    name: &'static str,
    job: Job,
    children: Vec<Child>,
    previous: Option<PeriodicStatus>,
    now: &'static str,
    launch: Option<&'static str>,
    skipped: Option<&'static str>,
    missed: Option<&'static str>,
    next: Option<&'static str>,
}

#[test]
fn launch_decisions() {
    let every5 = || periodic_job("*/5 * * * *", false);
    let exclusive = || periodic_job("*/5 * * * *", true);
    let cases = vec![
        Case {
            name: "first sight never launches a past tick, waits for the next one",
            job: every5(),
            children: vec![],
            previous: None,
            now: "2024-01-01T00:07:00Z",
            launch: None,
            skipped: None,
            missed: None,
            next: Some("2024-01-01T00:10:00Z"),
        },
        Case {
            name: "waiting before the tick does nothing",
            job: every5(),
            children: vec![],
            previous: Some(waiting_for("2024-01-01T00:10:00Z")),
            now: "2024-01-01T00:09:59Z",
            launch: None,
            skipped: None,
            missed: None,
            next: Some("2024-01-01T00:10:00Z"),
        },
        Case {
            name: "a due tick launches its child and waits for the following one",
            job: every5(),
            children: vec![],
            previous: Some(waiting_for("2024-01-01T00:10:00Z")),
            now: "2024-01-01T00:10:01Z",
            launch: Some("2024-01-01T00:10:00Z"),
            skipped: None,
            missed: None,
            next: Some("2024-01-01T00:15:00Z"),
        },
        Case {
            name: "a tick missed while down is not launched and the schedule resumes after now",
            job: every5(),
            children: vec![],
            previous: Some(waiting_for("2024-01-01T00:10:00Z")),
            now: "2024-01-01T00:27:00Z",
            launch: None,
            skipped: None,
            missed: Some("2024-01-01T00:10:00Z"),
            next: Some("2024-01-01T00:30:00Z"),
        },
        Case {
            name: "a child that already exists for the tick is not launched again",
            job: every5(),
            children: vec![child("report", "2024-01-01T00:10:00Z", ChildState::Active)],
            previous: Some(waiting_for("2024-01-01T00:10:00Z")),
            now: "2024-01-01T00:10:02Z",
            launch: None,
            skipped: None,
            missed: None,
            next: Some("2024-01-01T00:15:00Z"),
        },
        Case {
            name: "prohibit_overlap skips a tick while a child runs",
            job: exclusive(),
            children: vec![child("report", "2024-01-01T00:05:00Z", ChildState::Active)],
            previous: Some(waiting_for("2024-01-01T00:10:00Z")),
            now: "2024-01-01T00:10:00Z",
            launch: None,
            skipped: Some("2024-01-01T00:10:00Z"),
            missed: None,
            next: Some("2024-01-01T00:15:00Z"),
        },
        Case {
            name: "prohibit_overlap launches once the previous child finished",
            job: exclusive(),
            children: vec![child(
                "report",
                "2024-01-01T00:05:00Z",
                ChildState::Succeeded,
            )],
            previous: Some(waiting_for("2024-01-01T00:10:00Z")),
            now: "2024-01-01T00:10:00Z",
            launch: Some("2024-01-01T00:10:00Z"),
            skipped: None,
            missed: None,
            next: Some("2024-01-01T00:15:00Z"),
        },
        Case {
            name: "overlap allowed launches beside a running child",
            job: every5(),
            children: vec![child("report", "2024-01-01T00:05:00Z", ChildState::Active)],
            previous: Some(waiting_for("2024-01-01T00:10:00Z")),
            now: "2024-01-01T00:10:00Z",
            launch: Some("2024-01-01T00:10:00Z"),
            skipped: None,
            missed: None,
            next: Some("2024-01-01T00:15:00Z"),
        },
        Case {
            name: "a stopped parent launches nothing and has no next launch",
            job: Job {
                stop: true,
                ..every5()
            },
            children: vec![],
            previous: Some(waiting_for("2024-01-01T00:10:00Z")),
            now: "2024-01-01T00:10:00Z",
            launch: None,
            skipped: None,
            missed: None,
            next: None,
        },
        Case {
            name: "a disabled schedule launches nothing",
            job: {
                let mut j = every5();
                j.periodic.as_mut().unwrap().enabled = false;
                j
            },
            children: vec![],
            previous: Some(waiting_for("2024-01-01T00:10:00Z")),
            now: "2024-01-01T00:10:00Z",
            launch: None,
            skipped: None,
            missed: None,
            next: None,
        },
        Case {
            name:
                "a recorded next launch that is no tick of the new schedule is recomputed from now",
            job: periodic_job("0 * * * *", false),
            children: vec![],
            previous: Some(waiting_for("2024-01-01T00:10:00Z")),
            now: "2024-01-01T00:10:30Z",
            launch: None,
            skipped: None,
            missed: None,
            next: Some("2024-01-01T01:00:00Z"),
        },
    ];
    let config = PeriodicConfig::default();
    for c in cases {
        let s = Schedule::of(c.job.periodic.as_ref().unwrap()).unwrap();
        let plan = decide(
            &c.job,
            &s,
            &c.children,
            c.previous.as_ref(),
            ms(c.now),
            &config,
        );
        let launch = c.launch.map(|t| Launch {
            tick_ms: ms(t),
            child_id: child_id("report", ms(t)),
        });
        assert_eq!(plan.launch, launch, "{}: launch", c.name);
        assert_eq!(
            plan.skipped_tick_ms,
            c.skipped.map(ms),
            "{}: skipped",
            c.name
        );
        assert_eq!(plan.missed_tick_ms, c.missed.map(ms), "{}: missed", c.name);
        assert_eq!(
            plan.status.next_launch_ms,
            c.next.map(ms),
            "{}: next",
            c.name
        );
        assert_eq!(plan.wake_at_ms, c.next.map(ms), "{}: wake", c.name);
        let skipped_before = c.previous.as_ref().map(|p| p.skipped_overlaps).unwrap_or(0);
        assert_eq!(
            plan.status.skipped_overlaps,
            skipped_before + c.skipped.is_some() as u64,
            "{}: count",
            c.name
        );
    }
}

#[test]
fn history_limit_collects_the_oldest_finished_children_never_active_ones() {
    let mut children: Vec<Child> = (0..8)
        .map(|i| {
            child(
                "report",
                &format!("2024-01-01T00:{:02}:00Z", i * 5),
                ChildState::Succeeded,
            )
        })
        .collect();
    children[0].state = ChildState::Active; // the oldest is still running
    let collected = children_to_collect(&children, 5);
    assert_eq!(
        collected,
        vec![
            child_id("report", ms("2024-01-01T00:05:00Z")),
            child_id("report", ms("2024-01-01T00:10:00Z"))
        ]
    );
    assert!(children_to_collect(&children, 10).is_empty());
    assert_eq!(children_to_collect(&children, 0).len(), 7);
}

#[test]
fn status_keeps_last_success_and_failure_across_collection() {
    let job = periodic_job("*/5 * * * *", false);
    let s = Schedule::of(job.periodic.as_ref().unwrap()).unwrap();
    let mut ok = child("report", "2024-01-01T00:05:00Z", ChildState::Succeeded);
    ok.finished_ms = Some(ms("2024-01-01T00:06:00Z"));
    let bad = child("report", "2024-01-01T00:10:00Z", ChildState::Failed);
    let prev = PeriodicStatus {
        last_success_ms: Some(ms("2023-12-31T00:00:00Z")),
        ..waiting_for("2024-01-01T00:15:00Z")
    };
    let plan = decide(
        &job,
        &s,
        &[ok, bad],
        Some(&prev),
        ms("2024-01-01T00:12:00Z"),
        &PeriodicConfig::default(),
    );
    assert_eq!(
        plan.status.last_success_ms,
        Some(ms("2024-01-01T00:06:00Z"))
    );
    assert_eq!(
        plan.status.last_failure_ms,
        Some(ms("2024-01-01T00:10:00Z"))
    );
    assert_eq!(plan.status.last_launch_ms, Some(ms("2024-01-01T00:10:00Z")));
    // After both are collected the times stay.
    let later = decide(
        &job,
        &s,
        &[],
        Some(&plan.status),
        ms("2024-01-01T00:13:00Z"),
        &PeriodicConfig::default(),
    );
    assert_eq!(
        later.status.last_success_ms,
        Some(ms("2024-01-01T00:06:00Z"))
    );
    assert_eq!(
        later.status.last_failure_ms,
        Some(ms("2024-01-01T00:10:00Z"))
    );
}

#[test]
fn child_state_follows_the_child_job_status() {
    assert_eq!(child_state(None).0, ChildState::Active);
    let running = JobStatus {
        status: "running".into(),
        ..Default::default()
    };
    assert_eq!(child_state(Some(&running)).0, ChildState::Active);
    let mut dead = JobStatus {
        status: "dead".into(),
        modified_at_ms: 7,
        ..Default::default()
    };
    dead.summary.insert(
        "g".into(),
        GroupSummary {
            complete: 1,
            ..Default::default()
        },
    );
    assert_eq!(child_state(Some(&dead)), (ChildState::Succeeded, Some(7)));
    dead.summary.insert(
        "h".into(),
        GroupSummary {
            failed: 1,
            ..Default::default()
        },
    );
    assert_eq!(child_state(Some(&dead)).0, ChildState::Failed);
}

#[test]
fn force_launch_refuses_duplicates_and_overlap() {
    let job = periodic_job("*/5 * * * *", true);
    let now = ms("2024-01-01T00:07:30Z") + 123;
    let l = force_launch(&job, &[], now).unwrap();
    assert_eq!(l.child_id, child_id("report", ms("2024-01-01T00:07:30Z")));
    let same = Child {
        id: l.child_id.clone(),
        launch_ms: l.tick_ms,
        state: ChildState::Succeeded,
        finished_ms: None,
    };
    assert!(force_launch(&job, &[same], now).is_err());
    let active = child("report", "2024-01-01T00:05:00Z", ChildState::Active);
    assert!(force_launch(&job, &[active], now).is_err());
}

proptest! {
    /// Evaluations at arbitrary times, with leader restarts that lose the in-memory state and
    /// crashes between creating a child and recording the status, never launch a tick twice,
    /// only launch real ticks, and never launch a tick later than the grace allows.
    #[test]
    fn no_tick_is_ever_launched_twice(
        steps in proptest::collection::vec((1i64..900_000, any::<bool>()), 1..60),
        overlap in any::<bool>(),
    ) {
        let job = periodic_job("*/5 * * * *", overlap);
        let s = Schedule::of(job.periodic.as_ref().unwrap()).unwrap();
        let config = PeriodicConfig::default();
        let mut now = ms("2024-03-10T05:00:00Z");
        let mut status: Option<PeriodicStatus> = None;
        let mut children: Vec<Child> = Vec::new();
        let mut launched: Vec<i64> = Vec::new();
        for (advance, crash_before_status) in steps {
            now += advance;
            let plan = decide(&job, &s, &children, status.as_ref(), now, &config);
            if let Some(l) = &plan.launch {
                prop_assert!(!children.iter().any(|c| c.id == l.child_id), "double launch of {}", l.child_id);
                prop_assert!(s.is_tick(l.tick_ms));
                prop_assert!(now - l.tick_ms <= config.missed_tick_grace_ms);
                launched.push(l.tick_ms);
                children.push(Child { id: l.child_id.clone(), launch_ms: l.tick_ms, state: ChildState::Succeeded, finished_ms: None });
            }
            if !crash_before_status {
                status = Some(plan.status.clone());
            }
            for id in &plan.collect {
                prop_assert!(children.iter().any(|c| &c.id == id && c.state != ChildState::Active));
            }
        }
        let mut sorted = launched.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), launched.len());
    }
}

#[test]
fn every_time_zone_that_validates_makes_a_schedule() {
    for tz in ["", "UTC", "Local", "Europe/Berlin", "America/New_York"] {
        assert!(nomos_api::validate::check_time_zone(tz).is_ok(), "{tz}");
        assert!(
            Schedule::new(&["* * * * *".into()], tz).is_ok(),
            "{tz} passes validation, so it must schedule"
        );
    }
}
