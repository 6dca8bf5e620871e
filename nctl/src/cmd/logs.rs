//! `nctl logs ALLOC [TASK] [-f] [--stderr]`: a task's output, streamed from the server
//! (`GET /v1/client/fs/logs/{alloc}?plain=true`).

use futures::StreamExt;
use std::io::Write;

use super::client::{escape, Client};
use super::Global;

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Allocation ID (or unique prefix).
    pub alloc: String,
    /// Task name; may be left out when the allocation has one task.
    pub task: Option<String>,
    /// Keep printing new output.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Show stderr instead of stdout.
    #[arg(long)]
    pub stderr: bool,
}

pub async fn run(g: &Global, args: LogsArgs) -> anyhow::Result<i32> {
    let client = Client::new(g);
    let mut path = format!(
        "/v1/client/fs/logs/{}?plain=true&type={}&follow={}",
        escape(&args.alloc),
        if args.stderr { "stderr" } else { "stdout" },
        args.follow
    );
    if let Some(t) = &args.task {
        path.push_str(&format!("&task={}", escape(t)));
    }
    let resp = client.stream(&path).await?;
    let mut body = resp.bytes_stream();
    let mut out = std::io::stdout();
    while let Some(chunk) = body.next().await {
        let written = out.write_all(&chunk?).and_then(|()| out.flush());
        match written {
            // `nctl logs ... | head`: the reader has what it wanted.
            Err(e) if crate::console::is_closed_pipe(&e) => return Ok(0),
            other => other?,
        }
    }
    Ok(0)
}
