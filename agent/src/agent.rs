//! The agent loop: set up the node, re-attach to the tasks of a previous run, then keep three
//! loops going until shutdown: the heartbeat (lease keep-alive and node registration), the
//! allocation sync (list + watch `/nomos/allocs/<node>/`, converge through [`crate::plan`]) and
//! the reporter ([`crate::report`]: status writes, coalesced per allocation, retried with
//! backoff while the store is away, and written again when someone else replaced them). Shutdown leaves every task running; [`crate::purge()`] is what stops them.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use nomos_api::heartbeat::{lease_timing, HeartbeatConfig};
use nomos_api::{AllocStatus, Allocation, Job, Node};
use nomos_store::{keys, KeySelector, PutOptions, RangeOptions, Store, StoreError, WatchOptions};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::backoff::Backoff;
use crate::config::AgentConfig;
use crate::driver::docker::DockerDriver;
use crate::driver::exec::ExecDriver;
use crate::driver::java::JavaDriver;
use crate::driver::qemu::QemuDriver;
use crate::driver::raw_exec::RawExecDriver;
use crate::driver::{now_ms, Driver};
use crate::error::AgentError;
use crate::fingerprint::fingerprint;
use crate::metrics::Metrics;
use crate::plan::{self, Action, LocalAlloc};
use crate::report::Report;
use crate::runner::{AllocRunner, Ctx, Drivers};
use crate::state::{AllocRecord, StateDir};

fn store_err(op: &'static str) -> impl FnOnce(StoreError) -> AgentError {
    move |source| AgentError::Store { op, source }
}

/// Builds the drivers of this node (and keeps the docker one for cleaning up containers).
async fn build_drivers(config: &AgentConfig, total_mhz: u32) -> (Drivers, Option<DockerDriver>) {
    let mut map: HashMap<&'static str, Arc<dyn Driver>> = HashMap::new();
    if config.enable_raw_exec {
        map.insert("raw_exec", Arc::new(RawExecDriver));
    }
    let exec = ExecDriver::new(total_mhz);
    map.insert("java", Arc::new(JavaDriver::new(exec.clone())));
    map.insert("exec", Arc::new(exec));
    map.insert(
        "qemu",
        Arc::new(QemuDriver::new().with_policy(config.qemu.clone())),
    );
    let docker = if config.enable_docker {
        Some(
            DockerDriver::new()
                .await
                .with_host_volumes(config.docker_host_volumes),
        )
    } else {
        None
    };
    if let Some(d) = &docker {
        map.insert("docker", Arc::new(d.clone()));
    }
    (Drivers(Arc::new(map)), docker)
}

/// Fingerprints the machine and its drivers into the node registration.
async fn build_node(config: &AgentConfig, id: String, drivers: &Drivers) -> Node {
    let mut fp = fingerprint(&config.data_dir);
    if let Some(address) = &config.node_address {
        fp.address = address.clone();
        fp.attributes
            .insert("unique.network.ip-address".into(), address.clone());
    }
    let mut node = Node {
        name: config.name.clone(),
        id,
        datacenter: config.datacenter.clone(),
        node_class: config.node_class.clone(),
        node_pool: config.node_pool.clone(),
        attributes: fp.attributes,
        meta: config.meta.clone(),
        resources: fp.resources,
        http_addr: config
            .http_addr
            .map(|a| {
                let a = crate::config::advertised_http_addr(a, &fp.address);
                match config.http_tls {
                    Some(_) => format!("https://{a}"),
                    None => a.to_string(),
                }
            })
            .unwrap_or_default(),
        address: fp.address,
        registered_at_ms: now_ms(),
        host_volumes: config.host_volumes.clone(),
        ..Default::default()
    };
    node.resources.min_dynamic_port = config.min_dynamic_port;
    node.resources.max_dynamic_port = config.max_dynamic_port;
    node.resources.reserved_cpu_mhz = config.reserved_cpu_mhz;
    node.resources.reserved_memory_mb = config.reserved_memory_mb;
    node.attributes
        .insert("unique.node.name".into(), config.name.clone());
    node.resources.devices = crate::nvidia::fingerprint().await;
    node.attributes
        .extend(crate::nvidia::device_attributes(&node.resources.devices));
    let mut names: Vec<_> = drivers.0.keys().copied().collect();
    names.sort_unstable();
    for name in names {
        let info = drivers.0[name].fingerprint().await;
        if info.detected && info.healthy {
            node.attributes.insert(format!("driver.{name}"), "1".into());
            if !info.version.is_empty() {
                node.attributes
                    .insert(format!("driver.{name}.version"), info.version.clone());
            }
        }
        for (k, v) in &info.attributes {
            node.attributes.insert(k.clone(), v.clone());
        }
        node.drivers.insert(name.to_string(), info);
    }
    node
}

