//! Devices: which of a node's device groups a task's `device` block can use, and which free
//! instances an allocation gets. A request names a type (`gpu`), a vendor and type
//! (`nvidia/gpu`) or a model too (`nvidia/gpu/Tesla T4`); its constraints and affinities read
//! `${device.vendor}`, `${device.type}`, `${device.model}`, `${device.ids}` and
//! `${device.attr.<name>}` (units such as `4 GiB` convert). Each ask is served from one group,
//! and an instance is given to one live allocation at a time. Pure: the node's groups and the
//! instances already held in, an [`Assignment`] or a [`DeviceRefusal`] out.

use nomos_api::{AllocatedDevice, Constraint, Device, NodeDeviceGroup, TaskGroup};

use super::feasible::CompiledConstraint;

/// One `device` block of one task, compiled for matching.
#[derive(Debug, Clone)]
pub struct DeviceAsk {
    task: String,
    vendor: Option<String>,
    device_type: String,
    model: Option<String>,
    count: usize,
    constraints: Vec<CompiledConstraint>,
    affinities: Vec<(CompiledConstraint, i32)>,
}

impl DeviceAsk {
    pub fn new(task: &str, device: &Device) -> Self {
        let parts: Vec<&str> = device.name.splitn(3, '/').map(str::trim).collect();
        let (vendor, device_type, model) = match parts.as_slice() {
            [t] => (None, *t, None),
            [v, t] => (Some(*v), *t, None),
            [v, t, m] => (Some(*v), *t, Some(*m)),
            _ => (None, "", None),
        };
        let affinities = device
            .affinities
            .iter()
            .map(|a| {
                let c = Constraint {
                    attribute: a.attribute.clone(),
                    operator: a.operator.clone(),
                    value: a.value.clone(),
                };
                (CompiledConstraint::compile(&c), a.weight)
            })
            .collect();
        DeviceAsk {
            task: task.to_string(),
            vendor: vendor.map(str::to_string),
            device_type: device_type.to_string(),
            model: model.map(str::to_string),
            count: device.count.max(1) as usize,
            constraints: device
                .constraints
                .iter()
                .map(CompiledConstraint::compile)
                .collect(),
            affinities,
        }
    }

    /// Every `device` block of the group's tasks.
    pub fn of_group(group: &TaskGroup) -> Vec<DeviceAsk> {
        group
            .tasks
            .iter()
            .flat_map(|t| {
                t.resources
                    .devices
                    .iter()
                    .map(|d| DeviceAsk::new(&t.name, d))
            })
            .collect()
    }

    pub fn has_affinities(&self) -> bool {
        !self.affinities.is_empty()
    }

    /// Whether `group` is the kind of device asked for and meets the block's constraints.
    fn matches(&self, group: &NodeDeviceGroup) -> bool {
        let named = group.device_type == self.device_type
            && self.vendor.as_ref().is_none_or(|v| *v == group.vendor)
            && self.model.as_ref().is_none_or(|m| *m == group.name);
        named
            && self
                .constraints
                .iter()
                .all(|c| c.matches_with(|t| resolve(t, group)))
    }

    /// The block's affinities over `group`: matched weights over the sum of their sizes,
    /// `[-1, 1]`; `None` when it has none.
    fn affinity(&self, group: &NodeDeviceGroup) -> Option<f64> {
        let total: i32 = self.affinities.iter().map(|(_, w)| w.abs()).sum();
        if total == 0 {
            return None;
        }
        let matched: i32 = self
            .affinities
            .iter()
            .filter(|(c, _)| c.matches_with(|t| resolve(t, group)))
            .map(|(_, w)| *w)
            .sum();
        Some(f64::from(matched) / f64::from(total))
    }
}

/// Resolves a `device` block's `${...}` references against a device group; literal text is
/// returned as is, an unknown reference is unset.
fn resolve(target: &str, group: &NodeDeviceGroup) -> Option<String> {
    let t = target.trim();
    let Some(inner) = t.strip_prefix("${").and_then(|s| s.strip_suffix('}')) else {
        return Some(t.to_string());
    };
    let inner = inner.trim();
    if let Some(attr) = inner.strip_prefix("device.attr.") {
        return group.attributes.get(attr).cloned();
    }
    match inner {
        "device.vendor" => Some(group.vendor.clone()),
        "device.type" => Some(group.device_type.clone()),
        "device.model" => Some(group.name.clone()),
        "device.ids" => Some(
            group
                .instances
                .iter()
                .map(|i| i.id.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    }
}

/// The instances an allocation would hold on a node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Assignment {
    pub devices: Vec<AllocatedDevice>,
    /// The mean affinity of the groups chosen, over the asks that have affinities; `None`
    /// when none has.
    pub affinity: Option<f64>,
}

impl Assignment {
    /// The ids of every instance assigned.
    pub fn instance_ids(&self) -> impl Iterator<Item = &str> {
        self.devices
            .iter()
            .flat_map(|d| d.device_ids.iter().map(String::as_str))
    }
}

/// Why a node cannot serve the asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRefusal {
    /// No group of the node matches some ask with enough healthy instances (Nomad's
    /// `missing devices`).
    Missing,
    /// Groups match, but too few of their instances are free.
    Exhausted,
}

/// Chooses instances for every ask from the node's `groups`, none of them in `held` (held by
/// live allocations) and none twice. Each ask takes the matching group with enough free
/// instances that its affinities like best (the first such in the node's order on a tie), and
/// within it the free instances in the node's order.
pub fn assign(
    asks: &[DeviceAsk],
    groups: &[NodeDeviceGroup],
    held: &[Box<str>],
) -> Result<Assignment, DeviceRefusal> {
    let mut taken: Vec<&str> = Vec::new();
    let mut out = Assignment::default();
    let mut affinity_sum = 0.0;
    let mut with_affinity = 0u32;
    for ask in asks {
        let mut any_match = false;
        let mut best: Option<(f64, &NodeDeviceGroup, Vec<&str>)> = None;
        for group in groups.iter().filter(|g| ask.matches(g)) {
            let healthy = group.instances.iter().filter(|i| i.healthy);
            if healthy.clone().count() < ask.count {
                continue;
            }
            any_match = true;
            let free: Vec<&str> = healthy
                .map(|i| i.id.as_str())
                .filter(|id| !held.iter().any(|h| &**h == *id) && !taken.contains(id))
                .take(ask.count)
                .collect();
            if free.len() < ask.count {
                continue;
            }
            let score = ask.affinity(group).unwrap_or(0.0);
            if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
                best = Some((score, group, free));
            }
        }
        let Some((_, group, free)) = best else {
            return Err(if any_match {
                DeviceRefusal::Exhausted
            } else {
                DeviceRefusal::Missing
            });
        };
        if let Some(a) = ask.affinity(group) {
            affinity_sum += a;
            with_affinity += 1;
        }
        taken.extend(free.iter().copied());
        out.devices.push(AllocatedDevice {
            task: ask.task.clone(),
            vendor: group.vendor.clone(),
            device_type: group.device_type.clone(),
            name: group.name.clone(),
            device_ids: free.into_iter().map(str::to_string).collect(),
        });
    }
    out.affinity = (with_affinity > 0).then(|| affinity_sum / f64::from(with_affinity));
    Ok(out)
}

/// The ids of the instances in `devices`, as a node's usage records them.
pub fn instance_ids(devices: &[AllocatedDevice]) -> Box<[Box<str>]> {
    devices
        .iter()
        .flat_map(|d| d.device_ids.iter().map(|id| id.as_str().into()))
        .collect()
}
