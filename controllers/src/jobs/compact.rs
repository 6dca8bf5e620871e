//! The jobs controller's compact copy of an allocation. At a million allocations the copy it
//! keeps of each one is most of its memory, and most of an allocation's text repeats: its
//! namespace, job, group, node and spec hash are those of thousands of others. [`Interner`]
//! shares one copy of each such string; [`CompactAlloc`] holds an allocation with its strings
//! shared and its name left out when it is the one Nomad would give it
//! (`<job>.<group>[<index>]`). [`CompactAlloc::to_allocation`] gives back exactly the
//! allocation it was made from.

use std::sync::Arc;

use nomos_api::{AllocatedDevice, AllocatedPort, Allocation, DesiredStatus};

/// One shared copy of each string it was asked for. Strings nothing else holds any more are
/// dropped when the set has doubled since the last sweep, so the set stays within twice what
/// is in use.
#[derive(Debug, Default)]
pub struct Interner {
    strings: crate::FastSet<Arc<str>>,
    swept_at: usize,
    /// The empty string, the most common of all (no deployment, no predecessor).
    empty: Option<Arc<str>>,
}

impl Interner {
    /// The shared copy of `s`.
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if s.is_empty() {
            return self.empty.get_or_insert_with(|| Arc::from("")).clone();
        }
        if let Some(shared) = self.strings.get(s) {
            return shared.clone();
        }
        if self.strings.len() >= (2 * self.swept_at).max(1024) {
            self.strings.retain(|s| Arc::strong_count(s) > 1);
            self.swept_at = self.strings.len();
        }
        let shared: Arc<str> = Arc::from(s);
        self.strings.insert(shared.clone());
        shared
    }

    /// How many strings it holds.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}

/// An allocation's port, its label and address shared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CompactPort {
    label: Arc<str>,
    host_ip: Arc<str>,
    value: u16,
    to: u16,
}

/// An allocation as the jobs controller keeps it (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactAlloc {
    id: Arc<str>,
    namespace: Arc<str>,
    job_id: Arc<str>,
    task_group: Arc<str>,
    node: Arc<str>,
    desired_description: Arc<str>,
    deployment_id: Arc<str>,
    job_spec_hash: Arc<str>,
    previous_alloc: Arc<str>,
    /// Shared by the allocations one evaluation wrote.
    eval_id: Arc<str>,
    /// `None` when it is `<job>.<group>[<index>]`.
    name: Option<Box<str>>,
    ports: Box<[CompactPort]>,
    /// Device instances it holds (few allocations hold any).
    devices: Box<[AllocatedDevice]>,
    reschedule_times_ms: Box<[i64]>,
    job_version: u64,
    created_at_ms: i64,
    modified_at_ms: i64,
    index: u32,
    reschedule_attempts: u32,
    desired_status: DesiredStatus,
    canary: bool,
}

/// The name Nomad gives an allocation.
fn default_name(job: &str, group: &str, index: u32) -> String {
    format!("{job}.{group}[{index}]")
}

impl CompactAlloc {
    /// `a`, its repeated strings shared through `strings`; `id` is the allocation's id as the
    /// caller already holds it (so the indexes keyed by it share it too).
    pub fn new(a: Allocation, id: Arc<str>, strings: &mut Interner) -> Self {
        debug_assert_eq!(&*id, a.id);
        let name = (a.name != default_name(&a.job_id, &a.task_group, a.index))
            .then(|| a.name.into_boxed_str());
        let ports = a
            .ports
            .iter()
            .map(|p| CompactPort {
                label: strings.get(&p.label),
                host_ip: strings.get(&p.host_ip),
                value: p.value,
                to: p.to,
            })
            .collect();
        CompactAlloc {
            id,
            namespace: strings.get(&a.namespace),
            job_id: strings.get(&a.job_id),
            task_group: strings.get(&a.task_group),
            node: strings.get(&a.node),
            desired_description: strings.get(&a.desired_description),
            deployment_id: strings.get(&a.deployment_id),
            job_spec_hash: strings.get(&a.job_spec_hash),
            previous_alloc: strings.get(&a.previous_alloc),
            eval_id: strings.get(&a.eval_id),
            name,
            ports,
            devices: a.devices.into_boxed_slice(),
            reschedule_times_ms: a.reschedule_times_ms.into_boxed_slice(),
            job_version: a.job_version,
            created_at_ms: a.created_at_ms,
            modified_at_ms: a.modified_at_ms,
            index: a.index,
            reschedule_attempts: a.reschedule_attempts,
            desired_status: a.desired_status,
            canary: a.canary,
        }
    }