/// Runs the agent until `shutdown` resolves. Tasks keep running after it returns.
pub async fn run(
    mut config: AgentConfig,
    store: Arc<dyn Store>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AgentError> {
    if config.name.is_empty() {
        return Err(AgentError::Config("the agent needs a node name".into()));
    }
    crate::config::check_host_volumes(&config.host_volumes)?;
    // Bind before anything is spawned, so a bad address fails cleanly; the node registers the
    // bound address, so port 0 picks a free port.
    let http_tls = config
        .http_tls
        .as_ref()
        .map(|tls| nomos_tls::server_config(tls, &[b"http/1.1"]))
        .transpose()
        .map_err(|e| AgentError::Http(format!("TLS: {e}")))?;
    let listener = match config.http_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| AgentError::Http(format!("binding {addr}: {e}")))?;
            config.http_addr = Some(
                listener
                    .local_addr()
                    .map_err(|e| AgentError::Http(format!("binding {addr}: {e}")))?,
            );
            Some(listener)
        }
        None => None,
    };
    std::fs::create_dir_all(&config.data_dir).map_err(|e| AgentError::io(&config.data_dir, e))?;
    let state = StateDir::new(&config.data_dir);
    let node_id = state.node_id()?;
    let (drivers, docker) = build_drivers(
        &config,
        crate::fingerprint::fingerprint(&config.data_dir)
            .resources
            .cpu_mhz,
    )
    .await;
    let node = Arc::new(build_node(&config, node_id, &drivers).await);
    let metrics = Arc::new(Metrics::default());
    let (reports_tx, reports_rx) = mpsc::unbounded_channel();
    let config = Arc::new(config);
    let ctx = Ctx {
        config: config.clone(),
        node: node.clone(),
        drivers,
        agent_id: state.agent_id(),
        state: state.clone(),
        reports: reports_tx,
        metrics: metrics.clone(),
        live: crate::runner::LiveAllocs::default(),
        store: store.clone(),
        servers: crate::workload::ServerLink::new(&config, store.clone())?,
    };

    // Re-attach first: this needs nothing from the store.
    let mut agent = AgentLoop {
        ctx: ctx.clone(),
        store: store.clone(),
        runners: BTreeMap::new(),
        forgets: JoinSet::new(),
        jobs: HashMap::new(),
        docker,
        orphans_cleaned: false,
        spec_problems: HashMap::new(),
    };
    for rec in state.load_all() {
        let id = rec.alloc.id.clone();
        let status = rec.status.clone();
        agent
            .runners
            .insert(id.clone(), AllocRunner::spawn(ctx.clone(), rec));
        let _ = ctx.reports.send(Report::Status(id, Box::new(status)));
    }
    tracing::info!(node = %config.name, agent_id = %ctx.agent_id, resumed = agent.runners.len(), "agent starting");

    let mut background = JoinSet::new();
    background.spawn(crate::report::reporter(
        store.clone(),
        config.clone(),
        reports_rx,
        metrics.clone(),
    ));
    background.spawn(heartbeat(
        store.clone(),
        config.clone(),
        node.clone(),
        metrics.clone(),
        ctx.reports.clone(),
    ));
    background.spawn(crate::usage::sampler(
        store.clone(),
        ctx.live.clone(),
        node.clone(),
        config.usage_interval,
    ));
    if let Some(listener) = listener {
        background.spawn(crate::http::serve(
            listener,
            config.data_dir.clone(),
            metrics.clone(),
            ctx.live.clone(),
            http_tls,
        ));
    }

    tokio::select! {
        _ = agent.sync_forever() => {}
        _ = shutdown => {}
    }
    tracing::info!(node = %config.name, "agent shutting down; tasks keep running");
    for (_, r) in std::mem::take(&mut agent.runners) {
        r.detach();
    }
    agent.forgets.abort_all();
    background.abort_all();
    while background.join_next().await.is_some() {}
    while agent.forgets.join_next().await.is_some() {}
    Ok(())
}

