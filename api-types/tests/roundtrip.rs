//! Property: parse → canonical → parse gives an equal job, for generated jobs written as
//! canonical JSON and as YAML manifests.

use nomos_api::*;
use proptest::prelude::*;

mod strategies;

use strategies::job;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn canonical_json_round_trips(job in job()) {
        let first = serde_json::to_string(&job).unwrap();
        let parsed = parse_stored_spec("/nomos/jobs/default/x", first.replace("\"id\":\"", "\"idx\":\"").as_bytes());
        // A spec that contradicts its key is refused; one that agrees is accepted.
        prop_assert!(parsed.is_err());
        let key = format!("/nomos/jobs/default/{}", job.id);
        let mut job = job;
        job.namespace = "default".into();
        let once = parse_stored_spec(&key, serde_json::to_string(&job).unwrap().as_bytes())
            .map_err(|d| TestCaseError::fail(format!("{d:?}")))?;
        let canonical = to_canonical_json(&once.jobs[0]);
        let twice = parse_stored_spec(&key, canonical.as_bytes()).map_err(|d| TestCaseError::fail(format!("{d:?}")))?;
        prop_assert_eq!(&once.jobs, &twice.jobs);
        prop_assert_eq!(to_canonical_json(&twice.jobs[0]), canonical);
    }

    #[test]
    fn yaml_manifest_round_trips(job in job()) {
        let once = parse_source("job.json", &serde_json::to_string(&job).unwrap(), &ParseOptions::default())
            .map_err(|d| TestCaseError::fail(format!("{d:?}")))?;
        let yaml = to_manifest_yaml(&once.jobs[0]);
        let twice = parse_source("job.yaml", &yaml, &ParseOptions::default())
            .map_err(|d| TestCaseError::fail(format!("{d:?}\n{yaml}")))?;
        prop_assert_eq!(&once.jobs, &twice.jobs);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn hcl_output_reads_back_as_the_same_job(job in job()) {
        let once = parse_source("job.json", &serde_json::to_string(&job).unwrap(), &ParseOptions::default())
            .map_err(|d| TestCaseError::fail(format!("{d:?}")))?;
        let hcl = to_hcl(&once.jobs[0]);
        let twice = parse_source("job.hcl", &hcl, &ParseOptions::default())
            .map_err(|d| TestCaseError::fail(format!("{d:?}\n{hcl}")))?;
        prop_assert_eq!(&once.jobs, &twice.jobs);
    }
}
