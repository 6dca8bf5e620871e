//! GPUs: an agent whose PATH has a fake `nvidia-smi` reporting two GPUs registers them; a job
//! asking one GPU per allocation gets two placed, each task seeing its own GPU in
//! `NVIDIA_VISIBLE_DEVICES`, and the third waits with the reason in the job status until a GPU
//! is freed; a device constraint no GPU meets places nothing and says why. (No real GPU: the
//! tool is a script, and raw_exec tasks only read the variable.)

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

const GPU_A: &str = "GPU-0e2e0000-0000-4000-8000-00000000000a";
const GPU_B: &str = "GPU-0e2e0000-0000-4000-8000-00000000000b";

/// A cluster whose agent finds the fake `nvidia-smi` first on its PATH.
fn cluster_with_two_gpus(name: &str) -> Cluster {
    Cluster::start_prepared(name, Mode::Dev, |c| {
        let bin = c.dir.path().join("fake-bin");
        std::fs::create_dir_all(&bin).unwrap();
        let tool = bin.join("nvidia-smi");
        let script = format!(
            "#!/bin/sh\n\
             case \"$*\" in *--query-gpu=*) ;; *) echo \"unexpected: $*\" >&2; exit 2;; esac\n\
             echo '0, {GPU_A}, Nomos Fake T4, 15360, 550.54.15, 00000000:3B:00.0'\n\
             echo '1, {GPU_B}, Nomos Fake T4, 15360, 550.54.15, 00000000:86:00.0'\n"
        );
        std::fs::write(&tool, script).unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::var("PATH").unwrap_or_default();
        c.process_env
            .push(("PATH".into(), format!("{}:{path}", bin.display())));
        vec![]
    })
}

/// A batch job of `count` allocations, one GPU each (with `device_extra` in the device block);
/// each task prints its GPUs, then waits for the file `<release>/<alloc index>`.
fn gpu_job(id: &str, count: u32, release: &Path, device_extra: &str) -> String {
    format!(
        r#"
job "{id}" {{
  datacenters = ["*"]
  type = "batch"

  group "train" {{
    count = {count}

    restart {{
      attempts = 0
      mode     = "fail"
    }}

    task "cuda" {{
      driver = "raw_exec"
      config {{
        command = "/bin/sh"
        args    = ["-c", "echo gpu=$NVIDIA_VISIBLE_DEVICES; until [ -e {release}/$NOMAD_ALLOC_INDEX ]; do sleep 0.2; done"]
      }}
      resources {{
        cpu    = 20
        memory = 16
        device "nvidia/gpu" {{
          count = 1
          {device_extra}
        }}
      }}
    }}
  }}
}}
"#,
        release = release.display()
    )
}

/// What `check` found once it found something, waiting as [`Cluster::wait_for`] does.
fn wait_until<T: std::fmt::Debug>(
    c: &Cluster,
    what: &str,
    mut check: impl FnMut(&Cluster) -> Option<T>,
    shown: impl Fn(&Cluster) -> String,
) -> T {
    let mut found = None;
    c.wait_for(what, Duration::from_secs(60), |c| {
        found = check(c);
        (found.is_some(), shown(c))
    });
    found.unwrap()
}

/// The GPUs a running allocation's task printed, once it has.
fn printed_gpu(c: &Cluster, alloc: &Value) -> String {
    let id = alloc["ID"].as_str().unwrap().to_string();
    let logs =
        |c: &Cluster| String::from_utf8_lossy(&c.nctl(&["logs", &id[..8]]).stdout).to_string();
    let line = wait_until(
        c,
        "the task to print its GPU",
        |c| Some(logs(c)).filter(|t| t.starts_with("gpu=") && t.ends_with('\n')),
        logs,
    );
    line.trim().trim_start_matches("gpu=").to_string()
}

fn index_of(alloc: &Value) -> String {
    let name = alloc["Name"].as_str().unwrap();
    name.rsplit('[')
        .next()
        .unwrap()
        .trim_end_matches(']')
        .to_string()
}

