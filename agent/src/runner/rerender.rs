//! Keeps a running task's templates current: when the service catalogue changes (its index key,
//! `/nomos/servicesindex`, moves) and a template reads it (`nomadService`, `nomadServices`), or
//! a key under `/nomos/kv/` changes and a template reads that space (`key`, `keyOrDefault`,
//! `ls`), the task's templates render again; each one whose output changed is rewritten and its
//! `change_mode` applied: `noop` leaves the task be, `signal` sends `change_signal`, `restart`
//! (Nomad's default) restarts the task. A template with `wait` renders once the changes
//! settle, and a change mode acts after a random delay up to the templates' `splay` (both
//! decided in [`super::template_timing`]). [`watch_templates`] resolves only when the task
//! must restart; the caller restarts it.

use std::time::Duration;

use futures::StreamExt;
use nomos_api::Task;
use nomos_store::{keys, KeySelector, RangeOptions, WatchOptions};

use super::prepare::{rerender_templates, template_functions};
use super::shared::{AllocShared, Ctx};
use super::template_timing::{quiescence, splay_delay, splay_of, Pending};
use crate::driver::{Driver, TaskHandle};
use crate::error::AgentError;
use tokio::time::Instant;

/// The functions whose answers change with the service catalogue.
const CATALOGUE_FUNCTIONS: &[&str] = &["nomadService", "nomadServices"];
/// The functions whose answers change with the users' key-value space.
const KV_FUNCTIONS: &[&str] = &["key", "keyOrDefault", "ls"];

/// What a task's templates read that can change while it runs: the catalogue's index key and
/// the key-value space, as the store selectors to watch.
fn watched(used: &std::collections::BTreeSet<String>) -> Vec<KeySelector> {
    let mut out = Vec::new();
    if CATALOGUE_FUNCTIONS.iter().any(|f| used.contains(*f)) {
        out.push(KeySelector::key(keys::SERVICES_INDEX.as_bytes().to_vec()));
    }
    if KV_FUNCTIONS.iter().any(|f| used.contains(*f)) {
        out.push(KeySelector::prefix(keys::KV_PREFIX.as_bytes().to_vec()));
    }
    out
}

/// What the changed templates ask of the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeAction {
    /// Nothing (`noop`, or nothing changed).
    Nothing,
    /// Send these signals (`signal` templates, in order, each once).
    Signal(Vec<String>),
    /// Restart the task (any `restart` template; it wins over signals).
    Restart,
}

/// The action for the templates at `changed` (pure).
pub fn change_action(task: &Task, changed: &[usize]) -> ChangeAction {
    let mut signals: Vec<String> = Vec::new();
    for t in changed.iter().filter_map(|i| task.templates.get(*i)) {
        match t.change_mode.as_str() {
            // `script` is refused by this agent's rerender (see [`rerender`]): left as it is.
            "noop" | "script" => {}
            "signal" => {
                let sig = if t.change_signal.is_empty() {
                    "SIGHUP".to_string()
                } else {
                    t.change_signal.clone()
                };
                if !signals.contains(&sig) {
                    signals.push(sig);
                }
            }
            // `restart`, Nomad's default, and anything else a newer job file may say.
            _ => return ChangeAction::Restart,
        }
    }
    if signals.is_empty() {
        ChangeAction::Nothing
    } else {
        ChangeAction::Signal(signals)
    }
}

/// Re-renders the task's templates whenever what they read changes (the catalogue, the
/// key-value space), each after its `wait`, for as long as the task runs. Returns only when a
/// changed template asks for a restart.
pub(super) async fn watch_templates(
    ctx: &Ctx,
    shared: &AllocShared,
    driver: &dyn Driver,
    task: &Task,
    h: &TaskHandle,
) {
    if task.templates.is_empty() {
        return std::future::pending().await;
    }
    let rec = shared.snapshot();
    let selectors = template_functions(ctx, &rec, task)
        .map(|used| watched(&used))
        .unwrap_or_default();
    if selectors.is_empty() {
        return std::future::pending().await;
    }
    let all: Vec<usize> = (0..task.templates.len()).collect();
    let waits: Vec<_> = task.templates.iter().map(quiescence).collect();
    loop {
        let Some(from) = store_revision(ctx).await else {
            // The store is away: look again shortly (a watch from revision 1 would replay it all).
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        // A change between the start's render and this watch is caught by rendering once now.
        if rerender(ctx, shared, driver, task, h, &all).await == ChangeAction::Restart {
            return;
        }
        let Some(mut events) = watch_all(ctx, &selectors, from + 1).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let changes = Changes {
            ctx,
            shared,
            driver,
            task,
            h,
        };
        if changes
            .follow(&mut events, Pending::new(waits.clone()))
            .await
        {
            return;
        }
        // A watch ended (the store restarted, a compaction): look again from now.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One stream of the changes under all `selectors` from revision `from`; `None` when a watch
/// could not be opened.
async fn watch_all(
    ctx: &Ctx,
    selectors: &[KeySelector],
    from: i64,
) -> Option<futures::stream::SelectAll<nomos_store::WatchStream>> {
    let mut streams = Vec::new();
    for sel in selectors {
        let opts = WatchOptions {
            start_revision: from,
            ..Default::default()
        };
        streams.push(ctx.store.watch(sel.clone(), opts).await.ok()?);
    }
    Some(futures::stream::select_all(streams))
}

/// What a running task's template changes act on.
struct Changes<'a> {
    ctx: &'a Ctx,
    shared: &'a AllocShared,
    driver: &'a dyn Driver,
    task: &'a Task,
    h: &'a TaskHandle,
}

impl Changes<'_> {
    /// Renders templates as changes arrive, each once its quiescence allows. Returns `true`
    /// when a changed template asks for a restart, `false` when the watch ended.
    async fn follow(
        &self,
        events: &mut futures::stream::SelectAll<nomos_store::WatchStream>,
        mut pending: Pending<Instant>,
    ) -> bool {
        loop {
            let next = pending.next_render();
            tokio::select! {
                ev = events.next() => match ev {
                    Some(Ok(_)) => {
                        // A burst already queued is one change.
                        while let Some(Some(Ok(_))) = futures::FutureExt::now_or_never(events.next()) {}
                        pending.changed(Instant::now());
                    }
                    _ => return false,
                },
                _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    let due = pending.take_due(Instant::now());
                    let (ctx, shared, driver, task, h) = (self.ctx, self.shared, self.driver, self.task, self.h);
                    if rerender(ctx, shared, driver, task, h, &due).await == ChangeAction::Restart {
                        return true;
                    }
                }
            }
        }
    }
}

