//! The job the bench submits: a raw_exec service running `/bin/sleep 3600` in `count` copies,
//! as small as validation allows (1 MHz, 10 MB) so a thousand fit on a laptop, marked with the
//! bench's pid so its processes can be found.

use crate::procs::{MARKER_ENV, SLEEP, SLEEP_ARG};

/// Most allocations one group may ask for: the API's own limit.
pub const MAX_COUNT: usize = nomos_api::limits::MAX_GROUP_COUNT as usize;

/// The job file (HCL, as `nctl apply` sends it).
pub fn hcl(id: &str, count: usize, marker: &str) -> String {
    format!(
        r#"job "{id}" {{
  datacenters = ["*"]
  type        = "service"

  group "g" {{
    count = {count}

    task "sleep" {{
      driver = "raw_exec"

      config {{
        command = "{SLEEP}"
        args    = ["{SLEEP_ARG}"]
      }}

      env {{
        {MARKER_ENV} = "{marker}"
      }}

      resources {{
        cpu    = 1
        memory = 10
      }}
    }}
  }}
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_names_its_count_command_and_marker() {
        let text = hcl("lat-1", 50, "123");
        for want in [
            r#"job "lat-1" {"#,
            "count = 50",
            r#"driver = "raw_exec""#,
            r#"command = "/bin/sleep""#,
            r#"args    = ["3600"]"#,
            r#"NOMOS_LATENCY_OWNER = "123""#,
            "memory = 10",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
    }

    #[test]
    fn the_job_parses_and_validates() {
        let parsed = nomos_api::parse_source("lat.hcl", &hcl("lat-1", 3, "1"), &Default::default())
            .unwrap_or_else(|d| panic!("{d:?}"));
        let job = &parsed.jobs[0];
        assert_eq!(job.id, "lat-1");
        assert_eq!(job.groups[0].count, 3);
        assert_eq!(job.groups[0].tasks[0].resources.memory_mb, 10);
        assert_eq!(nomos_api::validate::validate(job), vec![]);
    }
}
