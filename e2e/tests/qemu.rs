//! The qemu driver for real: a tiny Linux guest (Debian's kernel from scripts/install-deps, a
//! busybox initramfs built here) boots, serves HTTP on a guest port that `port_map` forwards
//! from the allocated host port, writes its serial console into the task log, and powers off
//! through the monitor when the job stops (`graceful_shutdown`). Also: a VM whose config is
//! wrong fails with a driver event that says what is wrong.
//!
//! Needs `qemu-system-x86_64`, `/bin/busybox` and the guest kernel (run scripts/install-deps);
//! KVM is used where the node has a usable one, else TCG (the test prints which).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::files::FileServer;
use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(180);

/// What the guest's kernel loads, in dependency order (those built into the kernel are absent).
const GUEST_MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
    "button",
    "evdev",
];

/// The guest's `/init`: brings up the NIC on QEMU's user network, serves a page on port 8080,
/// and powers off when the ACPI power button (`system_powerdown`) is pressed.
const GUEST_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules); do
  [ -f /mod/$m.ko ] && { insmod /mod/$m.ko || echo "guest: insmod $m failed"; }
done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
mkdir -p /www
echo "hello from the guest" > /www/index.html
httpd -p 8080 -h /www
echo "guest: serving on 8080"
for e in /sys/class/input/event*; do
  grep -q "Power Button" $e/device/name && button=/dev/input/${e##*/}
done
echo "guest: waiting for the power button on $button"
dd if=$button bs=24 count=1 of=/dev/null 2>/dev/null
echo "guest: power button pressed, powering off"
poweroff -f
"#;

fn guest_dir() -> PathBuf {
    std::env::var_os("NOMOS_QEMU_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/nomos/qemu-guest"))
}

/// Fails loudly when the machine lacks what the guest needs.
fn require_qemu_and_guest() {
    let qemu = Command::new("qemu-system-x86_64").arg("--version").output();
    assert!(
        qemu.is_ok_and(|o| o.status.success()),
        "this test needs qemu-system-x86_64 (Debian's qemu-system-x86): run scripts/install-deps"
    );
    require_busybox();
    let kernel = guest_dir().join("vmlinuz");
    assert!(
        kernel.is_file(),
        "this test needs the guest kernel at {} (run scripts/install-deps, or set \
         NOMOS_QEMU_GUEST_DIR)",
        kernel.display()
    );
}

/// Builds the guest's initramfs (a newc cpio made by busybox) under `dir`; returns its path.
fn build_initramfs(dir: &Path) -> PathBuf {
    let root = dir.join("guest-root");
    for d in ["bin", "mod", "dev", "proc", "sys"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    let mut modules = Vec::new();
    for m in GUEST_MODULES {
        let from = guest_dir().join("modules").join(format!("{m}.ko"));
        if from.is_file() {
            std::fs::copy(&from, root.join("mod").join(format!("{m}.ko"))).unwrap();
            modules.push(*m);
        }
    }
    std::fs::write(root.join("modules"), modules.join("\n")).unwrap();
    let init = root.join("init");
    std::fs::write(&init, GUEST_INIT).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).unwrap();
    let initrd = dir.join("initrd.cpio");
    let status = Command::new("/bin/busybox")
        .args([
            "sh",
            "-c",
            "cd \"$1\" && /bin/busybox find . | /bin/busybox cpio -o -H newc > \"$2\"",
        ])
        .arg("build-initramfs")
        .arg(&root)
        .arg(&initrd)
        .status()
        .unwrap();
    assert!(status.success(), "busybox cpio built the initramfs");
    initrd
}

/// The VM's job: its disk fetched by an artifact from `disk_url` into `local/`, its kernel
/// and initramfs passed by `args`.
fn vm_job(disk_url: &str, initrd: &Path) -> String {
    let kernel = guest_dir().join("vmlinuz");
    format!(
        r#"
job "vm" {{
  datacenters = ["*"]

  group "vm" {{
    network {{
      port "http" {{}}
    }}

    restart {{
      attempts = 0
      mode     = "fail"
    }}

    task "vm" {{
      driver       = "qemu"
      kill_timeout = "60s"

      artifact {{
        source = "{disk_url}"
      }}

      config {{
        image_path        = "local/disk.img"
        graceful_shutdown = true
        port_map {{
          http = 8080
        }}
        args = ["-kernel", "{kernel}", "-initrd", "{initrd}",
                "-append", "console=ttyS0 quiet panic=-1", "-no-reboot"]
      }}

      resources {{
        cpu    = 200
        memory = 256
      }}
    }}
  }}
}}
"#,
        kernel = kernel.display(),
        initrd = initrd.display(),
    )
}

fn alloc_id(a: &Value) -> String {
    a["ID"].as_str().unwrap_or_default().to_string()
}

