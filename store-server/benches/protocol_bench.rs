//! Puts/s and watch events/s through etcd's protocol: the store server (over the embedded store,
//! on disk and in memory) against a real etcd on the same machine, in the same run, printed with
//! the ratio. Run with `cargo bench -p nomos-store-server` (optionally `-- PUTS CLIENTS ROUNDS`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, WatchOptions};
use nomos_store::test_util::EtcdProcess;
use nomos_store::{EmbeddedStore, Store};
use nomos_store_server::{StoreServer, StoreServerConfig};

struct Rates {
    puts_per_s: f64,
    serial_puts_per_s: f64,
    watch_events_per_s: f64,
    replay_events_per_s: f64,
}

impl Rates {
    /// Each figure at the better of the two rounds.
    fn best_with(self, other: Rates) -> Rates {
        Rates {
            puts_per_s: self.puts_per_s.max(other.puts_per_s),
            serial_puts_per_s: self.serial_puts_per_s.max(other.serial_puts_per_s),
            watch_events_per_s: self.watch_events_per_s.max(other.watch_events_per_s),
            replay_events_per_s: self.replay_events_per_s.max(other.replay_events_per_s),
        }
    }
}

async fn connect(endpoint: &str) -> Client {
    Client::connect([endpoint], None).await.expect("connecting")
}

/// `total` puts spread over `clients` concurrent writers (several connections).
async fn concurrent_puts(endpoint: &str, prefix: &str, total: usize, clients: usize) -> f64 {
    let conns: Vec<Client> = futures::future::join_all((0..4).map(|_| connect(endpoint))).await;
    let per = total / clients;
    let start = Instant::now();
    let writers = (0..clients).map(|w| {
        let mut kv = conns[w % conns.len()].kv_client();
        let prefix = prefix.to_string();
        async move {
            for i in 0..per {
                kv.put(format!("{prefix}/{w}/{i}"), vec![b'v'; 100], None)
                    .await
                    .expect("put");
            }
        }
    });
    futures::future::join_all(writers).await;
    (per * clients) as f64 / start.elapsed().as_secs_f64()
}

/// One writer, one put at a time: round-trip bound.
async fn serial_puts(endpoint: &str, n: usize) -> f64 {
    let mut kv = connect(endpoint).await.kv_client();
    let start = Instant::now();
    for i in 0..n {
        kv.put(format!("/serial/{i}"), vec![b'v'; 100], None)
            .await
            .expect("put");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Events per second seen by a prefix watcher while concurrent writers put `total` keys.
async fn watch_events(endpoint: &str, total: usize, clients: usize) -> f64 {
    let client = connect(endpoint).await;
    let mut stream = client
        .watch_client()
        .watch("/watched/", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch");
    stream.message().await.expect("created").expect("created");
    let start = Instant::now();
    let writer = concurrent_puts(endpoint, "/watched", total, clients);
    let expected = (total / clients) * clients;
    let reader = async {
        let mut seen = 0;
        while seen < expected {
            let resp = tokio::time::timeout(Duration::from_secs(60), stream.message())
                .await
                .expect("watch stalled for 60 s")
                .expect("watch failed")
                .expect("watch ended");
            seen += resp.events().len();
        }
        start.elapsed()
    };
    let (_, elapsed) = tokio::join!(writer, reader);
    expected as f64 / elapsed.as_secs_f64()
}

async fn measure(endpoint: &str, puts: usize, clients: usize) -> Rates {
    // Warm up connections and the server.
    concurrent_puts(endpoint, "/warm", 1000, 10).await;
    Rates {
        puts_per_s: concurrent_puts(endpoint, "/bench", puts, clients).await,
        serial_puts_per_s: serial_puts(endpoint, puts / 10).await,
        watch_events_per_s: watch_events(endpoint, puts, clients).await,
        replay_events_per_s: replay_events(endpoint, (puts / clients) * clients).await,
    }
}

/// Events per second of a watch replaying history: every `/bench/` put from revision 1.
async fn replay_events(endpoint: &str, expected: usize) -> f64 {
    let client = connect(endpoint).await;
    let start = Instant::now();
    let options = WatchOptions::new().with_prefix().with_start_revision(1);
    let mut stream = client
        .watch_client()
        .watch("/bench/", Some(options))
        .await
        .expect("watch");
    let mut seen = 0;
    while seen < expected {
        let resp = tokio::time::timeout(Duration::from_secs(60), stream.message())
            .await
            .expect("replay stalled for 60 s")
            .expect("watch failed")
            .expect("watch ended");
        seen += resp.events().len();
    }
    expected as f64 / start.elapsed().as_secs_f64()
}

/// The same concurrent puts straight into the store, without the protocol: the ceiling.
async fn direct_puts(store: Arc<dyn Store>, total: usize, clients: usize) -> f64 {
    let per = total / clients;
    let start = Instant::now();
    let writers = (0..clients).map(|w| {
        let store = store.clone();
        async move {
            for i in 0..per {
                let key = format!("/direct/{w}/{i}").into_bytes();
                store
                    .put(key, vec![b'v'; 100], Default::default())
                    .await
                    .expect("put");
            }
        }
    });
    futures::future::join_all(writers).await;
    (per * clients) as f64 / start.elapsed().as_secs_f64()
}

/// A server running on its own runtime and threads, as etcd runs in its own process, so the
/// benchmark's clients do not share worker threads with it.
struct Served {
    endpoint: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(store: Arc<dyn Store>, repair_authority: bool) -> Served {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let mut config = StoreServerConfig::new("127.0.0.1:0".parse().unwrap());
            config.repair_authority = repair_authority;
            let server = StoreServer::bind(config).await.expect("bind");
            ready_tx
                .send(server.client_url())
                .expect("reporting the endpoint");
            server
                .serve(store, async move {
                    let _ = stopped.await;
                })
                .await
                .expect("serving");
        });
    });
    let endpoint = ready_rx.recv().expect("server started");
    Served {
        endpoint,
        stop: Some(stop),
        thread: Some(thread),
    }
}