/// The store's revision now, if it can be read.
async fn store_revision(ctx: &Ctx) -> Option<i64> {
    ctx.store
        .range(
            KeySelector::key(keys::SERVICES_INDEX.as_bytes().to_vec()),
            RangeOptions {
                count_only: true,
                ..Default::default()
            },
        )
        .await
        .ok()
        .map(|r| r.revision)
}

/// Renders the templates at `due` once and applies what the changed ones ask (after a random
/// delay up to their `splay`), but a restart, which it returns.
async fn rerender(
    ctx: &Ctx,
    shared: &AllocShared,
    driver: &dyn Driver,
    task: &Task,
    h: &TaskHandle,
    due: &[usize],
) -> ChangeAction {
    let rec = shared.snapshot();
    let changed = match rerender_templates(ctx, &rec, task, due).await {
        Ok(c) => c,
        Err(e) => {
            let why = match e {
                // Keys that went away: the files keep their last render.
                AgentError::TemplateMissing { .. } => e.to_string(),
                e => format!("Template failed to render again: {e}"),
            };
            shared.event(&task.name, "Template", why, None, |_, _| {});
            return ChangeAction::Nothing;
        }
    };
    let action = change_action(task, &changed);
    if action != ChangeAction::Nothing {
        let random = uuid::Uuid::new_v4().as_u64_pair().0;
        let delay = splay_delay(splay_of(&task.templates, &changed), random);
        tracing::debug!(task = %task.name, ?delay, "template changed; splay before acting");
        tokio::time::sleep(delay).await;
    }
    if changed.iter().any(|i| {
        task.templates
            .get(*i)
            .is_some_and(|t| t.change_mode == "script")
    }) {
        let why = "Template re-rendered; change_mode \"script\" is not run by this agent";
        shared.event(&task.name, "Template", why, None, |_, _| {});
    }
    match &action {
        ChangeAction::Nothing => {}
        ChangeAction::Restart => {
            let why = "Template with change_mode restart re-rendered";
            shared.event(&task.name, "Restart Signaled", why, None, |_, _| {});
        }
        ChangeAction::Signal(signals) => {
            for sig in signals {
                let why = format!("Template re-rendered; sending {sig}");
                shared.event(&task.name, "Signaling", why, None, |_, _| {});
                if let Err(e) = driver.signal(h, sig).await {
                    ctx.metrics.driver_error(driver.name());
                    let why = format!("Sending {sig} after a template change failed: {e}");
                    shared.event(&task.name, "Signaling", why, None, |_, _| {});
                }
            }
        }
    }
    action
}

#[cfg(test)]
mod tests {
    use super::*;
    use nomos_api::Template;

    fn task(modes: &[(&str, &str)]) -> Task {
        Task {
            templates: modes
                .iter()
                .map(|(mode, signal)| Template {
                    change_mode: mode.to_string(),
                    change_signal: signal.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_changed_templates_decide_between_nothing_signals_and_a_restart() {
        let t = task(&[
            ("noop", ""),
            ("signal", "SIGUSR1"),
            ("signal", ""),
            ("restart", ""),
            ("", ""),
            ("signal", "SIGUSR1"),
            ("script", ""),
        ]);
        let sig = |s: &[&str]| ChangeAction::Signal(s.iter().map(|x| x.to_string()).collect());
        let cases: Vec<(&[usize], ChangeAction)> = vec![
            (&[], ChangeAction::Nothing),
            (&[0], ChangeAction::Nothing),
            (&[1], sig(&["SIGUSR1"])),
            (&[2], sig(&["SIGHUP"])),
            (&[1, 5], sig(&["SIGUSR1"])),
            (&[0, 1, 2], sig(&["SIGUSR1", "SIGHUP"])),
            (&[1, 3], ChangeAction::Restart),
            (&[4], ChangeAction::Restart),
            (&[6], ChangeAction::Nothing),
            (&[9], ChangeAction::Nothing),
        ];
        for (changed, want) in cases {
            assert_eq!(change_action(&t, changed), want, "{changed:?}");
        }
    }

    #[test]
    fn templates_watch_only_what_they_read() {
        let used = |fs: &[&str]| fs.iter().map(|f| f.to_string()).collect();
        assert!(watched(&used(&["env", "nomadVar"])).is_empty());
        assert_eq!(
            watched(&used(&["nomadService"])),
            vec![KeySelector::key(keys::SERVICES_INDEX.as_bytes().to_vec())]
        );
        assert_eq!(
            watched(&used(&["ls", "nomadServices"])),
            vec![
                KeySelector::key(keys::SERVICES_INDEX.as_bytes().to_vec()),
                KeySelector::prefix(keys::KV_PREFIX.as_bytes().to_vec()),
            ]
        );
    }
}