/// The task's events as "Type: message" lines.
fn events(c: &Cluster, alloc: &str, task: &str) -> Vec<String> {
    let a = c.json(&["alloc", "status", alloc, "-o", "json"]);
    a["TaskStates"][task]["Events"]
        .as_array()
        .map(|es| {
            es.iter()
                .map(|e| {
                    let message = [&e["DisplayMessage"], &e["Message"], &e["DriverError"]]
                        .iter()
                        .filter_map(|m| m.as_str())
                        .find(|m| !m.is_empty())
                        .unwrap_or_default()
                        .to_string();
                    format!("{}: {message}", e["Type"].as_str().unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_vm_serves_on_its_forwarded_port_and_powers_off_through_the_monitor_on_stop() {
    require_qemu_and_guest();
    let c = Cluster::start("qemu-vm");
    let node = c.json(&["node", "status", &c.node, "-o", "json"]);
    let accel = if node["Attributes"]["driver.qemu.kvm"] == "1" {
        "kvm"
    } else {
        "tcg"
    };
    eprintln!("qemu test: the guest runs with accelerator {accel}");
    let images = c.dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(images.join("disk.img"), vec![0u8; 1 << 20]).unwrap();
    let server = FileServer::start(images);
    let initrd = build_initramfs(c.dir.path());
    let file = c.write_file("vm.hcl", &vm_job(&server.url("disk.img"), &initrd));
    c.ok(&["apply", "-f", &file]);

    let mut alloc = Value::Null;
    c.wait_for("the VM's allocation to run", WAIT, |c| {
        let running = c.running("vm");
        let seen = format!("{:?}", c.allocs("vm"));
        alloc = running.into_iter().next().unwrap_or(Value::Null);
        (!alloc.is_null(), seen)
    });
    let id = alloc_id(&alloc);
    let port = port_of(&alloc, "http");
    c.wait_for("the guest to answer on the forwarded port", WAIT, |c| {
        let body = http_get(port).unwrap_or_default();
        let log = c.nctl(&["logs", &id[..8]]);
        let seen = format!(
            "body {body:?}; log {}",
            String::from_utf8_lossy(&log.stdout)
        );
        (body.contains("hello from the guest"), seen)
    });
    let log = c.ok(&["logs", &id[..8]]);
    assert!(
        log.contains("guest: serving on 8080"),
        "the serial console is the task log: {log}"
    );

    c.ok(&["stop", "vm"]);
    c.wait_for("the VM to power off", WAIT, |c| {
        let a = c.json(&["alloc", "status", &id, "-o", "json"]);
        let state = &a["TaskStates"]["vm"];
        let gone = state["State"] == "dead" && pids_of_alloc(&id).is_empty();
        (gone, state.to_string())
    });
    let log = c.ok(&["logs", &id[..8]]);
    assert!(
        log.contains("guest: power button pressed, powering off"),
        "the stop pressed the power button through the monitor: {log}"
    );
    assert!(
        http_get(port).is_none(),
        "nothing answers on {port} after the stop"
    );
}

/// A VM job that fails at once (no restart, no reschedule); `JOB` and `CONFIG` are filled in.
const VM_TEMPLATE: &str = r#"
job "JOB" {
  datacenters = ["*"]
  group "vm" {
    network {
      port "http" {}
    }
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }
    task "vm" {
      driver = "qemu"
      config {
        CONFIG
      }
      resources {
        memory = 64
      }
    }
  }
}
"#;

#[test]
fn a_vm_with_a_wrong_config_fails_with_an_event_saying_what_is_wrong() {
    require_qemu_and_guest();
    let c = Cluster::start("qemu-bad");
    // (job, config lines, what the driver event says)
    let cases = [
        (
            "missing-image",
            r#"image_path = "local/missing.img""#,
            r#"image_path "local/missing.img": no such file"#,
        ),
        (
            "host-image",
            r#"image_path = "/etc/hostname""#,
            r#"image_path "/etc/hostname" resolves to /etc/hostname, outside the allocation's directory and the node's image_paths (none set)"#,
        ),
        (
            "unknown-key",
            "image_path = \"local/a.img\"\n        command = \"/bin/sh\"",
            r#"unknown config key "command"; the qemu driver takes image_path"#,
        ),
        (
            "unknown-label",
            "image_path = \"local/a.img\"\n        port_map {\n          db = 5432\n        }",
            r#"config.port_map names port "db", but the group's network has no such port (its ports: http)"#,
        ),
    ];
    for (job, config, _) in &cases {
        let text = VM_TEMPLATE.replace("JOB", job).replace("CONFIG", config);
        let file = c.write_file(&format!("{job}.hcl"), &text);
        c.ok(&["apply", "-f", &file]);
    }
    // A VM asking for KVM goes only where KVM guests run; elsewhere it is not placed.
    let node = c.json(&["node", "status", &c.node, "-o", "json"]);
    let kvm_here = node["Attributes"]["driver.qemu.kvm"] == "1";
    let kvm_job = VM_TEMPLATE.replace("JOB", "kvm").replace(
        "CONFIG",
        "image_path = \"local/a.img\"\n        accelerator = \"kvm\"",
    );
    c.ok(&["apply", "-f", &c.write_file("kvm.hcl", &kvm_job)]);
    c.wait_for("the KVM VM to be placed or refused", WAIT, |c| {
        let status = c.json(&["status", "kvm", "-o", "json"]);
        let failures = &status["job"]["NomosStatus"]["PlacementFailures"]["vm"];
        let why = failures.as_str().unwrap_or_default();
        let placed = !c.allocs("kvm").is_empty();
        let done = if kvm_here {
            placed
        } else {
            !placed && why.contains("${attr.driver.qemu.kvm} = 1")
        };
        (done, status.to_string())
    });
    eprintln!("qemu test: KVM usable on this node: {kvm_here}");

    for (job, _, want) in &cases {
        c.wait_for(&format!("{job} to fail with a driver event"), WAIT, |c| {
            let allocs = c.allocs(job);
            let seen: Vec<String> = allocs
                .iter()
                .flat_map(|a| events(c, &alloc_id(a), "vm"))
                .collect();
            let failed = seen
                .iter()
                .any(|e| e.starts_with("Driver Failure") && e.contains(want));
            (failed, format!("{seen:?}"))
        });
    }
}