fn line(what: &str, ours: f64, etcd: f64) {
    println!(
        "{what:<54} nomos={ours:>10.0} etcd={etcd:>10.0} ratio={:.2}",
        ours / etcd
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let puts: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let clients: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64);

    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    // The machine is shared: alternate the contenders and keep each one's best round.
    let mut best: [Option<Rates>; 4] = [None, None, None, None];
    let mut direct_memory: f64 = 0.0;
    for round in 0..rounds {
        let etcd = tokio::task::spawn_blocking(EtcdProcess::start)
            .await
            .expect("starting etcd");
        let etcd_rates = measure(&etcd.endpoint(), puts, clients).await;
        drop(etcd);

        let dir = tempfile::tempdir().expect("temp dir");
        let disk: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(dir.path()).expect("opening the embedded store"));
        let served = serve(disk, true);
        let disk_rates = measure(&served.endpoint, puts, clients).await;
        drop(served);

        let memory: Arc<dyn Store> = Arc::new(EmbeddedStore::in_memory());
        let served = serve(memory.clone(), true);
        let mem_rates = measure(&served.endpoint, puts, clients).await;
        drop(served);
        let served = serve(Arc::new(EmbeddedStore::in_memory()), false);
        let raw_rates = measure(&served.endpoint, puts, clients).await;
        drop(served);
        direct_memory = direct_memory.max(direct_puts(memory, puts, clients).await);

        eprintln!(
            "round {round}: puts/s etcd={:.0} disk={:.0} memory={:.0} memory-without-repair={:.0}",
            etcd_rates.puts_per_s,
            disk_rates.puts_per_s,
            mem_rates.puts_per_s,
            raw_rates.puts_per_s
        );
        for (slot, rates) in best
            .iter_mut()
            .zip([etcd_rates, disk_rates, mem_rates, raw_rates])
        {
            *slot = Some(match slot.take() {
                None => rates,
                Some(b) => b.best_with(rates),
            });
        }
    }
    let [etcd_rates, disk_rates, mem_rates, raw_rates] =
        best.map(|b| b.expect("at least one round"));

    print_report(
        (puts, clients, rounds),
        [etcd_rates, disk_rates, mem_rates, raw_rates],
        direct_memory,
    );
}

/// Each rate against etcd's, then the summary line the README's figures come from.
fn print_report(
    (puts, clients, rounds): (usize, usize, usize),
    [etcd_rates, disk_rates, mem_rates, raw_rates]: [Rates; 4],
    direct_memory: f64,
) {
    println!(
        "store server over etcd's protocol vs real etcd ({puts} puts of 100 B, {clients} concurrent writers, best of {rounds} rounds)"
    );
    line(
        "puts/s, embedded on disk",
        disk_rates.puts_per_s,
        etcd_rates.puts_per_s,
    );
    line(
        "puts/s, embedded in memory",
        mem_rates.puts_per_s,
        etcd_rates.puts_per_s,
    );
    line(
        "puts/s, in memory, :authority repair off",
        raw_rates.puts_per_s,
        etcd_rates.puts_per_s,
    );
    line(
        "serial puts/s (one writer), embedded on disk",
        disk_rates.serial_puts_per_s,
        etcd_rates.serial_puts_per_s,
    );
    line(
        "serial puts/s (one writer), in memory",
        mem_rates.serial_puts_per_s,
        etcd_rates.serial_puts_per_s,
    );
    line(
        "watch events/s, embedded on disk",
        disk_rates.watch_events_per_s,
        etcd_rates.watch_events_per_s,
    );
    line(
        "watch events/s, embedded in memory",
        mem_rates.watch_events_per_s,
        etcd_rates.watch_events_per_s,
    );
    line(
        "watch replay events/s (from revision 1), on disk",
        disk_rates.replay_events_per_s,
        etcd_rates.replay_events_per_s,
    );
    line(
        "watch replay events/s (from revision 1), in memory",
        mem_rates.replay_events_per_s,
        etcd_rates.replay_events_per_s,
    );
    line(
        "puts/s straight into the in-memory store (no protocol)",
        direct_memory,
        etcd_rates.puts_per_s,
    );
    println!(
        "puts_per_s={:.0} etcd_puts_per_s={:.0} ratio={:.2} watch_events_per_s={:.0} etcd_watch_events_per_s={:.0} ratio={:.2}",
        disk_rates.puts_per_s,
        etcd_rates.puts_per_s,
        disk_rates.puts_per_s / etcd_rates.puts_per_s,
        disk_rates.watch_events_per_s,
        etcd_rates.watch_events_per_s,
        disk_rates.watch_events_per_s / etcd_rates.watch_events_per_s,
    );
}
