//! Keeps a running task's templates current: when the service catalogue changes (its index key,
//! `/nomos/servicesindex`, moves) and a template reads it (`nomadService`, `nomadServices`), or
//! a key under `/nomos/kv/` changes and a template reads that space (`key`, `keyOrDefault`,
//! `ls`), or the servers' Variables change when a template reads them (`nomadVar`, asked of
//! the servers; followed with blocking queries, [`watch_variables`]), the task's templates
//! render again; each one whose output changed is rewritten and its
//! `change_mode` applied: `noop` leaves the task be, `signal` sends `change_signal`, `script`
//! runs `change_script` inside the task (through its driver, as a script check), `restart`
//! (Nomad's default) restarts the task. A template with `wait` renders once the changes
//! settle, and a change mode acts after a random delay up to the templates' `splay` (both
//! decided in [`super::template_timing`]). A key or Variable that went away leaves the files
//! as last rendered, with one `Missing: ...` event per distinct missing set ([`MissingNotice`]).
//! [`watch_templates`] resolves only when the task must restart, or be killed because a change
//! script with `fail_on_error` failed; the caller does it.

use std::time::Duration;

use futures::StreamExt;
use nomos_api::{ChangeScript, Task};
use nomos_store::{keys, KeySelector, RangeOptions, WatchOptions};

use super::prepare::{rerender_templates, template_functions};
use super::shared::{AllocShared, Ctx};
use super::template_timing::{quiescence, splay_delay, splay_of, Pending};
use crate::driver::{Driver, ExecRequest, TaskHandle};
use crate::error::AgentError;
use tokio::time::Instant;

/// The functions whose answers change with the service catalogue.
const CATALOGUE_FUNCTIONS: &[&str] = &["nomadService", "nomadServices"];
/// The functions whose answers change with the users' key-value space.
const KV_FUNCTIONS: &[&str] = &["key", "keyOrDefault", "ls"];
/// How long the Variables watch pauses after a failed query before it asks again (and the
/// templates render again, in case a change went by while the servers were away).
const VARIABLES_RETRY: Duration = Duration::from_secs(3);
/// The blocking query the Variables watch repeats: every namespace's Variables the task may
/// list (at most one in the answer: only its index matters), waiting for a change after
/// `index`.
fn variables_query(index: i64) -> String {
    let wait = super::super::workload::BLOCKING_WAIT.as_secs();
    format!("/v1/vars?namespace=*&per_page=1&index={index}&wait={wait}s")
}

/// Which `Missing: ...` event a running task's templates last told, so a key or Variable that
/// stays missing through many changes is told once per distinct missing set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MissingNotice {
    shown: Option<String>,
}

impl MissingNotice {
    /// The outcome of one render: `Some(deps)` missing, `None` rendered (or failed otherwise).
    /// Returns the event to write, if this missing set was not the last one told.
    pub fn note(&mut self, missing: Option<&[String]>) -> Option<String> {
        let Some(deps) = missing else {
            self.shown = None;
            return None;
        };
        let msg = crate::templates::missing_message(deps);
        if self.shown.as_deref() == Some(msg.as_str()) {
            return None;
        }
        self.shown = Some(msg.clone());
        Some(msg)
    }
}

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
    /// Send these signals (`signal` templates, each signal once) and run these scripts
    /// (`script` templates, in order).
    Notify {
        signals: Vec<String>,
        scripts: Vec<ChangeScript>,
    },
    /// Restart the task (any `restart` template; it wins over signals and scripts).
    Restart,
}

/// The action for the templates at `changed` (pure).
pub fn change_action(task: &Task, changed: &[usize]) -> ChangeAction {
    let mut signals: Vec<String> = Vec::new();
    let mut scripts: Vec<ChangeScript> = Vec::new();
    for t in changed.iter().filter_map(|i| task.templates.get(*i)) {
        match t.change_mode.as_str() {
            "noop" => {}
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
            // Validation requires the script; a spec without one has nothing to run.
            "script" => scripts.extend(t.change_script.clone()),
            // `restart`, Nomad's default, and anything else a newer job file may say.
            _ => return ChangeAction::Restart,
        }
    }
    if signals.is_empty() && scripts.is_empty() {
        ChangeAction::Nothing
    } else {
        ChangeAction::Notify { signals, scripts }
    }
}

