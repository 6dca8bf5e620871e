//! `nctl stop JOB [--purge]`: stop a job (its allocations stop, the spec stays with
//! `stop = true`), or remove its spec altogether.

use nomos_server::nomad::job_writes::RegisterResponse;

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
    let mut path = client.job_path(&args.job, "");
    if args.purge {
        path.push_str("&purge=true");
    }
    let r: RegisterResponse = client.delete(&path).await?;
    if args.purge {
        println!("job \"{}\" purged", r.job_id);
    } else if r.changes.is_empty() {
        println!("job \"{}\" was already stopped", r.job_id);
    } else {
        println!(
            "job \"{}\" stopped (modify index {})",
            r.job_id, r.job_modify_index
        );
    }
    Ok(0)
}
