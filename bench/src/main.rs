//! nomos-bench: the scheduling scale benchmark. It registers thousands of simulated nodes (no
//! real tasks: a simulated agent acknowledges every allocation as running at once), submits
//! `--jobs` service jobs of `--count` allocations each, runs the jobs controller against the
//! chosen store, and reports, in the same run:
//!
//! - the store's own batched-write rate (keys/s in transactions of 100 puts of allocation-sized
//!   values), the baseline;
//! - placements per second (allocations committed to the store, from the first spec written to
//!   the last allocation visible on a watch);
//! - their ratio (how close scheduling gets to the store's limit);
//! - the controller's memory per allocation: live heap bytes released when the controller
//!   (its caches and indexes) is dropped, counted by a global allocator wrapper, so the store's
//!   own memory is not included.
//!
//! The last line is `placements_per_s=… store_keys_per_s=… ratio=… controller_bytes_per_alloc=…`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use nomos_api::{
    AllocStatus, Allocation, ClientStatus, DesiredStatus, DriverInfo, Node, NodeResources,
};
use nomos_controllers::jobs::{self, JobsConfig};
use nomos_controllers::scheduler::SchedulerConfig;
use nomos_controllers::Algorithm;
use nomos_store::{
    keys, EventKind, KeySelector, RangeOptions, Store, Txn, TxnOp, WatchOptions, WatchStream,
};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Parser, Debug)]
#[command(
    name = "nomos-bench",
    about = "Scheduling throughput of the jobs controller on simulated nodes"
)]
struct Args {
    /// Simulated nodes.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Service jobs.
    #[arg(long, default_value_t = 100)]
    jobs: usize,
    /// Allocations per job.
    #[arg(long, default_value_t = 10)]
    count: u32,
    /// `embedded` (on-disk, in a temp dir) or `etcd` (a real etcd started for the run).
    #[arg(long, default_value = "embedded")]
    store: String,
    /// Concurrent reconciles.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// `binpack` or `spread`.
    #[arg(long, default_value = "binpack")]
    algorithm: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// CPU of each simulated node, in MHz.
    #[arg(long, default_value_t = 8000)]
    node_cpu: u32,
    /// Memory of each simulated node, in MB.
    #[arg(long, default_value_t = 16384)]
    node_memory: u32,
    /// CPU each task asks for, in MHz.
    #[arg(long, default_value_t = 100)]
    task_cpu: u64,
    /// Memory each task asks for, in MB.
    #[arg(long, default_value_t = 64)]
    task_memory: u64,
    /// Revisions of history the embedded store keeps (compacting older ones), as `nctl server
    /// --store-history`; 0 keeps everything.
    #[arg(long, default_value_t = nomos_store::DEFAULT_HISTORY)]
    store_history: i64,
    /// Stop when no allocation was placed for this many seconds while the jobs controller
    /// reports placement failures.
    #[arg(long, default_value_t = 10)]
    stall_secs: u64,
}

/// Dynamic ports of each simulated node (every task takes one).
const NODE_PORTS: u64 = 32000 - 20000 + 1;

impl Args {
    /// How many tasks one node holds: the scarcest of CPU, memory and ports.
    fn per_node(&self) -> u64 {
        (u64::from(self.node_cpu) / self.task_cpu.max(1))
            .min(u64::from(self.node_memory) / self.task_memory.max(1))
            .min(NODE_PORTS)
    }