struct AgentLoop {
    ctx: Ctx,
    store: Arc<dyn Store>,
    runners: BTreeMap<String, AllocRunner>,
    forgets: JoinSet<()>,
    /// Job versions read, by the spec they hold ([`SpecKey`]).
    jobs: HashMap<SpecKey, Arc<Job>>,
    docker: Option<DockerDriver>,
    orphans_cleaned: bool,
    /// Allocations whose spec could not be had, with the reason last told (in the status of one
    /// not started yet, in the log for one running), so each reason is told once.
    spec_problems: HashMap<String, String>,
}

/// A job version as an allocation names it: namespace, job, version and spec hash.
type SpecKey = (String, String, u64, String);

fn spec_key(alloc: &Allocation, hash: &str) -> SpecKey {
    (
        alloc.namespace.clone(),
        alloc.job_id.clone(),
        alloc.job_version,
        hash.to_string(),
    )
}

impl AgentLoop {
    async fn sync_forever(&mut self) {
        let mut backoff = Backoff::new(
            Duration::from_millis(100),
            Duration::from_millis(self.ctx.config.max_retry_backoff_ms),
        );
        loop {
            if let Err(e) = self.sync_once(&mut backoff).await {
                self.ctx.metrics.store_errors.inc();
                tracing::warn!(error = %e, "allocation sync failed; listing again after a pause");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }

    /// Lists the node's allocations, converges, then follows the watch until it fails.
    async fn sync_once(&mut self, backoff: &mut Backoff) -> Result<(), AgentError> {
        let prefix = keys::allocs_prefix(Some(&self.ctx.config.name));
        // Nothing is started or stopped from a store that is not this agent's cluster.
        let (listed_kvs, listed_revision) = crate::cluster_guard::list_checked(
            &*self.store,
            &self.ctx.state,
            &self.ctx.config.name,
            &prefix,
        )
        .await?;
        let mut desired = BTreeMap::new();
        for kv in &listed_kvs {
            let Some(key) = kv.key_utf8_or_skip() else {
                continue;
            };
            if let Some(a) = decode_alloc(key, &kv.value) {
                desired.insert(a.id.clone(), a);
            }
        }
        self.converge(&desired).await?;
        backoff.reset();
        if !self.orphans_cleaned {
            self.orphans_cleaned = true;
            self.clean_orphan_containers().await;
        }
        let mut stream = self
            .store
            .watch(
                KeySelector::prefix(prefix.clone()),
                WatchOptions {
                    start_revision: listed_revision + 1,
                    progress_notify: true,
                    ..Default::default()
                },
            )
            .await
            .map_err(store_err("watch allocations"))?;
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            // A deletion may stop a task, and a watch can resume on a replaced store without
            // listing again: check the cluster before acting on one, and on every tick.
            let mut check_cluster = false;
            tokio::select! {
                item = stream.next() => {
                    let Some(item) = item else { return Ok(()) };
                    let resp = item.map_err(store_err("watch allocations"))?;
                    for ev in resp.events {
                        let Some(key) = ev.kv.key_utf8_or_skip().map(str::to_string) else {
                            continue;
                        };
                        let id = key.rsplit('/').next().unwrap_or_default().to_string();
                        match ev.kind {
                            nomos_store::EventKind::Put => {
                                if let Some(a) = decode_alloc(&key, &ev.kv.value) {
                                    desired.insert(a.id.clone(), a);
                                }
                            }
                            nomos_store::EventKind::Delete => {
                                check_cluster = true;
                                desired.remove(&id);
                            }
                        }
                    }
                }
                _ = tick.tick() => check_cluster = true,
            }
            if check_cluster {
                let (store, state) = (&*self.store, &self.ctx.state);
                crate::cluster_guard::verify(store, state, &self.ctx.config.name).await?;
            }
            // Converging on every tick also retries starts whose job version could not be read.
            self.converge(&desired).await?;
        }
    }

    /// Removes containers this agent created ([`crate::driver::docker::created_by`]) whose
    /// allocation it does not run (left by a crashed agent whose state was lost, or by an
    /// allocation removed while the agent was down). Containers of known allocations are adopted
    /// by their runners instead; other agents' containers are never touched.
    async fn clean_orphan_containers(&mut self) {
        let Some(docker) = self.docker.clone() else {
            return;
        };
        if docker.client().is_err() {
            return;
        }
        match docker
            .containers_of_agent(&self.ctx.node.id, &self.ctx.agent_id)
            .await
        {
            Ok(list) => {
                for (id, alloc) in list {
                    if !self.runners.contains_key(&alloc) {
                        tracing::info!(container = %id, alloc = %alloc, "removing a container of an allocation this node no longer runs");
                        if let Err(e) = docker.remove(&id).await {
                            tracing::warn!(container = %id, error = %e, "removing orphan container failed");
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing this node's containers failed"),
        }
    }

    /// The job spec `alloc` runs. With a `job_spec_hash`, only a version holding that spec will
    /// do: from the cache, else read from the store (a job purged and created again reuses
    /// version numbers, so a number alone names no spec); a version holding another spec is
    /// [`AgentError::SpecMismatch`], and it is read again on the next try. Allocations without
    /// a hash (written before it existed) read their version each time.
    async fn job(&mut self, alloc: &Allocation) -> Result<Arc<Job>, AgentError> {
        let wanted = &alloc.job_spec_hash;
        if !wanted.is_empty() {
            if let Some(j) = self.jobs.get(&spec_key(alloc, wanted)) {
                return Ok(j.clone());
            }
        }
        let k = keys::job_version(&alloc.namespace, &alloc.job_id, alloc.job_version);
        let resp = self
            .store
            .range(KeySelector::key(k.clone()), RangeOptions::default())
            .await
            .map_err(store_err("read job version"))?;
        let kv = resp.kvs.first().ok_or_else(|| {
            AgentError::Config(format!(
                "job version {k} not found for allocation {}",
                alloc.id
            ))
        })?;
        let job: Job = serde_json::from_slice(&kv.value).map_err(|e| AgentError::Decode {
            what: k.clone(),
            source: e,
        })?;
        let found = plan::stored_spec_hash(&kv.value, &job, wanted);
        let job = Arc::new(job);
        self.jobs.insert(spec_key(alloc, &found), job.clone());
        if !wanted.is_empty() && *wanted != found {
            return Err(AgentError::SpecMismatch {
                key: k,
                alloc: alloc.id.clone(),
                wanted: wanted.clone(),
                found,
            });
        }
        Ok(job)
    }

    /// Tells why `alloc` cannot start yet, once per reason, in its status (retried on every
    /// sync tick). A sandbox refusal (an id that is no path component) can never start: its
    /// status is `failed`, and nothing is made on disk for it.
    fn report_unstartable(&mut self, alloc: &Allocation, e: &AgentError) {
        let reason = format!("cannot start: {e}");
        if self.spec_problems.get(&alloc.id) == Some(&reason) {
            return;
        }
        tracing::warn!(alloc = %alloc.id, error = %e, "cannot start allocation yet");
        let client_status = match e {
            AgentError::Sandbox { .. } => nomos_api::ClientStatus::Failed,
            _ => nomos_api::ClientStatus::Pending,
        };
        let status = AllocStatus {
            alloc_id: alloc.id.clone(),
            client_status,
            client_description: reason.clone(),
            modified_at_ms: now_ms(),
            ..Default::default()
        };
        let _ = self
            .ctx
            .reports
            .send(Report::Status(alloc.id.clone(), Box::new(status)));
        self.spec_problems.insert(alloc.id.clone(), reason);
    }

    /// Moves a running allocation to a new value (job version, spec, ports), but only onto the
    /// spec it names; until that can be read it keeps running what it runs.
    async fn update(&mut self, alloc: &Allocation) {
        match self.job(alloc).await {
            Ok(job) => {
                self.spec_problems.remove(&alloc.id);
                if let Some(r) = self.runners.get(&alloc.id) {
                    r.shared.update(|rec| {
                        rec.alloc = alloc.clone();
                        rec.job = job.clone();
                    });
                }
            }
            Err(e) => {
                let reason = e.to_string();
                if self.spec_problems.get(&alloc.id) != Some(&reason) {
                    tracing::warn!(alloc = %alloc.id, error = %e, "not updating allocation yet; it keeps running its current spec");
                    self.spec_problems.insert(alloc.id.clone(), reason);
                }
            }
        }
    }

    /// Forgets cached specs and told problems that no desired allocation names any more.
    fn prune(&mut self, desired: &BTreeMap<String, Allocation>) {
        let named: std::collections::HashSet<SpecKey> = desired
            .values()
            .map(|a| spec_key(a, &a.job_spec_hash))
            .collect();
        self.jobs.retain(|k, _| named.contains(k));
        self.spec_problems.retain(|id, _| desired.contains_key(id));
    }

    /// Starts a runner for `alloc` once its spec is read. A retryable failure (the store) is
    /// returned; any other is told in the allocation's status. An id that is no path component
    /// is refused before anything touches the disk.
    async fn start(&mut self, alloc: Allocation) -> Result<(), AgentError> {
        if let Err(e) = crate::confine::check_name("Allocation", "id", &alloc.id) {
            self.report_unstartable(&alloc, &e);
            return Ok(());
        }
        match self.job(&alloc).await {
            Ok(job) => {
                tracing::info!(alloc = %alloc.id, job = %alloc.job_id, "starting allocation");
                self.spec_problems.remove(&alloc.id);
                let rec = AllocRecord {
                    alloc: alloc.clone(),
                    job,
                    ..Default::default()
                };
                let runner = AllocRunner::spawn(self.ctx.clone(), rec);
                self.runners.insert(alloc.id.clone(), runner);
                Ok(())
            }
            Err(e) if e.is_retryable() => Err(e),
            Err(e) => {
                self.report_unstartable(&alloc, &e);
                Ok(())
            }
        }
    }

    async fn converge(&mut self, desired: &BTreeMap<String, Allocation>) -> Result<(), AgentError> {
        let local: BTreeMap<String, LocalAlloc> = self
            .runners
            .iter()
            .map(|(id, r)| {
                (
                    id.clone(),
                    LocalAlloc {
                        job_version: r.job_version(),
                        job_spec_hash: r.job_spec_hash(),
                        stopping: r.stopping(),
                    },
                )
            })
            .collect();
        let mut first_error = None;
        for action in plan::plan(desired, &local) {
            match action {
                Action::Start(alloc) => {
                    if let Err(e) = self.start(alloc).await {
                        first_error.get_or_insert(e);
                    }
                }
                Action::Stop(id) => {
                    if let Some(r) = self.runners.get(&id) {
                        tracing::info!(alloc = %id, "stopping allocation");
                        r.stop();
                    }
                }
                Action::Update(alloc) => self.update(&alloc).await,
                Action::Forget(id) => {
                    if let Some(r) = self.runners.remove(&id) {
                        tracing::info!(alloc = %id, "allocation removed; stopping and forgetting it");
                        r.stop();
                        let state = self.ctx.state.clone();
                        let reports = self.ctx.reports.clone();
                        self.forgets.spawn(async move {
                            r.join().await;
                            state.remove(&id);
                            let _ = reports.send(Report::Remove(id));
                        });
                    }
                }
            }
        }
        while let Some(Some(_)) = futures::FutureExt::now_or_never(self.forgets.join_next()) {}
        self.prune(desired);
        first_error.map_or(Ok(()), Err)
    }
}

fn decode_alloc(key: &str, value: &[u8]) -> Option<Allocation> {
    match serde_json::from_slice::<Allocation>(value) {
        Ok(mut a) => {
            if a.id.is_empty() {
                a.id = key.rsplit('/').next().unwrap_or_default().to_string();
            }
            Some(a)
        }
        Err(e) => {
            tracing::warn!(key, error = %e, "ignoring an allocation that is not valid JSON");
            None
        }
    }
}

/// Registers the node and keeps its heartbeat lease alive; re-registers whenever the lease is
/// lost (store restart, long outage), and then has the reporter check every status key (the
/// lifecycle loop may have marked them while the heartbeat was missing).
async fn heartbeat(
    store: Arc<dyn Store>,
    config: Arc<AgentConfig>,
    node: Arc<Node>,
    metrics: Arc<Metrics>,
    reports: mpsc::UnboundedSender<Report>,
) {
    let mut backoff = Backoff::new(
        Duration::from_millis(100),
        Duration::from_millis(config.max_retry_backoff_ms),
    );
    loop {
        let (ttl, interval) = match lease_settings(&*store, &config).await {
            Ok(t) => t,
            Err(e) => {
                metrics.store_errors.inc();
                tracing::warn!(error = %e, "reading the heartbeat settings failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        let lease = match register(&*store, &config, &node, ttl).await {
            Ok(id) => {
                backoff.reset();
                let _ = reports.send(Report::Resync);
                id
            }
            Err(e) => {
                metrics.store_errors.inc();
                tracing::warn!(error = %e, "node registration failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(interval).await;
            let t0 = std::time::Instant::now();
            match store.lease_keep_alive(lease).await {
                Ok(_) => {
                    metrics
                        .heartbeat_latency
                        .observe(t0.elapsed().as_secs_f64());
                    last_ok = tokio::time::Instant::now();
                }
                Err(StoreError::LeaseNotFound(_)) => break,
                Err(e) => {
                    metrics.store_errors.inc();
                    tracing::debug!(error = %e, "heartbeat failed");
                    if last_ok.elapsed() > Duration::from_secs(ttl as u64) {
                        break;
                    }
                }
            }
        }
    }
}

/// The heartbeat lease's TTL (seconds) and renewal interval: the servers' published settings
/// sized for the node count when `heartbeat_from_cluster` (see [`heartbeat_timing`]), else the
/// configured TTL renewed every third of it.
async fn lease_settings(
    store: &dyn Store,
    config: &AgentConfig,
) -> Result<(i64, Duration), AgentError> {
    let cluster = if config.heartbeat_from_cluster {
        let resp = store
            .range(
                KeySelector::key(keys::HEARTBEAT_CONFIG),
                RangeOptions::default(),
            )
            .await
            .map_err(store_err("read heartbeat settings"))?;
        match resp.kvs.first() {
            None => None,
            Some(kv) => {
                let hb: HeartbeatConfig =
                    serde_json::from_slice(&kv.value).map_err(|e| AgentError::Decode {
                        what: keys::HEARTBEAT_CONFIG.into(),
                        source: e,
                    })?;
                let count = |sel: KeySelector| async move {
                    let opts = RangeOptions {
                        count_only: true,
                        ..RangeOptions::default()
                    };
                    store
                        .range(sel, opts)
                        .await
                        .map(|r| r.count)
                        .map_err(store_err("count nodes"))
                };
                let others = count(KeySelector::prefix(keys::NODES_PREFIX)).await?;
                // This node counts too, registered yet or not.
                let me = count(KeySelector::key(keys::node(&config.name))).await?;
                Some((hb, (others + 1 - me).max(1) as usize))
            }
        }
    } else {
        None
    };
    let (ttl, interval) = heartbeat_timing(config.heartbeat_ttl_secs, cluster.as_ref());
    tracing::info!(
        ttl_secs = ttl,
        renew_ms = interval.as_millis() as u64,
        "heartbeat lease"
    );
    Ok((ttl, interval))
}

/// Pure rule behind [`lease_settings`]: with the servers' settings and the node count, Nomad's
/// TTL rule ([`lease_timing`]), renewing at its interval but at least twice per TTL so one slow
/// renewal is survived; without them, `fixed_ttl_secs` renewed every third of it.
pub fn heartbeat_timing(
    fixed_ttl_secs: i64,
    cluster: Option<&(HeartbeatConfig, usize)>,
) -> (i64, Duration) {
    match cluster {
        Some((hb, nodes)) => {
            let t = lease_timing(hb, *nodes);
            let half = (t.ttl_seconds * 1000 / 2).max(200);
            let every = t.keepalive_interval_ms.clamp(200, half);
            (t.ttl_seconds, Duration::from_millis(every as u64))
        }
        None => {
            let ttl = fixed_ttl_secs.max(1);
            (ttl, Duration::from_millis((ttl as u64 * 1000 / 3).max(200)))
        }
    }
}

async fn register(
    store: &dyn Store,
    config: &AgentConfig,
    node: &Node,
    ttl: i64,
) -> Result<i64, AgentError> {
    let mut node = node.clone();
    node.registered_at_ms = now_ms();
    let bytes = serde_json::to_vec(&node).map_err(|e| AgentError::Decode {
        what: "node".into(),
        source: e,
    })?;
    store
        .put(
            keys::node(&config.name).into_bytes(),
            bytes,
            PutOptions::default(),
        )
        .await
        .map_err(store_err("register node"))?;
    let grant = store
        .lease_grant(ttl, 0)
        .await
        .map_err(store_err("grant heartbeat lease"))?;
    let beat = serde_json::json!({ "node": config.name, "id": node.id, "at_ms": now_ms() });
    store
        .put(
            keys::heartbeat(&config.name).into_bytes(),
            beat.to_string().into_bytes(),
            PutOptions {
                lease: grant.id,
                ..Default::default()
            },
        )
        .await
        .map_err(store_err("write heartbeat"))?;
    Ok(grant.id)
}
