//! Constraints a task implies through its driver config, which placement adds to the job's own:
//! a qemu VM that asks for `accelerator = "kvm"` needs a node whose qemu driver can run KVM
//! guests (the agent publishes `driver.qemu.kvm = 1` there).

use crate::job::{Constraint, Task};

/// The node attribute a qemu driver that can run KVM guests publishes.
pub const QEMU_KVM_ATTRIBUTE: &str = "driver.qemu.kvm";

/// The constraints `task`'s driver config implies (none for most tasks).
pub fn driver_constraints(task: &Task) -> Vec<Constraint> {
    let asks_kvm = task.driver == "qemu"
        && task
            .config
            .get("accelerator")
            .and_then(|v| v.as_str())
            .is_some_and(|a| a == "kvm");
    if !asks_kvm {
        return Vec::new();
    }
    vec![Constraint {
        attribute: format!("${{attr.{QEMU_KVM_ATTRIBUTE}}}"),
        operator: "=".into(),
        value: "1".into(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_qemu_task_asking_for_kvm_needs_a_kvm_node() {
        let task = |driver: &str, config: serde_json::Value| Task {
            driver: driver.into(),
            config: serde_json::from_value(config).unwrap(),
            ..Default::default()
        };
        let kvm = serde_json::json!({"image_path": "a.img", "accelerator": "kvm"});
        // (task, constraints implied)
        let cases = [
            (task("qemu", kvm.clone()), 1),
            (task("qemu", serde_json::json!({"accelerator": "tcg"})), 0),
            (task("qemu", serde_json::json!({"image_path": "a.img"})), 0),
            (task("raw_exec", kvm), 0),
        ];
        for (t, n) in cases {
            let got = driver_constraints(&t);
            assert_eq!(got.len(), n, "{t:?}");
            if n == 1 {
                assert_eq!(got[0].attribute, "${attr.driver.qemu.kvm}");
                assert_eq!(
                    (got[0].operator.as_str(), got[0].value.as_str()),
                    ("=", "1")
                );
            }
        }
    }
}
