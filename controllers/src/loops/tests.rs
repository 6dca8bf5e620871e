//! The loop driver's guarantees, each a test named after it: every loop is registered under its
//! name and woken only by what it reads; a write it watches wakes it, others do not, and a burst
//! of writes costs one pass; it looks again when its pass asks and at the resync; a failed pass
//! is retried with a growing pause; a lost leadership ends the drive.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use nomos_store::{EmbeddedStore, PutOptions, Store};

use super::view::View;
use super::*;

type Script = Box<dyn Fn(usize, i64) -> Result<PassOutcome, ControllerError> + Send + Sync>;

/// A loop that records when it passed and answers what its script says for the n-th pass.
struct Recorder {
    wakes_on: &'static [Part],
    passes: Mutex<Vec<Instant>>,
    script: Script,
}

impl Recorder {
    fn new(wakes_on: &'static [Part], script: Script) -> Self {
        Recorder {
            wakes_on,
            passes: Mutex::new(Vec::new()),
            script,
        }
    }

    fn passes(&self) -> usize {
        self.passes.lock().unwrap().len()
    }

    fn gaps(&self) -> Vec<Duration> {
        let p = self.passes.lock().unwrap();
        p.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

#[async_trait]
impl Loop for Recorder {
    fn name(&self) -> LoopName {
        LoopName::Gc
    }

    fn reads(&self) -> &'static [Part] {
        &[Part::Specs]
    }

    fn wakes_on(&self) -> &'static [Part] {
        self.wakes_on
    }

    async fn pass(&self, _: &Ctx, _: &View, now: i64) -> Result<PassOutcome, ControllerError> {
        let n = {
            let mut p = self.passes.lock().unwrap();
            p.push(Instant::now());
            p.len()
        };
        (self.script)(n, now)
    }
}

fn quiet() -> Script {
    Box::new(|_, _| Ok(PassOutcome::default()))
}

fn ctx(store: &Arc<dyn Store>, resync: Duration) -> Ctx {
    Ctx {
        store: store.clone(),
        leadership: None,
        config: LoopsConfig {
            resync,
            min_pass_interval: Duration::from_millis(200),
            ..Default::default()
        },
        metrics: LoopMetrics::default(),
        name: LoopName::Gc,
    }
}

fn store() -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::in_memory())
}

async fn put_under(store: &dyn Store, part: Part, name: &str) {
    let key = format!("{}default/{name}", part.prefix());
    store
        .put(key.into_bytes(), b"{}".to_vec(), PutOptions::default())
        .await
        .unwrap();
}

/// Drives `l` for `run_for`, doing `meanwhile` beside it.
async fn drive_for(
    l: &Recorder,
    ctx: Ctx,
    run_for: Duration,
    meanwhile: impl Future<Output = ()>,
) -> Result<(), ControllerError> {
    let (r, ()) = tokio::join!(drive_loop(l, ctx, tokio::time::sleep(run_for)), meanwhile);
    r
}

#[test]
fn every_loop_is_registered_under_its_name_and_woken_only_by_what_it_reads() {
    for name in LoopName::ALL {
        let l = driver(name);
        assert_eq!(l.name(), name);
        for part in l.wakes_on() {
            assert!(
                l.reads().contains(part),
                "{} wakes on {part:?}, which it does not read",
                name.as_str()
            );
        }
    }
}

#[tokio::test]
async fn a_write_it_watches_wakes_it_and_a_write_elsewhere_does_not() {
    let store = store();
    let l = Recorder::new(&[Part::Specs], quiet());
    let s = store.clone();
    drive_for(
        &l,
        ctx(&store, Duration::from_secs(3600)),
        Duration::from_millis(2500),
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            put_under(&*s, Part::Allocs, "elsewhere").await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(l.passes(), 1, "a write it does not watch woke it");
            put_under(&*s, Part::Specs, "web").await;
        },
    )
    .await
    .unwrap();
    assert_eq!(l.passes(), 2);
}

#[tokio::test]
async fn a_burst_of_writes_costs_one_pass() {
    let store = store();
    let l = Recorder::new(&[Part::Specs], quiet());
    let s = store.clone();
    let mut c = ctx(&store, Duration::from_secs(3600));
    c.config.min_pass_interval = Duration::from_secs(1);
    drive_for(&l, c, Duration::from_millis(2500), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        for i in 0..20 {
            put_under(&*s, Part::Specs, &format!("job{i}")).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(l.passes(), 2, "first pass, then one for the burst");
}

#[tokio::test(start_paused = true)]
async fn it_looks_again_when_its_pass_asks() {
    let store = store();
    let l = Recorder::new(
        &[],
        Box::new(|n, now| {
            Ok(PassOutcome {
                wake_at_ms: (n == 1).then_some(now + 300),
            })
        }),
    );
    drive_for(
        &l,
        ctx(&store, Duration::from_secs(3600)),
        Duration::from_millis(1000),
        async {},
    )
    .await
    .unwrap();
    assert_eq!(l.passes(), 2);
    assert!(l.gaps()[0] >= Duration::from_millis(250), "{:?}", l.gaps());
}

#[tokio::test(start_paused = true)]
async fn it_looks_again_at_the_resync_without_any_event() {
    let store = store();
    let l = Recorder::new(&[Part::Specs], quiet());
    drive_for(
        &l,
        ctx(&store, Duration::from_millis(300)),
        Duration::from_millis(1000),
        async {},
    )
    .await
    .unwrap();
    // At 0, 300, 600 and 900 ms.
    assert_eq!(l.passes(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_failed_pass_is_retried_after_a_growing_pause() {
    let store = store();
    let l = Recorder::new(
        &[],
        Box::new(|_, _| {
            Err(ControllerError::Store {
                op: "range",
                source: nomos_store::StoreError::Unavailable("down".into()),
            })
        }),
    );
    drive_for(
        &l,
        ctx(&store, Duration::from_secs(3600)),
        Duration::from_millis(1700),
        async {},
    )
    .await
    .unwrap();
    // Pauses of 200, 400, 800 ms.
    let gaps = l.gaps();
    assert_eq!(l.passes(), 4, "{gaps:?}");
    assert!(gaps.windows(2).all(|w| w[1] > w[0]), "{gaps:?}");
    assert!(gaps[0] >= Duration::from_millis(180), "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn a_lost_leadership_ends_the_drive() {
    let store = store();
    let l = Recorder::new(
        &[Part::Specs],
        Box::new(|_, _| Err(ControllerError::LostLeadership("gc".into()))),
    );
    let r = drive_for(
        &l,
        ctx(&store, Duration::from_millis(50)),
        Duration::from_secs(5),
        async {},
    )
    .await;
    assert!(
        matches!(r, Err(ControllerError::LostLeadership(_))),
        "{r:?}"
    );
    assert_eq!(l.passes(), 1);
}
