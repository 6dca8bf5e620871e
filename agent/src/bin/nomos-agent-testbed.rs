//! A bare agent process for tests that need to kill an agent with `kill -9`: it runs
//! [`nomos_agent::run`] on an on-disk embedded store until SIGTERM or SIGINT.
//!
//! Usage: `nomos-agent-testbed <data-dir> <node-name> <store-dir>`.

use std::path::PathBuf;
use std::sync::Arc;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!(
            "usage: {} <data-dir> <node-name> <store-dir>",
            args.first()
                .map(String::as_str)
                .unwrap_or("nomos-agent-testbed")
        );
        return std::process::ExitCode::from(2);
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let store = nomos_store::EmbeddedStore::open(&PathBuf::from(&args[3]))
            .map_err(|e| e.to_string())?;
        let mut config = nomos_agent::AgentConfig::new(args[2].clone(), PathBuf::from(&args[1]));
        config.heartbeat_ttl_secs = 2;
        config.enable_docker = false;
        config.enable_raw_exec = true;
        config.default_min_healthy_time_ms = 300;
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        nomos_agent::run(config, Arc::new(store), shutdown)
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agent failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