    /// The allocation it was made from.
    pub fn to_allocation(&self) -> Allocation {
        let name = match &self.name {
            Some(n) => n.to_string(),
            None => default_name(&self.job_id, &self.task_group, self.index),
        };
        Allocation {
            id: self.id.to_string(),
            namespace: self.namespace.to_string(),
            job_id: self.job_id.to_string(),
            job_version: self.job_version,
            task_group: self.task_group.to_string(),
            name,
            index: self.index,
            node: self.node.to_string(),
            desired_status: self.desired_status,
            desired_description: self.desired_description.to_string(),
            ports: self
                .ports
                .iter()
                .map(|p| AllocatedPort {
                    label: p.label.to_string(),
                    value: p.value,
                    to: p.to,
                    host_ip: p.host_ip.to_string(),
                })
                .collect(),
            devices: self.devices.to_vec(),
            deployment_id: self.deployment_id.to_string(),
            canary: self.canary,
            job_spec_hash: self.job_spec_hash.to_string(),
            previous_alloc: self.previous_alloc.to_string(),
            eval_id: self.eval_id.to_string(),
            reschedule_attempts: self.reschedule_attempts,
            reschedule_times_ms: self.reschedule_times_ms.to_vec(),
            created_at_ms: self.created_at_ms,
            modified_at_ms: self.modified_at_ms,
        }
    }

    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    pub fn task_group(&self) -> &str {
        &self.task_group
    }

    pub fn task_group_shared(&self) -> &Arc<str> {
        &self.task_group
    }

    pub fn node(&self) -> &Arc<str> {
        &self.node
    }

    pub fn job_version(&self) -> u64 {
        self.job_version
    }

    pub fn desired_status(&self) -> DesiredStatus {
        self.desired_status
    }

    pub fn deployment_id(&self) -> &str {
        &self.deployment_id
    }

    pub fn previous_alloc(&self) -> &str {
        &self.previous_alloc
    }

    /// The ids of the device instances it holds on its node.
    pub fn device_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.devices
            .iter()
            .flat_map(|d| d.device_ids.iter().map(String::as_str))
    }

    /// The ports it holds on its node.
    pub fn port_values(&self) -> impl Iterator<Item = u16> + '_ {
        self.ports.iter().map(|p| p.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn alloc_strategy() -> impl Strategy<Value = Allocation> {
        let text = "[a-z0-9.\\[\\]-]{0,12}";
        (
            (text, text, text, text, text, 0u32..5, any::<bool>()),
            (text, text, text, text, any::<u64>(), any::<u32>(), text),
            proptest::collection::vec((text, any::<u16>(), any::<u16>(), text), 0..3),
            proptest::collection::vec(any::<i64>(), 0..3),
            (any::<i64>(), any::<i64>(), any::<bool>(), any::<bool>()),
            proptest::collection::vec((text, text, proptest::collection::vec(text, 0..3)), 0..2),
        )
            .prop_map(|(a, b, ports, times, c, devices)| {
                let (id, namespace, job_id, task_group, node, index, named) = a;
                let (description, deployment, hash, previous, version, attempts, eval_id) = b;
                let (created, modified, canary, stopped) = c;
                let name = if named {
                    default_name(&job_id, &task_group, index)
                } else {
                    format!("custom-{index}")
                };
                Allocation {
                    id,
                    namespace,
                    job_id,
                    job_version: version,
                    task_group,
                    name,
                    index,
                    node,
                    desired_status: if stopped {
                        DesiredStatus::Stop
                    } else {
                        DesiredStatus::Run
                    },
                    desired_description: description,
                    ports: ports
                        .into_iter()
                        .map(|(label, value, to, host_ip)| AllocatedPort {
                            label,
                            value,
                            to,
                            host_ip,
                        })
                        .collect(),
                    devices: devices
                        .into_iter()
                        .map(|(task, name, device_ids)| AllocatedDevice {
                            task,
                            vendor: "nvidia".into(),
                            device_type: "gpu".into(),
                            name,
                            device_ids,
                        })
                        .collect(),
                    deployment_id: deployment,
                    canary,
                    job_spec_hash: hash,
                    previous_alloc: previous,
                    eval_id,
                    reschedule_attempts: attempts,
                    reschedule_times_ms: times,
                    created_at_ms: created,
                    modified_at_ms: modified,
                }
            })
    }

    proptest! {
        #[test]
        fn a_compact_allocation_gives_back_the_allocation_it_was_made_from(a in alloc_strategy()) {
            let mut strings = Interner::default();
            let id: Arc<str> = Arc::from(a.id.as_str());
            let c = CompactAlloc::new(a.clone(), id, &mut strings);
            prop_assert_eq!(c.to_allocation(), a);
        }
    }

    #[test]
    fn repeated_strings_are_held_once_and_dropped_when_nothing_uses_them() {
        let mut strings = Interner::default();
        let a = strings.get("default");
        let b = strings.get("default");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(strings.len(), 1);
        drop((a, b));
        // Filling past the sweep threshold drops what nobody holds.
        let held: Vec<Arc<str>> = (0..1024).map(|i| strings.get(&format!("s{i}"))).collect();
        let _one_more = strings.get("trigger");
        assert!(strings.len() <= held.len() + 1, "{}", strings.len());
        assert!(strings.get("default").len() == 7);
    }
}
