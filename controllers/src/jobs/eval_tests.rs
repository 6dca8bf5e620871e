//! One evaluation per register: the spec and its pending evaluation are written in one
//! transaction, and reach the controller's view through two watches in either order. Each
//! test builds the view by hand (so which watch leads is the test's choice, not timing's) and
//! reconciles with the real controller against the embedded store.

use std::sync::Arc;

use nomos_api::eval::{eval_status, triggers, Evaluation};
use nomos_store::embedded::EmbeddedStore;
use nomos_store::{keys, KeySelector, RangeOptions, Store, Txn, TxnOp};
use serde_json::json;

use super::tests::{add_node, allocs, evals, node, spec, Controller};
use super::*;

/// A register as the API writes it: the spec and a pending `job-register` evaluation in one
/// transaction. Returns the evaluation's ID.
async fn register(store: &dyn Store, job: &str, count: u32, n: usize) -> String {
    let e = Evaluation {
        id: format!("reg-{job}-{n:03}"),
        namespace: "default".into(),
        job_id: job.into(),
        triggered_by: triggers::JOB_REGISTER.into(),
        status: eval_status::PENDING.into(),
        create_time: n as i64,
        ..Default::default()
    };
    let txn = Txn::new().and_then([
        TxnOp::put(keys::job("default", job), spec(job, count, 10, json!({}))),
        TxnOp::put(
            keys::eval("default", &e.id),
            serde_json::to_vec(&e).unwrap(),
        ),
    ]);
    assert!(store.txn(txn).await.unwrap().succeeded);
    e.id
}

