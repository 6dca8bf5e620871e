//! `nctl stop JOB [--purge]`: stop a job (its allocations stop, the spec stays with
//! `stop = true`), or remove its spec altogether.

use nomos_server::views::{ApplyResult, StopRequest};

use super::client::Client;
use super::Global;

#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Job ID (or unique prefix).
    pub job: String,
    /// Remove the job's spec from the store.
    #[arg(long)]
    pub purge: bool,
}

pub async fn run(g: &Global, args: StopArgs) -> anyhow::Result<i32> {
    let client = Client::new(g);
    let r: ApplyResult = client
        .post(
            &client.job_path(&args.job, "/stop"),
            &StopRequest { purge: args.purge },
        )
        .await?;
    if args.purge {
        println!("job \"{}\" purged", r.id);
    } else if r.changes.is_empty() {
        println!("job \"{}\" was already stopped", r.id);
    } else {
        println!("job \"{}\" stopped (modify index {})", r.id, r.modify_index);
    }
    Ok(0)
}
