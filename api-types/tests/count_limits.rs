//! The instance-count limits at their boundary, in every job-file format: a group's `count`
//! at the limit is accepted, one more is refused with the limit in the message and the
//! position of the `count` attribute; so is a job whose groups together ask for too many.

use nomos_api::limits::{MAX_GROUP_COUNT, MAX_JOB_COUNT};
use nomos_api::{parse_source, ParseOptions};

/// A job with one group per count, in one format; `count` of the first group sits at the
/// position given next to each format in the table below.
fn job(format: &str, counts: &[u64]) -> (&'static str, String) {
    match format {
        "hcl" => {
            let mut s = String::from("job \"j\" {\n  datacenters = [\"dc1\"]\n");
            for (i, c) in counts.iter().enumerate() {
                s += &format!(
                    "  group \"g{i}\" {{\n    count = {c}\n    task \"t\" {{\n      driver = \"raw_exec\"\n      config {{ command = \"/bin/true\" }}\n    }}\n  }}\n"
                );
            }
            ("job.hcl", s + "}\n")
        }
        "yaml" => {
            let mut s = String::from("apiVersion: nomos/v1\nkind: Job\nmetadata:\n  name: j\nspec:\n  datacenters: [dc1]\n  groups:\n");
            for (i, c) in counts.iter().enumerate() {
                s += &format!("    - name: g{i}\n      count: {c}\n      tasks:\n        - name: t\n          driver: raw_exec\n          config: {{command: /bin/true}}\n");
            }
            ("job.yaml", s)
        }
        "json" => {
            let groups: Vec<String> = counts
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{{\"name\": \"g{i}\",\n  \"count\": {c}, \"tasks\": [{{\"name\": \"t\", \"driver\": \"raw_exec\", \"config\": {{\"command\": \"/bin/true\"}}}}]}}"))
                .collect();
            let s = format!("{{\"apiVersion\": \"nomos/v1\", \"kind\": \"Job\", \"metadata\": {{\"name\": \"j\"}}, \"spec\": {{\"datacenters\": [\"dc1\"], \"groups\": [{}]}}}}\n", groups.join(", "));
            ("job.json", s)
        }
        _ => {
            let groups: Vec<String> = counts
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{{\"Name\": \"g{i}\",\n  \"Count\": {c}, \"Tasks\": [{{\"Name\": \"t\", \"Driver\": \"raw_exec\", \"Config\": {{\"command\": \"/bin/true\"}}}}]}}"))
                .collect();
            let s = format!("{{\"Job\": {{\"ID\": \"j\", \"Datacenters\": [\"dc1\"], \"TaskGroups\": [{}]}}}}\n", groups.join(", "));
            ("nomad.json", s)
        }
    }
}

fn errors(format: &str, counts: &[u64]) -> Vec<String> {
    let (name, source) = job(format, counts);
    match parse_source(name, &source, &ParseOptions::default()) {
        Ok(_) => Vec::new(),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_group_count_at_the_limit_is_accepted_and_one_more_is_refused_at_the_count() {
    let over = "count 10001 is more than the limit of 10000 instances per group";
    let cases = [
        ("hcl", "job.hcl:4:5: "),
        ("yaml", "job.yaml:9:7: "),
        ("json", "job.json:2:3: "),
        ("nomad", "nomad.json:2:3: "),
    ];
    for (format, at) in cases {
        assert_eq!(
            errors(format, &[MAX_GROUP_COUNT]),
            Vec::<String>::new(),
            "{format}"
        );
        let refused = errors(format, &[MAX_GROUP_COUNT + 1]);
        assert_eq!(refused.len(), 1, "{format}: {refused:#?}");
        assert!(refused[0].starts_with(at), "{format}: {}", refused[0]);
        assert!(refused[0].contains(over), "{format}: {}", refused[0]);
    }
}

#[test]
fn a_job_whose_groups_together_ask_for_more_than_the_job_limit_is_refused() {
    let groups = (MAX_JOB_COUNT / MAX_GROUP_COUNT) as usize;
    for format in ["hcl", "yaml", "json", "nomad"] {
        let mut counts = vec![MAX_GROUP_COUNT; groups];
        assert_eq!(errors(format, &counts), Vec::<String>::new(), "{format}");
        counts.push(1);
        let refused = errors(format, &counts);
        assert_eq!(refused.len(), 1, "{format}: {refused:#?}");
        assert!(
            refused[0]
                .contains("ask for 50001 instances together, more than the limit of 50000 per job"),
            "{format}: {}",
            refused[0]
        );
    }
}
