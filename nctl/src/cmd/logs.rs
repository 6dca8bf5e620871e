//! `nctl logs ALLOC [TASK] [-f] [--stderr] [--tail N]`: a task's output, streamed from the
//! server (`GET /v1/client/fs/logs/{alloc}?plain=true`). `--tail N` reads the end of the log
//! as frames (which carry the position after their data), prints its last N lines and, with
//! `-f`, follows from that position.

use base64::Engine;
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
    /// Print only the last N lines (then follow, with -f).
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
}

/// Bytes read from the end at first for each line `--tail` asks for (grows while too few
/// lines came back).
const BYTES_PER_LINE: u64 = 128;

pub async fn run(g: &Global, args: LogsArgs) -> anyhow::Result<i32> {
    let client = Client::new(g);
    let mut out = std::io::stdout();
    let from = match args.tail {
        Some(n) => {
            let (text, end) = read_tail(&client, &args, n).await?;
            if !write_or_closed(&mut out, &text)? || !args.follow {
                return Ok(0);
            }
            Position::Start(end)
        }
        None => Position::Start(0),
    };
    let resp = client
        .stream(&log_path(&args, from, args.follow, true))
        .await?;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        if !write_or_closed(&mut out, &chunk?)? {
            return Ok(0);
        }
    }
    Ok(0)
}

/// Where a read of the log starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    Start(u64),
    FromEnd(u64),
}

fn log_path(args: &LogsArgs, from: Position, follow: bool, plain: bool) -> String {
    let (origin, offset) = match from {
        Position::Start(o) => ("start", o),
        Position::FromEnd(o) => ("end", o),
    };
    let mut path = format!(
        "/v1/client/fs/logs/{}?plain={plain}&type={}&follow={follow}&origin={origin}&offset={offset}",
        escape(&args.alloc),
        if args.stderr { "stderr" } else { "stdout" },
    );
    if let Some(t) = &args.task {
        path.push_str(&format!("&task={}", escape(t)));
    }
    path
}

/// Writes and flushes; `false` once the reader of a pipe went away (`nctl logs ... | head`).
fn write_or_closed(out: &mut impl Write, data: &[u8]) -> anyhow::Result<bool> {
    match out.write_all(data).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if crate::console::is_closed_pipe(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The last `n` lines of the log and the position just after them, reading more from the end
/// until the lines are there or the whole log was read.
async fn read_tail(client: &Client, args: &LogsArgs, n: usize) -> anyhow::Result<(Vec<u8>, u64)> {
    let mut want = (n as u64).saturating_mul(BYTES_PER_LINE).max(4096);
    loop {
        let path = log_path(args, Position::FromEnd(want), false, false);
        let frames = client.stream(&path).await?.bytes().await?;
        let (text, end) = decode_frames(&frames)?;
        let whole = (text.len() as u64) < want;
        match last_lines_start(&text, n) {
            Some(at) => return Ok((text[at..].to_vec(), end)),
            None if whole => return Ok((text, end)),
            None => want = want.saturating_mul(4),
        }
    }
}

/// Nomad's log frames (`{"File", "Offset", "Data"}` per line, Data in base64, Offset the
/// position after it): the bytes, and the position after the last of them (0 when none).
fn decode_frames(body: &[u8]) -> anyhow::Result<(Vec<u8>, u64)> {
    let (mut text, mut end) = (Vec::new(), 0);
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let frame: serde_json::Value = serde_json::from_slice(line)
            .map_err(|e| anyhow::anyhow!("a log frame that is not JSON: {e}"))?;
        if let Some(data) = frame["Data"].as_str().filter(|d| !d.is_empty()) {
            text.extend(base64::engine::general_purpose::STANDARD.decode(data)?);
            end = frame["Offset"].as_u64().unwrap_or(end);
        }
    }
    Ok((text, end))
}

/// Where the last `n` lines of `text` begin (a last line without its newline counts), or
/// `None` when `text` holds fewer than `n` whole lines, so that more must be read unless it is
/// the whole log.
fn last_lines_start(text: &[u8], n: usize) -> Option<usize> {
    if n == 0 {
        return Some(text.len());
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    body.iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
        .map(|(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_lines_start_after_the_nth_newline_from_the_end() {
        let text = b"a\nbb\nccc\n";
        assert_eq!(last_lines_start(text, 1), Some(5));
        assert_eq!(last_lines_start(text, 2), Some(2));
        assert_eq!(
            last_lines_start(text, 3),
            None,
            "the first line may go on before"
        );
        assert_eq!(last_lines_start(text, 0), Some(text.len()));
        assert_eq!(
            last_lines_start(b"a\nb", 1),
            Some(2),
            "an unfinished last line"
        );
        assert_eq!(last_lines_start(b"", 1), None);
    }

    #[test]
    fn frames_decode_to_their_bytes_and_the_position_after_them() {
        let body = concat!(
            r#"{"File":"alloc/logs/t.stdout.0","Offset":6,"Data":"b25lCg=="}"#,
            "\n",
            r#"{"File":"alloc/logs/t.stdout.0","Offset":10,"Data":"dHdvCg=="}"#,
            "\n",
        );
        let (text, end) = decode_frames(body.as_bytes()).unwrap();
        assert_eq!(text, b"one\ntwo\n");
        assert_eq!(end, 10);
        assert_eq!(decode_frames(b"").unwrap(), (vec![], 0));
        assert!(decode_frames(b"not json\n").is_err());
    }
}