#[test]
fn two_gpus_serve_two_allocations_and_the_third_gets_the_one_freed() {
    let c = cluster_with_two_gpus("gpus");

    // The node registered both GPUs, in Nomad's shape.
    let port: u16 = c.http_addr.rsplit(':').next().unwrap().parse().unwrap();
    let nodes: Value = serde_json::from_str(&http_get_path(port, "/v1/nodes").unwrap()).unwrap();
    let node_id = nodes[0]["ID"].as_str().unwrap();
    let node: Value =
        serde_json::from_str(&http_get_path(port, &format!("/v1/node/{node_id}")).unwrap())
            .unwrap();
    let devices = &node["NodeResources"]["Devices"];
    assert_eq!(devices[0]["Vendor"], "nvidia", "{node}");
    assert_eq!(devices[0]["Type"], "gpu");
    assert_eq!(devices[0]["Name"], "Nomos Fake T4");
    assert_eq!(devices[0]["Instances"][0]["ID"], GPU_A);
    assert_eq!(devices[0]["Instances"][1]["ID"], GPU_B);
    assert_eq!(devices[0]["Attributes"]["memory"]["IntVal"], 15360);
    assert_eq!(devices[0]["Attributes"]["memory"]["Unit"], "MiB");
    assert_eq!(node["Attributes"]["device.nvidia.gpu.count"], "2");

    let release = c.dir.path().join("release");
    std::fs::create_dir_all(&release).unwrap();
    let file = c.write_file("gpus.hcl", &gpu_job("gpus", 3, &release, ""));
    c.ok(&["apply", "-f", &file]);

    let running = wait_until(
        &c,
        "two allocations to run",
        |c| Some(c.running("gpus")).filter(|r| r.len() == 2),
        |c| c.ok(&["status", "gpus"]),
    );
    let first = printed_gpu(&c, &running[0]);
    let second = printed_gpu(&c, &running[1]);
    let mut seen = [first.clone(), second.clone()];
    seen.sort();
    assert_eq!(seen, [GPU_A, GPU_B], "each task sees its own GPU");

    // The third is not placed, and the status says why.
    let status = wait_until(
        &c,
        "the placement failure",
        |c| Some(c.ok(&["status", "gpus"])).filter(|s| s.contains("exhausted devices")),
        |c| c.ok(&["status", "gpus"]),
    );
    assert!(status.contains("Placement Failure"), "{status}");
    assert_eq!(c.allocs("gpus").len(), 2, "{status}");

    // The allocation API shows which GPU each allocation holds.
    let id = running[0]["ID"].as_str().unwrap();
    let alloc: Value =
        serde_json::from_str(&http_get_path(port, &format!("/v1/allocation/{id}")).unwrap())
            .unwrap();
    let held = &alloc["AllocatedResources"]["Tasks"]["cuda"]["Devices"][0];
    assert_eq!(held["DeviceIDs"], serde_json::json!([first]), "{alloc}");
    assert_eq!(held["Vendor"], "nvidia");

    // The first finishes: the third is placed on the GPU it freed.
    std::fs::write(release.join(index_of(&running[0])), "").unwrap();
    let third = wait_until(
        &c,
        "the third allocation to run",
        |c| {
            c.running("gpus")
                .into_iter()
                .find(|a| a["ID"] != running[0]["ID"] && a["ID"] != running[1]["ID"])
        },
        |c| c.ok(&["status", "gpus"]),
    );
    assert_eq!(printed_gpu(&c, &third), first, "the freed GPU");

    for i in 0..3 {
        std::fs::write(release.join(i.to_string()), "").unwrap();
    }
}

#[test]
fn a_device_constraint_no_gpu_meets_places_nothing_and_says_why() {
    let c = cluster_with_two_gpus("gpumodel");
    let release = c.dir.path().join("release");
    let not_fake = r#"constraint {
            attribute = "${device.model}"
            operator  = "!="
            value     = "Nomos Fake T4"
          }"#;
    let file = c.write_file("picky.hcl", &gpu_job("picky", 1, &release, not_fake));
    c.ok(&["apply", "-f", &file]);
    let status = wait_until(
        &c,
        "the placement failure",
        |c| Some(c.ok(&["status", "picky"])).filter(|s| s.contains("Placement Failure")),
        |c| c.ok(&["status", "picky"]),
    );
    assert!(
        status.contains("1 node excluded by missing devices"),
        "{status}"
    );
    assert!(c.allocs("picky").is_empty(), "{status}");

    // More memory than the GPUs have, in another unit, is refused alike.
    let big = r#"constraint {
            attribute = "${device.attr.memory}"
            operator  = ">="
            value     = "16 GiB"
          }"#;
    let file = c.write_file("big.hcl", &gpu_job("big", 1, &release, big));
    c.ok(&["apply", "-f", &file]);
    let status = wait_until(
        &c,
        "the placement failure",
        |c| Some(c.ok(&["status", "big"])).filter(|s| s.contains("missing devices")),
        |c| c.ok(&["status", "big"]),
    );
    assert!(c.allocs("big").is_empty(), "{status}");
}
