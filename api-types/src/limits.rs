//! Limits on how much one job may ask the control plane for. Each requested instance costs
//! server memory (about 550 bytes in the controllers' caches and plans) even when nothing can
//! be placed, so an unbounded `count` lets one request take the control plane down. Every
//! place a count enters (HCL, YAML/JSON manifests, Nomad's JSON, stored specs written by
//! GitOps) passes through [`crate::validate`], which checks it with [`check_count`].

/// The most instances one group may ask for. Kubernetes' tested limit is 150,000 pods in a
/// whole cluster and Nomad's largest published runs place 1,000,000 containers as many jobs,
/// so 10,000 per group is far above any single service's needs while keeping one group's
/// server-side cost near 5 MiB. The C1M benchmark (1,000 jobs × 1,000 allocations) fits.
pub const MAX_GROUP_COUNT: u64 = 10_000;

/// The most instances all groups of one job may ask for together.
pub const MAX_JOB_COUNT: u64 = 50_000;

/// Why `count` instances are too many for one group, if they are.
pub fn check_count(count: u64) -> Result<(), String> {
    if count > MAX_GROUP_COUNT {
        return Err(format!(
            "count {count} is more than the limit of {MAX_GROUP_COUNT} instances per group: split the work across groups or jobs"
        ));
    }
    Ok(())
}

/// Why a job whose groups ask for `total` instances together asks for too many, if it does.
pub fn check_job_total(total: u64) -> Result<(), String> {
    if total > MAX_JOB_COUNT {
        return Err(format!(
            "the job's groups ask for {total} instances together, more than the limit of {MAX_JOB_COUNT} per job: split the job"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_to_the_limit_are_accepted_and_one_more_is_refused() {
        assert_eq!(check_count(MAX_GROUP_COUNT), Ok(()));
        assert_eq!(
            check_count(MAX_GROUP_COUNT + 1).unwrap_err(),
            "count 10001 is more than the limit of 10000 instances per group: split the work across groups or jobs"
        );
        assert_eq!(check_job_total(MAX_JOB_COUNT), Ok(()));
        assert!(check_job_total(MAX_JOB_COUNT + 1)
            .unwrap_err()
            .contains("more than the limit of 50000 per job"));
    }
}