/// A controller whose view is filled by the test: every prefix as it was at `revision`.
async fn controller_at(store: Arc<dyn Store>, revision: i64) -> Arc<Ctx> {
    let mut world = World::default();
    for kind in Part::JOBS {
        let r = store
            .range(
                KeySelector::prefix(kind.prefix()),
                RangeOptions {
                    revision,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        world.reset(kind, r.kvs, revision);
    }
    Arc::new(Ctx {
        store,
        in_flight: Mutex::new(HashSet::new()),
        released: tokio::sync::Notify::new(),
        world: Arc::new(Mutex::new(world)),
        config: JobsConfig::default(),
        metrics: None,
        leadership: None,
    })
}

/// A store with one node and one register of `web` (2 instances), and a controller whose view
/// is the store's from before the register; the register's evaluation ID.
async fn registered_behind() -> (Arc<dyn Store>, Arc<Ctx>, String) {
    let s: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    add_node(&*s, &node("n1", 4000, 4096)).await;
    let before = s.status().await.unwrap().revision;
    let id = register(&*s, "web", 2, 0).await;
    let ctx = controller_at(s.clone(), before).await;
    (s, ctx, id)
}

/// The watch of `kind` delivers what the store holds under `key` now.
async fn deliver(ctx: &Ctx, kind: Part, key: &str) {
    let r = ctx
        .store
        .range(KeySelector::key(key), RangeOptions::default())
        .await
        .unwrap();
    let kv = &r.kvs[0];
    ctx.lock()
        .apply(kind, key, Some(&kv.value), kv.mod_revision);
}

fn web() -> JobKey {
    ("default".into(), "web".into())
}

/// The one evaluation of the register, complete, holding what the pass placed.
async fn assert_one_evaluation_for(store: &dyn Store, id: &str, placed: usize) {
    let all = evals(store).await;
    assert_eq!(all.len(), 1, "one evaluation for one register: {all:#?}");
    let e = &all[0];
    assert_eq!(
        (e.id.as_str(), e.status.as_str()),
        (id, eval_status::COMPLETE)
    );
    assert_eq!(
        e.placed_allocs.as_ref().map_or(0, Vec::len),
        placed,
        "{e:?}"
    );
}

#[tokio::test]
async fn a_register_seen_first_by_the_spec_watch_leaves_one_evaluation() {
    let (s, ctx, id) = registered_behind().await;
    // The spec's watch delivers the register; the evaluations' watch has not yet.
    deliver(&ctx, Part::Specs, &keys::job("default", "web")).await;
    ctx.reconcile(web()).await.unwrap();
    assert_one_evaluation_for(&*s, &id, 2).await;
    // The late pending event changes nothing, nor does the next pass.
    let pending = Evaluation {
        id: id.clone(),
        namespace: "default".into(),
        job_id: "web".into(),
        status: eval_status::PENDING.into(),
        ..Default::default()
    };
    let (key, value) = (
        keys::eval("default", &id),
        serde_json::to_vec(&pending).unwrap(),
    );
    let at = ctx.lock().specs[&web()].mod_revision;
    ctx.lock().apply(Part::Evals, &key, Some(&value), at);
    ctx.reconcile(web()).await.unwrap();
    assert_one_evaluation_for(&*s, &id, 2).await;
}

#[tokio::test]
async fn a_register_seen_first_by_the_evaluations_watch_leaves_one_evaluation() {
    let (s, ctx, id) = registered_behind().await;
    // The pending evaluation arrives first: the job seems not to exist (a purge would
    // complete the evaluation with nothing done).
    deliver(&ctx, Part::Evals, &keys::eval("default", &id)).await;
    ctx.reconcile(web()).await.unwrap();
    assert_one_evaluation_for(&*s, &id, 2).await;
    deliver(&ctx, Part::Specs, &keys::job("default", "web")).await;
    ctx.reconcile(web()).await.unwrap();
    assert_one_evaluation_for(&*s, &id, 2).await;
    assert_eq!(allocs(&*s).await.len(), 2);
}

/// A spec written straight into the store (no evaluation) is read once, not at every pass.
#[tokio::test]
async fn a_spec_without_an_evaluation_is_caught_up_once() {
    let s: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    add_node(&*s, &node("n1", 4000, 4096)).await;
    let before = s.status().await.unwrap().revision;
    super::tests::put_spec(&*s, "web", spec("web", 1, 10, json!({}))).await;
    let ctx = controller_at(s.clone(), before).await;
    deliver(&ctx, Part::Specs, &keys::job("default", "web")).await;
    assert!(!ctx.lock().consistent_for(&web()));
    ctx.reconcile(web()).await.unwrap();
    assert!(ctx.lock().consistent_for(&web()));
    let all = evals(&*s).await;
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].triggered_by, triggers::JOB_REGISTER);
}

#[tokio::test]
async fn registers_in_a_row_each_leave_exactly_one_evaluation_linked_to_what_it_placed() {
    let s: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
    add_node(&*s, &node("n1", 8000, 8192)).await;
    let c = Controller::start(s.clone());
    let mut ids = Vec::new();
    for n in 0..8u32 {
        ids.push(register(&*s, "web", n + 1, n as usize).await);
        tokio::task::yield_now().await;
    }
    for _ in 0..300 {
        let all = evals(&*s).await;
        let done = all
            .iter()
            .filter(|e| e.status == eval_status::COMPLETE)
            .count();
        if done >= ids.len() && allocs(&*s).await.len() == 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Resyncs and late watch events add none.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let all = evals(&*s).await;
    let mut got: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
    got.sort();
    assert_eq!(got, ids, "exactly the registers' evaluations: {all:#?}");
    // Every allocation names the evaluation that placed it, and that evaluation lists it.
    for a in allocs(&*s).await {
        let e = all
            .iter()
            .find(|e| e.id == a.eval_id)
            .unwrap_or_else(|| panic!("{} names no evaluation: {:?}", a.id, a.eval_id));
        assert!(
            e.placed_allocs.as_ref().is_some_and(|p| p.contains(&a.id)),
            "{e:?} does not list {}",
            a.id
        );
    }
    c.stop().await;
}