/// Why [`watch_templates`] returned: what the task loop must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateEnd {
    /// A `restart` template changed.
    Restart,
    /// A change script with `fail_on_error` failed: kill the task, failed, for this reason.
    Kill(String),
}

/// Re-renders the task's templates whenever what they read changes (the catalogue, the
/// key-value space), each after its `wait`, for as long as the task runs. Returns only when a
/// changed template asks for a restart, or its failed change script for the task's end.
pub(super) async fn watch_templates(
    ctx: &Ctx,
    shared: &AllocShared,
    driver: &dyn Driver,
    task: &Task,
    h: &TaskHandle,
) -> TemplateEnd {
    if task.templates.is_empty() {
        return std::future::pending().await;
    }
    let rec = shared.snapshot();
    let used = template_functions(ctx, &rec, task).unwrap_or_default();
    let selectors = watched(&used);
    let mut variables = match crate::templates::needs_identity(&used) {
        true => Some(VariablesWatch::start(ctx, shared, task).await),
        false => None,
    };
    if selectors.is_empty() && variables.is_none() {
        return std::future::pending().await;
    }
    let all: Vec<usize> = (0..task.templates.len()).collect();
    let bounds = ctx.config.template_wait_bounds;
    let waits: Vec<_> = task
        .templates
        .iter()
        .map(|t| quiescence(t, bounds))
        .collect();
    let mut notice = MissingNotice::default();
    loop {
        let Some(from) = store_revision(ctx).await else {
            // The store is away: look again shortly (a watch from revision 1 would replay it all).
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        // A change between the start's render and this watch is caught by rendering once now.
        if let Some(end) = rerender(ctx, shared, driver, task, h, &all, &mut notice).await {
            return end;
        }
        let Some(mut events) = watch_all(ctx, &selectors, from + 1).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let mut changes = Changes {
            ctx,
            shared,
            driver,
            task,
            h,
            notice: &mut notice,
        };
        if let Some(end) = changes
            .follow(&mut events, Pending::new(waits.clone()), variables.as_mut())
            .await
        {
            return end;
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
    notice: &'a mut MissingNotice,
}

impl Changes<'_> {
    /// Renders templates as changes arrive (from the store's watch, and from `variables`
    /// when set), each once its quiescence allows. Returns what the task loop must do when a
    /// change ends the task's run, `None` when the watch ended.
    async fn follow(
        &mut self,
        events: &mut futures::stream::SelectAll<nomos_store::WatchStream>,
        mut pending: Pending<Instant>,
        mut variables: Option<&mut VariablesWatch>,
    ) -> Option<TemplateEnd> {
        loop {
            let next = pending.next_render();
            let variables_changed = async {
                match variables.as_mut() {
                    Some(v) => v.changed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = variables_changed => pending.changed(Instant::now()),
                ev = events.next(), if !events.is_empty() => match ev {
                    Some(Ok(_)) => {
                        // A burst already queued is one change.
                        while let Some(Some(Ok(_))) = futures::FutureExt::now_or_never(events.next()) {}
                        pending.changed(Instant::now());
                    }
                    _ => return None,
                },
                _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    let due = pending.take_due(Instant::now());
                    let (ctx, shared, driver, task, h) = (self.ctx, self.shared, self.driver, self.task, self.h);
                    if let Some(end) = rerender(ctx, shared, driver, task, h, &due, self.notice).await {
                        return Some(end);
                    }
                }
            }
        }
    }
}

/// Follows the servers' Variables for one running task, with its workload identity: a
/// background task repeats a blocking query ([`variables_query`]) and tells of each answer
/// whose index moved. The index is the store revision the answer was read at, so an answer
/// at the end of a quiet wait (every few minutes) may tell of a change that was elsewhere:
/// the templates then render to the same text, and nothing is rewritten. A failed query tells
/// too (a change may have gone by) and is asked again after [`VARIABLES_RETRY`]. The
/// background task ends with the watch.
pub(super) struct VariablesWatch {
    changes: tokio::sync::mpsc::Receiver<()>,
    follower: tokio::task::JoinHandle<()>,
}

impl VariablesWatch {
    async fn start(ctx: &Ctx, shared: &AllocShared, task: &Task) -> VariablesWatch {
        let (tx, changes) = tokio::sync::mpsc::channel(1);
        let link = ctx.servers.clone();
        let token = super::prepare::task_token(ctx, &shared.snapshot(), task).await;
        let follower = tokio::spawn(async move {
            let token = match token {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "templates cannot follow Variables without the task's identity");
                    return;
                }
            };
            follow_variables(&link, &token, &tx).await;
        });
        VariablesWatch { changes, follower }
    }

    /// Resolves at the next change (never, once the follower has ended).
    async fn changed(&mut self) {
        if self.changes.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for VariablesWatch {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// Repeats the Variables' blocking query, sending on `tx` each time the index moves or a
/// query fails; returns when nobody listens any more.
async fn follow_variables(
    link: &crate::workload::ServerLink,
    token: &str,
    tx: &tokio::sync::mpsc::Sender<()>,
) {
    let mut index = 0;
    loop {
        let asked = Instant::now();
        let changed = match link.blocking_index(&variables_query(index), token).await {
            Ok(now) => {
                let moved = index > 0 && now != index;
                if index > 0 && !moved && asked.elapsed() < VARIABLES_RETRY {
                    // An answer at once with nothing moved (a server that does not block):
                    // no faster than the retry pace.
                    tokio::time::sleep(VARIABLES_RETRY).await;
                }
                index = now;
                moved
            }
            Err(e) => {
                tracing::debug!(error = %e, "the Variables watch failed; asking again shortly");
                tokio::time::sleep(VARIABLES_RETRY).await;
                true
            }
        };
        // A full channel already holds a change: the templates render once for both.
        if changed && tx.try_send(()).is_err() && tx.is_closed() {
            return;
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
/// delay up to their `splay`), but a restart or a kill, which it returns. Missing keys or
/// Variables are told through `notice`.
async fn rerender(
    ctx: &Ctx,
    shared: &AllocShared,
    driver: &dyn Driver,
    task: &Task,
    h: &TaskHandle,
    due: &[usize],
    notice: &mut MissingNotice,
) -> Option<TemplateEnd> {
    let rec = shared.snapshot();
    let rendered = rerender_templates(ctx, &rec, task, due).await;
    let missing = match &rendered {
        Err(AgentError::TemplateMissing(m)) => Some(m.deps.as_slice()),
        _ => None,
    };
    if let Some(why) = notice.note(missing) {
        // Keys or Variables that went away: the files keep their last render.
        shared.event(&task.name, "Template", why, None, |_, _| {});
    }
    let changed = match rendered {
        Ok(c) => c,
        Err(AgentError::TemplateMissing(_)) => return None,
        Err(e) => {
            let why = format!("Template failed to render again: {e}");
            shared.event(&task.name, "Template", why, None, |_, _| {});
            return None;
        }
    };
    let action = change_action(task, &changed);
    if action != ChangeAction::Nothing {
        let random = uuid::Uuid::new_v4().as_u64_pair().0;
        let delay = splay_delay(splay_of(&task.templates, &changed), random);
        tracing::debug!(task = %task.name, ?delay, "template changed; splay before acting");
        tokio::time::sleep(delay).await;
    }
    match action {
        ChangeAction::Nothing => None,
        ChangeAction::Restart => {
            let why = "Template with change_mode restart re-rendered";
            shared.event(&task.name, "Restart Signaled", why, None, |_, _| {});
            Some(TemplateEnd::Restart)
        }
        ChangeAction::Notify { signals, scripts } => {
            for sig in signals {
                let why = format!("Template re-rendered; sending {sig}");
                shared.event(&task.name, "Signaling", why, None, |_, _| {});
                if let Err(e) = driver.signal(h, &sig).await {
                    ctx.metrics.driver_error(driver.name());
                    let why = format!("Sending {sig} after a template change failed: {e}");
                    shared.event(&task.name, "Signaling", why, None, |_, _| {});
                }
            }
            for script in &scripts {
                if let Some(end) = run_change_script(shared, driver, task, h, script).await {
                    return Some(end);
                }
            }
            None
        }
    }
}

/// How long a change script may run when its `timeout` is unset (Nomad's default).
const CHANGE_SCRIPT_TIMEOUT: Duration = Duration::from_secs(5);

/// How much of a failed change script's output its task event keeps: events live in the
/// allocation's status, which stays small.
const CHANGE_SCRIPT_OUTPUT: usize = 1024;

/// Runs one change script inside the task and tells the task's events how it went; a failure
/// with `fail_on_error` ends the task.
async fn run_change_script(
    shared: &AllocShared,
    driver: &dyn Driver,
    task: &Task,
    h: &TaskHandle,
    script: &ChangeScript,
) -> Option<TemplateEnd> {
    let req = ExecRequest {
        command: script.command.clone(),
        args: script.args.clone(),
        timeout: match script.timeout_ns {
            0 => CHANGE_SCRIPT_TIMEOUT,
            ns => Duration::from_nanos(ns),
        },
        output_limit: CHANGE_SCRIPT_OUTPUT,
    };
    let failure = match driver.exec(h, &req).await {
        Ok(out) if out.exit_code == Some(0) => None,
        Ok(out) => Some(match out.exit_code {
            Some(code) => format!("exit code {code}; output: {}", out.text()),
            None => format!("signal {}; output: {}", out.signal.unwrap_or(0), out.text()),
        }),
        Err(e) => Some(e.to_string()),
    };
    let cmd = &script.command;
    let Some(why) = failure else {
        let done = format!("Template re-rendered; change script {cmd:?} ran");
        shared.event(&task.name, "Template", done, None, |_, _| {});
        return None;
    };
    let why = format!("Template re-rendered; change script {cmd:?} failed: {why}");
    if script.fail_on_error {
        return Some(TemplateEnd::Kill(why));
    }
    shared.event(&task.name, "Template", why, None, |_, _| {});
    None
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
                    change_script: (*mode == "script").then(|| script(signal)),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn script(command: &str) -> ChangeScript {
        ChangeScript {
            command: command.to_string(),
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
            ("script", "reload"),
            ("script", "flush"),
        ]);
        let act = |s: &[&str], c: &[&str]| ChangeAction::Notify {
            signals: s.iter().map(|x| x.to_string()).collect(),
            scripts: c.iter().map(|x| script(x)).collect(),
        };
        let sig = |s: &[&str]| act(s, &[]);
        let cases: Vec<(&[usize], ChangeAction)> = vec![
            (&[], ChangeAction::Nothing),
            (&[0], ChangeAction::Nothing),
            (&[1], sig(&["SIGUSR1"])),
            (&[2], sig(&["SIGHUP"])),
            (&[1, 5], sig(&["SIGUSR1"])),
            (&[0, 1, 2], sig(&["SIGUSR1", "SIGHUP"])),
            (&[1, 3], ChangeAction::Restart),
            (&[4], ChangeAction::Restart),
            (&[6], act(&[], &["reload"])),
            (&[7, 1, 6], act(&["SIGUSR1"], &["flush", "reload"])),
            (&[6, 3], ChangeAction::Restart),
            (&[9], ChangeAction::Nothing),
        ];
        for (changed, want) in cases {
            assert_eq!(change_action(&t, changed), want, "{changed:?}");
        }
    }

    #[test]
    fn a_missing_set_is_told_once_until_it_changes_or_a_render_succeeds() {
        let set = |deps: &[&str]| Some(deps.iter().map(|d| d.to_string()).collect::<Vec<_>>());
        let a = set(&["kv.block(a)"]);
        let ab = set(&["kv.block(a)", "kv.block(b)"]);
        let v = set(&["nomad.var.block(x@default)"]);
        // (outcome of a render: Some(missing) or None for rendered, the event told)
        let steps: Vec<(Option<Vec<String>>, Option<&str>)> = vec![
            (a.clone(), Some("Missing: kv.block(a)")),
            (a.clone(), None),
            (a.clone(), None),
            (ab.clone(), Some("Missing: kv.block(a), kv.block(b)")),
            (ab.clone(), None),
            (a.clone(), Some("Missing: kv.block(a)")),
            (None, None),
            (a.clone(), Some("Missing: kv.block(a)")),
            (v.clone(), Some("Missing: nomad.var.block(x@default)")),
            (v, None),
            (None, None),
            (None, None),
        ];
        let mut notice = MissingNotice::default();
        for (i, (outcome, want)) in steps.into_iter().enumerate() {
            let told = notice.note(outcome.as_deref());
            assert_eq!(told.as_deref(), want, "step {i}");
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