    /// Refuses a run the cluster cannot hold, before anything starts.
    fn check_fits(&self) -> Result<(), String> {
        let total = self.jobs as u64 * u64::from(self.count);
        let capacity = self.nodes as u64 * self.per_node();
        if capacity < total {
            return Err(format!(
                "{total} allocations do not fit: {} nodes of {} MHz / {} MB hold {} tasks of {} MHz / {} MB each ({capacity} in all); add --nodes or change the sizes",
                self.nodes, self.node_cpu, self.node_memory, self.per_node(), self.task_cpu, self.task_memory
            ));
        }
        Ok(())
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    args.check_fits()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(bench(args))
}

fn sample_alloc(i: usize) -> Vec<u8> {
    let a = Allocation {
        id: format!("{:08x}-0000-4000-8000-{:012x}", i, i),
        namespace: "default".into(),
        job_id: "baseline-job".into(),
        job_version: 0,
        task_group: "web".into(),
        name: format!("baseline-job.web[{}]", i % 100),
        index: (i % 100) as u32,
        node: format!("node-{:05}", i % 10_000),
        ..Default::default()
    };
    serde_json::to_vec(&a).unwrap_or_default()
}

async fn write_batched(store: &dyn Store, kvs: Vec<(String, Vec<u8>)>) -> Result<(), BoxError> {
    for chunk in kvs.chunks(100) {
        let ops: Vec<TxnOp> = chunk
            .iter()
            .map(|(k, v)| TxnOp::put(k.clone(), v.clone()))
            .collect();
        store.txn(Txn::new().and_then(ops)).await?;
    }
    Ok(())
}

async fn count(store: &dyn Store, prefix: &str) -> Result<i64, BoxError> {
    let opts = RangeOptions {
        count_only: true,
        ..Default::default()
    };
    Ok(store
        .range(KeySelector::prefix(prefix.as_bytes().to_vec()), opts)
        .await?
        .count)
}

fn node(i: usize, args: &Args) -> Node {
    let name = format!("node-{i:05}");
    let mut n = Node {
        name: name.clone(),
        id: format!("id-{i}"),
        datacenter: format!("dc{}", i % 3 + 1),
        node_pool: "default".into(),
        address: format!("10.{}.{}.{}", i / 65536 % 256, i / 256 % 256, i % 256),
        resources: NodeResources {
            cpu_mhz: args.node_cpu,
            cores: 4,
            memory_mb: args.node_memory,
            min_dynamic_port: 20000,
            max_dynamic_port: 32000,
            ..Default::default()
        },
        ..Default::default()
    };
    n.attributes.insert("kernel.name".into(), "linux".into());
    n.attributes.insert("unique.hostname".into(), name);
    n.drivers.insert(
        "raw_exec".into(),
        DriverInfo {
            detected: true,
            healthy: true,
            ..Default::default()
        },
    );
    n
}

fn job_spec(i: usize, args: &Args) -> Vec<u8> {
    let v = serde_json::json!({
        "id": format!("job-{i:05}"),
        "namespace": "default",
        "datacenters": ["*"],
        "type": "service",
        "groups": [{
            "name": "web",
            "count": args.count,
            "networks": [{"mode": "host", "ports": [{"label": "http"}]}],
            "tasks": [{"name": "server", "driver": "raw_exec", "config": {"command": "/bin/sleep", "args": ["3600"]},
                       "resources": {"cpu": args.task_cpu, "memory_mb": args.task_memory}}]
        }]
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Watches every allocation key from revision `from` on.
async fn watch_allocs(store: &dyn Store, from: i64) -> Result<WatchStream, BoxError> {
    let opts = WatchOptions {
        start_revision: from,
        ..Default::default()
    };
    Ok(store
        .watch(KeySelector::prefix(b"/nomos/allocs/".to_vec()), opts)
        .await?)
}

/// Counts allocations as they become visible on a watch (created: their first version), so
/// the bench needs no scans of the store, which grow with it, to know how many are placed.
async fn count_placements(
    store: Arc<dyn Store>,
    from: i64,
    placed: Arc<AtomicUsize>,
) -> Result<(), BoxError> {
    let mut w = watch_allocs(&*store, from).await?;
    while let Some(r) = w.next().await {
        let created = r?
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Put && e.kv.version == 1)
            .count();
        placed.fetch_add(created, Ordering::Relaxed);
    }
    Ok(())
}

/// Acknowledges every new allocation as running, in batches, as thousands of agents would.
async fn simulated_agents(store: Arc<dyn Store>, from: i64) -> Result<(), BoxError> {
    let mut w = watch_allocs(&*store, from).await?;
    while let Some(first) = w.next().await {
        // Gather what arrives within 10 ms into one batch (up to 500 acknowledgements), as a
        // fleet of agents reporting at once would load the store with many small writes.
        let mut events = first?.events;
        let window = tokio::time::Instant::now() + Duration::from_millis(10);
        while events.len() < 500 {
            match tokio::time::timeout_at(window, w.next()).await {
                Ok(Some(r)) => events.extend(r?.events),
                Ok(None) | Err(_) => break,
            }
        }
        let mut puts = Vec::new();
        for e in events {
            // Only new allocations (their first version) are acknowledged, once each.
            if e.kind != EventKind::Put || e.kv.version != 1 {
                continue;
            }
            let Ok(a) = serde_json::from_slice::<Allocation>(&e.kv.value) else {
                continue;
            };
            if a.desired_status != DesiredStatus::Run {
                continue;
            }
            let st = AllocStatus {
                alloc_id: a.id.clone(),
                client_status: ClientStatus::Running,
                healthy: Some(true),
                ..Default::default()
            };
            puts.push((keys::alloc_status(&a.node, &a.id), serde_json::to_vec(&st)?));
        }

        write_batched(&*store, puts).await?;
    }
    Ok(())
}

/// The store `--store` names: embedded in `dir` (keeping `history` revisions), or a fresh
/// etcd process (returned so it lives as long as the bench).
async fn open_store(
    kind: &str,
    dir: &std::path::Path,
    history: i64,
) -> Result<(Arc<dyn Store>, Option<nomos_store::test_util::EtcdProcess>), BoxError> {
    match kind {
        "embedded" => {
            let options = nomos_store::EmbeddedOptions {
                auto_compaction_retention: history.max(0),
                ..Default::default()
            };
            let store = nomos_store::EmbeddedStore::open_with(dir, options)?;
            Ok((Arc::new(store), None))
        }
        "etcd" => {
            let p = nomos_store::test_util::EtcdProcess::start();
            let s = p.connect().await;
            Ok((Arc::new(s), Some(p)))
        }
        other => Err(format!("--store: expected `embedded` or `etcd`, found `{other}`").into()),
    }
}

/// The baseline: the store's batched write rate with allocation-sized values, in keys per
/// second, measured on as many keys as the run places (between 10,000 and 50,000).
async fn baseline_keys_per_s(store: &dyn Store, total: usize, kind: &str) -> Result<f64, BoxError> {
    let n_base = total.clamp(10_000, 50_000);
    let kvs: Vec<(String, Vec<u8>)> = (0..n_base)
        .map(|i| (format!("/bench/baseline/{i:08}"), sample_alloc(i)))
        .collect();
    let t = Instant::now();
    write_batched(store, kvs).await?;
    let keys_per_s = n_base as f64 / t.elapsed().as_secs_f64();
    store
        .delete(KeySelector::prefix(b"/bench/".to_vec()), Default::default())
        .await?;
    println!("store={kind} baseline: {n_base} keys in txns of 100: {keys_per_s:.0} keys/s");
    Ok(keys_per_s)
}

/// Writes `nodes` simulated nodes, each with a heartbeat.
async fn register_nodes(store: &dyn Store, args: &Args) -> Result<(), BoxError> {
    let nodes = args.nodes;
    let t = Instant::now();
    let mut kvs = Vec::with_capacity(nodes * 2);
    for i in 0..nodes {
        let n = node(i, args);
        kvs.push((keys::node(&n.name), serde_json::to_vec(&n)?));
        kvs.push((keys::heartbeat(&n.name), b"{}".to_vec()));
    }
    write_batched(store, kvs).await?;
    println!(
        "registered {nodes} nodes in {:.2}s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Polls until `prefix` holds at least `target` keys or `deadline` passes; the last count.
async fn wait_for_keys(
    store: &dyn Store,
    prefix: &str,
    target: usize,
    deadline: Instant,
) -> Result<usize, BoxError> {
    loop {
        let n = count(store, prefix).await? as usize;
        if n >= target || Instant::now() > deadline {
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `total` allocations are visible (`placed`, counted by [`count_placements`]);
/// fails with a clear message when none was placed for `stall` while the controller
/// counts placement failures, or at `deadline`.
async fn wait_for_placements(
    placed: &AtomicUsize,
    total: usize,
    deadline: Instant,
    stall: Duration,
    failures: impl Fn() -> u64,
) -> Result<usize, BoxError> {
    let (mut last, mut since) = (0, Instant::now());
    loop {
        let n = placed.load(Ordering::Relaxed);
        if n >= total || Instant::now() > deadline {
            return Ok(n);
        }
        if n != last {
            (last, since) = (n, Instant::now());
        } else if since.elapsed() >= stall && failures() > 0 {
            return Err(format!(
                "placements failed: {n} of {total} allocations placed, none for {}s, and the jobs controller counted {} placement failures (the nodes are full or do not match; see --nodes and the size flags)",
                stall.as_secs(),
                failures()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// CPU seconds (user and system) the process has used so far.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
        return 0.0;
    }
    // SAFETY: initialised by the successful call above.
    let u = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// The process's peak resident memory (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

async fn bench(args: Args) -> Result<(), BoxError> {
    let algorithm: Algorithm = args.algorithm.parse()?;
    let tmp = tempfile::tempdir()?;
    let (store, _etcd) = open_store(&args.store, tmp.path(), args.store_history).await?;
    let total = args.jobs * args.count as usize;
    let store_keys_per_s = baseline_keys_per_s(&*store, total, &args.store).await?;
    register_nodes(&*store, &args).await?;

    let rev = store.status().await?.revision;
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = tokio::spawn(count_placements(store.clone(), rev + 1, seen.clone()));
    let agents = tokio::spawn(simulated_agents(store.clone(), rev + 1));

    let live_before = LIVE.load(Ordering::Relaxed);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = JobsConfig {
        scheduler: SchedulerConfig { algorithm },
        workers: args.workers,
        resync: Duration::from_secs(3600),
        ..Default::default()
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = nomos_controllers::runtime::metrics::Metrics::register(&mut registry);
    let label = nomos_controllers::runtime::metrics::Metrics::label(jobs::NAME);
    let controller = tokio::spawn(jobs::run(
        store.clone(),
        config,
        Some(metrics.clone()),
        None,
        async move {
            let _ = stop_rx.await;
        },
    ));

    let t0 = Instant::now();
    let cpu0 = cpu_seconds();
    let specs: Vec<(String, Vec<u8>)> = (0..args.jobs)
        .map(|i| {
            (
                keys::job("default", &format!("job-{i:05}")),
                job_spec(i, &args),
            )
        })
        .collect();
    write_batched(&*store, specs).await?;
    let deadline = t0 + Duration::from_secs(args.timeout_secs);
    let failures = || metrics.placement_failures.get_or_create(&label).get();
    let stall = Duration::from_secs(args.stall_secs);
    let placed = wait_for_placements(&seen, total, deadline, stall, failures).await?;
    let elapsed = t0.elapsed().as_secs_f64();
    // The store agrees (the watch could only have shown what was committed).
    let stored = count(&*store, "/nomos/allocs/").await? as usize;
    if stored < placed {
        return Err(
            format!("the watch showed {placed} allocations, the store holds {stored}").into(),
        );
    }
    let cpu = cpu_seconds() - cpu0;
    let placements_per_s = placed as f64 / elapsed;
    println!(
        "placed {placed}/{total} allocations on {} nodes in {elapsed:.2}s ({cpu:.1} CPU seconds, {:.2} cores busy; store at revision {})",
        args.nodes,
        cpu / elapsed,
        store.status().await?.revision
    );

    // Let the acknowledgements land, then measure what the controller holds.
    wait_for_keys(&*store, "/nomos/allocstatus/", placed, deadline).await?;
    agents.abort();
    counter.abort();
    let _ = agents.await;
    let _ = counter.await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let live_with = LIVE.load(Ordering::Relaxed);
    let _ = stop_tx.send(());
    controller.await??;
    let live_after = LIVE.load(Ordering::Relaxed);
    let controller_bytes = (live_with - live_after).max(0);
    let per_alloc = controller_bytes as f64 / placed.max(1) as f64;
    println!(
        "controller heap: {:.1} MiB held for {placed} allocations ({:.1} MiB growth since start)",
        controller_bytes as f64 / 1048576.0,
        (live_with - live_before) as f64 / 1048576.0
    );
    println!(
        "reconciles={} commit_conflicts={} placement_failures={}",
        metrics.reconciles.get_or_create(&label).get(),
        metrics.commit_conflicts.get_or_create(&label).get(),
        metrics.placement_failures.get_or_create(&label).get()
    );
    println!("peak_rss_mib={:.0}", peak_rss_mib());
    let ratio = placements_per_s / store_keys_per_s;
    println!(
        "placements_per_s={placements_per_s:.0} store_keys_per_s={store_keys_per_s:.0} ratio={ratio:.3} controller_bytes_per_alloc={per_alloc:.0}"
    );
    if placed < total {
        return Err(
            format!("only {placed} of {total} allocations placed before the timeout").into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(flags: &[&str]) -> Args {
        let mut all = vec!["nomos-bench"];
        all.extend_from_slice(flags);
        Args::parse_from(all)
    }

    #[test]
    fn a_node_holds_what_its_scarcest_resource_allows() {
        let cases = [
            (vec![], 80),
            (vec!["--node-cpu", "1000"], 10),
            (vec!["--task-memory", "1024"], 16),
            (vec!["--task-cpu", "1", "--task-memory", "1"], 8000),
            (
                vec![
                    "--node-cpu",
                    "100000",
                    "--task-cpu",
                    "1",
                    "--task-memory",
                    "1",
                ],
                NODE_PORTS,
            ),
        ];
        for (flags, per_node) in cases {
            assert_eq!(args(&flags).per_node(), per_node, "{flags:?}");
        }
    }

    #[test]
    fn a_run_that_cannot_fit_is_refused_before_it_starts() {
        assert!(args(&["--nodes", "10", "--jobs", "8", "--count", "100"])
            .check_fits()
            .is_ok());
        let refused = args(&["--nodes", "10", "--jobs", "9", "--count", "100"])
            .check_fits()
            .expect_err("900 allocations on 10 nodes of 80");
        assert!(refused.contains("900 allocations do not fit"), "{refused}");
        assert!(refused.contains("(800 in all)"), "{refused}");
    }
}
