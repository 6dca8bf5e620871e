use serde_json::json;

use super::*;

fn config(value: serde_json::Value) -> IndexMap<String, Value> {
    serde_json::from_value(value).unwrap()
}

fn port(label: &str, value: u16, host_ip: &str) -> AllocatedPort {
    AllocatedPort {
        label: label.into(),
        value,
        to: 0,
        host_ip: host_ip.into(),
    }
}

#[test]
fn configs_parse_with_nomads_defaults_or_are_refused_naming_the_key() {
    // (config, Ok(expected) or Err(part of the message))
    let cases: Vec<(serde_json::Value, Result<QemuConfig, &str>)> = vec![
        (
            json!({"image_path": "local/linux.img"}),
            Ok(QemuConfig {
                image_path: "local/linux.img".into(),
                drive_interface: "ide".into(),
                ..Default::default()
            }),
        ),
        (
            json!({"image_path": "a.img", "drive_interface": "virtio", "accelerator": "tcg",
                   "graceful_shutdown": true, "guest_agent": "true",
                   "port_map": [{"http": 8080}, {"dns": "53"}], "args": ["-smp", 2]}),
            Ok(QemuConfig {
                image_path: "a.img".into(),
                drive_interface: "virtio".into(),
                accelerator: Some(Accelerator::Tcg),
                graceful_shutdown: true,
                guest_agent: true,
                port_map: [("dns".to_string(), 53), ("http".to_string(), 8080)].into(),
                args: vec!["-smp".into(), "2".into()],
            }),
        ),
        (json!({}), Err("config.image_path is required")),
        (
            json!({"image_path": ""}),
            Err("config.image_path is required"),
        ),
        (
            json!({"image_path": 3}),
            Err("config.image_path must be a string"),
        ),
        (
            json!({"image_path": "a.img", "command": "/bin/sh"}),
            Err("unknown config key \"command\"; the qemu driver takes image_path"),
        ),
        (
            json!({"image_path": "a.img", "drive_interface": "nvme"}),
            Err("config.drive_interface \"nvme\" is not one of ide, scsi"),
        ),
        (
            json!({"image_path": "a.img", "accelerator": "hvf"}),
            Err("config.accelerator \"hvf\" is not one of kvm, tcg"),
        ),
        (
            json!({"image_path": "a.img", "graceful_shutdown": "yes"}),
            Err("config.graceful_shutdown must be true or false"),
        ),
        (
            json!({"image_path": "a.img", "port_map": {"http": 0}}),
            Err("config.port_map.http must be a port number (1-65535), found 0"),
        ),
        (
            json!({"image_path": "a.img", "port_map": {"http": 70000}}),
            Err("config.port_map.http must be a port number"),
        ),
        (
            json!({"image_path": "a.img", "port_map": {"http": "eighty"}}),
            Err("config.port_map.http must be a port number"),
        ),
        (
            json!({"image_path": "a.img", "port_map": "http=80"}),
            Err("config.port_map must be a map"),
        ),
        (
            json!({"image_path": "a.img", "args": "-smp 2"}),
            Err("config.args must be a list of strings"),
        ),
        (
            json!({"image_path": "a.img", "args": [["-smp"]]}),
            Err("config.args must be strings"),
        ),
    ];
    for (raw, want) in cases {
        let got = QemuConfig::parse(&config(raw.clone()));
        match (got, want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{raw}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{raw}: {got}"),
            (got, want) => panic!("{raw}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn command_lines_follow_the_config_the_ports_and_the_node() {
    let base = QemuConfig {
        image_path: "local/linux.img".into(),
        drive_interface: "ide".into(),
        ..Default::default()
    };
    let ports = [port("http", 23456, "127.0.0.1"), port("ssh", 23457, "")];
    let launch = |kvm_unusable| Launch {
        name: "web.vm[0]",
        memory_mb: 256,
        ports: &ports,
        kvm_unusable,
    };
    let head = "-machine type=pc,accel=tcg -name web.vm[0] -m 256M \
                -drive file=local/linux.img,if=ide -nographic";
    let no_kvm = Some("no /dev/kvm");
    // (config, KVM unusable because, the command line)
    let cases: Vec<(QemuConfig, Option<&str>, String)> = vec![
        (base.clone(), no_kvm, head.to_string()),
        (
            base.clone(),
            None,
            "-machine type=pc,accel=kvm -name web.vm[0] -m 256M \
             -drive file=local/linux.img,if=ide -nographic -enable-kvm -cpu host"
                .into(),
        ),
        (
            QemuConfig {
                accelerator: Some(Accelerator::Tcg),
                ..base.clone()
            },
            None,
            head.to_string(),
        ),
        (
            QemuConfig {
                image_path: "odd,name.img".into(),
                drive_interface: "virtio".into(),
                ..base.clone()
            },
            no_kvm,
            head.replace("file=local/linux.img,if=ide", "file=odd,,name.img,if=virtio"),
        ),
        (
            QemuConfig {
                graceful_shutdown: true,
                guest_agent: true,
                ..base.clone()
            },
            no_kvm,
            format!(
                "{head} -monitor unix:qemu-monitor.sock,server,nowait \
                 -chardev socket,path=qa.sock,server=on,wait=off,id=qga0 \
                 -device virtio-serial -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0"
            ),
        ),
        (
            QemuConfig {
                port_map: [("http".to_string(), 8080), ("ssh".to_string(), 22)].into(),
                args: vec!["-kernel".into(), "vmlinuz".into()],
                ..base.clone()
            },
            no_kvm,
            format!(
                "{head} -netdev user,id=user.0,\
                 hostfwd=tcp:127.0.0.1:23456-:8080,hostfwd=udp:127.0.0.1:23456-:8080,\
                 hostfwd=tcp::23457-:22,hostfwd=udp::23457-:22 \
                 -device virtio-net,netdev=user.0 -kernel vmlinuz"
            ),
        ),
    ];
    for (cfg, kvm_unusable, want) in cases {
        let got = qemu_args(&cfg, &launch(kvm_unusable)).unwrap();
        assert_eq!(got.join(" "), want, "{cfg:?}");
    }
}

#[test]
fn a_vm_asking_what_the_node_or_its_group_lacks_is_refused() {
    let ports = [port("http", 23456, "")];
    let launch = Launch {
        name: "vm",
        memory_mb: 128,
        ports: &ports,
        kvm_unusable: Some("/dev/kvm cannot be opened: No such file or directory"),
    };
    let kvm = QemuConfig {
        image_path: "a.img".into(),
        accelerator: Some(Accelerator::Kvm),
        ..Default::default()
    };
    let err = qemu_args(&kvm, &launch).unwrap_err();
    assert_eq!(
        err,
        "config.accelerator is \"kvm\" but this node cannot run KVM guests: \
         /dev/kvm cannot be opened: No such file or directory"
    );
    let unknown_label = QemuConfig {
        image_path: "a.img".into(),
        port_map: [("db".to_string(), 5432)].into(),
        ..Default::default()
    };
    let err = qemu_args(&unknown_label, &launch).unwrap_err();
    assert_eq!(
        err,
        "config.port_map names port \"db\", but the group's network has no such port \
         (its ports: http)"
    );
    let no_ports = Launch {
        ports: &[],
        ..launch
    };
    let err = qemu_args(&unknown_label, &no_ports).unwrap_err();
    assert!(err.ends_with("(its ports: none)"), "{err}");
}

#[test]
fn versions_are_read_from_the_first_line() {
    let cases = [
        (
            "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022",
            Some("7.2.22"),
        ),
        ("QEMU emulator version 10.0.2\n", Some("10.0.2")),
        ("QEMU emulator version \n", None),
        ("qemu: unknown option --version\n", None),
        ("", None),
    ];
    for (text, want) in cases {
        assert_eq!(parse_version(text).as_deref(), want, "{text:?}");
    }
}

#[test]
fn kvm_is_usable_only_with_the_device_and_hardware_virtualisation() {
    let flags_vmx = "flags : fpu vme de pse vmx sse2";
    let flags_svm = "flags : fpu svm";
    let flags_none = "flags : fpu vme de pse hypervisor";
    // (API version or why /dev/kvm failed, CPU flags, None if usable else part of the reason)
    let cases: Vec<(Result<i32, String>, &str, Option<&str>)> = vec![
        (Ok(12), flags_vmx, None),
        (Ok(12), flags_svm, None),
        (Ok(12), flags_none, Some("no vmx or svm flag")),
        (Ok(11), flags_vmx, Some("KVM API version 11, not 12")),
        (
            Err("/dev/kvm cannot be opened: Permission denied".into()),
            flags_vmx,
            Some("Permission denied"),
        ),
    ];
    for (api, flags, want) in cases {
        let got = kvm_verdict(api.clone(), flags);
        match (&got, want) {
            (Ok(()), None) => {}
            (Err(got), Some(want)) => assert!(got.contains(want), "{api:?} {flags}: {got}"),
            _ => panic!("{api:?} {flags}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn images_come_from_the_allocation_or_the_nodes_image_paths_and_nowhere_else() {
    let host = tempfile::tempdir().unwrap();
    let alloc = host.path().join("alloc1");
    let task = alloc.join("vm");
    let shared = alloc.join("alloc/data");
    let images = host.path().join("images");
    let elsewhere = host.path().join("etc");
    for d in [&task, &shared, &images, &elsewhere] {
        std::fs::create_dir_all(d).unwrap();
    }
    for f in [
        task.join("disk.img"),
        shared.join("shared.img"),
        images.join("base.img"),
        elsewhere.join("secret"),
    ] {
        std::fs::write(f, b"x").unwrap();
    }
    std::os::unix::fs::symlink(elsewhere.join("secret"), task.join("link.img")).unwrap();
    let open = QemuPolicy::default();
    let with_images = QemuPolicy {
        image_paths: vec![images.clone()],
        args_allowlist: None,
    };
    let secret = elsewhere.join("secret").display().to_string();
    let base = images.join("base.img").display().to_string();
    let cases: &[(&QemuPolicy, &str, Result<PathBuf, &str>)] = &[
        (&open, "disk.img", Ok(task.join("disk.img"))),
        (
            &open,
            "../alloc/data/shared.img",
            Ok(shared.join("shared.img")),
        ),
        (
            &open,
            "../../etc/secret",
            Err("outside the allocation's directory"),
        ),
        (&open, &secret, Err("outside the allocation's directory")),
        (&open, "link.img", Err("outside the allocation's directory")),
        (&open, &base, Err("image_paths (none set)")),
        (&with_images, &base, Ok(images.join("base.img"))),
        (
            &with_images,
            &secret,
            Err("outside the allocation's directory"),
        ),
        (&open, "missing.img", Err("no such file")),
        (&open, ".", Err("is not a file")),
    ];
    for (policy, path, want) in cases {
        let got = policy.allowed_image(&task, path);
        match (want, &got) {
            (Ok(p), Ok(g)) => assert_eq!(&p.canonicalize().unwrap(), g, "{path}"),
            (Err(needle), Err(e)) => assert!(e.contains(needle), "{path}: {e}"),
            _ => panic!("{path}: wanted {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn args_pass_only_flags_on_the_allowlist_when_the_node_sets_one() {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let open = QemuPolicy::default();
    let strict = QemuPolicy {
        image_paths: vec![],
        args_allowlist: Some(args(&["-smp", "-drive"])),
    };
    let cases: &[(&QemuPolicy, &[&str], Option<&str>)] = &[
        (&open, &["-device", "usb-host,hostbus=1"], None),
        (&strict, &["-smp", "2"], None),
        (&strict, &["-drive=file=x.img"], None),
        (
            &strict,
            &["-smp", "2", "-device", "usb-host"],
            Some("\"-device\""),
        ),
        (
            &strict,
            &["-usb"],
            Some("not in this node's args_allowlist (-smp, -drive)"),
        ),
        (&strict, &[], None),
    ];
    for (policy, a, want) in cases {
        match (policy.check_args(&args(a)), want) {
            (Ok(()), None) => {}
            (Err(e), Some(needle)) => assert!(e.contains(needle), "{a:?}: {e}"),
            (got, _) => panic!("{a:?}: wanted {want:?}, got {got:?}"),
        }
    }
}
