//! Builders for nodes and jobs with sensible defaults, for tests, benchmarks and the simulator:
//! `node("n1").memory(4096).build()`, `job("web").group("g", 3).build()`. Only what a test
//! cares about is spelled out; the rest is a ready Linux node with a healthy `raw_exec`, or a
//! service job in `default` whose groups run one small `raw_exec` task.

use crate::{DriverInfo, Job, JobType, Node, NodeResources, Resources, Task, TaskGroup};

/// A ready node: `dc1`, pool `default`, 4000 MHz on 2 cores, 4096 MB, ports 20000-30000,
/// `kernel.name = linux`, `unique.hostname = <name>`, a healthy `raw_exec`.
pub fn node(name: &str) -> NodeBuilder {
    let mut n = Node {
        name: name.into(),
        id: format!("id-{name}"),
        datacenter: "dc1".into(),
        node_pool: "default".into(),
        address: "127.0.0.1".into(),
        resources: NodeResources {
            cpu_mhz: 4000,
            cores: 2,
            memory_mb: 4096,
            min_dynamic_port: 20000,
            max_dynamic_port: 30000,
            ..Default::default()
        },
        ..Default::default()
    };
    n.attributes.insert("kernel.name".into(), "linux".into());
    n.attributes.insert("unique.hostname".into(), name.into());
    let healthy = DriverInfo {
        detected: true,
        healthy: true,
        ..Default::default()
    };
    n.drivers.insert("raw_exec".into(), healthy);
    NodeBuilder(n)
}

/// See [`node`].
#[derive(Debug, Clone)]
pub struct NodeBuilder(Node);

impl NodeBuilder {
    pub fn cpu(mut self, mhz: u32) -> Self {
        self.0.resources.cpu_mhz = mhz;
        self
    }

    pub fn cores(mut self, cores: u32) -> Self {
        self.0.resources.cores = cores;
        self
    }

    pub fn memory(mut self, mb: u32) -> Self {
        self.0.resources.memory_mb = mb;
        self
    }

    pub fn address(mut self, address: &str) -> Self {
        self.0.address = address.into();
        self
    }

    pub fn datacenter(mut self, dc: &str) -> Self {
        self.0.datacenter = dc.into();
        self
    }

    /// The dynamic port range.
    pub fn ports(mut self, min: u16, max: u16) -> Self {
        self.0.resources.min_dynamic_port = min;
        self.0.resources.max_dynamic_port = max;
        self
    }

    pub fn attribute(mut self, key: &str, value: &str) -> Self {
        self.0.attributes.insert(key.into(), value.into());
        self
    }

    pub fn build(self) -> Node {
        self.0
    }
}

/// A service job in `default`, any datacenter, pool `default`, with no groups yet.
pub fn job(id: &str) -> JobBuilder {
    JobBuilder(Job {
        id: id.into(),
        name: id.into(),
        namespace: "default".into(),
        datacenters: vec!["*".into()],
        node_pool: "default".into(),
        job_type: JobType::Service,
        ..Default::default()
    })
}

/// See [`job`].
#[derive(Debug, Clone)]
pub struct JobBuilder(Job);

impl JobBuilder {
    /// Adds a group of `count` running one [`task`].
    pub fn group(self, name: &str, count: u32) -> Self {
        self.with_group(group(name, count))
    }

    pub fn with_group(mut self, g: TaskGroup) -> Self {
        self.0.groups.push(g);
        self
    }

    pub fn job_type(mut self, t: JobType) -> Self {
        self.0.job_type = t;
        self
    }

    pub fn build(self) -> Job {
        self.0
    }
}

/// A group of `count` running one [`task`] named `t`.
pub fn group(name: &str, count: u32) -> TaskGroup {
    TaskGroup {
        name: name.into(),
        count,
        tasks: vec![task("t", 100, 64)],
        ..Default::default()
    }
}

/// A `raw_exec` task asking for `cpu` MHz and `memory_mb`.
pub fn task(name: &str, cpu: u32, memory_mb: u32) -> Task {
    Task {
        name: name.into(),
        driver: "raw_exec".into(),
        resources: Resources {
            cpu,
            memory_mb,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_node_says_only_what_differs_from_the_defaults() {
        let n = node("n1").memory(512).cpu(1000).build();
        assert_eq!((n.resources.memory_mb, n.resources.cpu_mhz), (512, 1000));
        assert_eq!(n.resources.cores, 2);
        assert_eq!(n.attributes["unique.hostname"], "n1");
        assert!(n.drivers["raw_exec"].healthy);
    }

    #[test]
    fn a_built_job_has_its_groups_in_order() {
        let j = job("web").group("a", 3).group("b", 1).build();
        let groups: Vec<(&str, u32)> = j
            .groups
            .iter()
            .map(|g| (g.name.as_str(), g.count))
            .collect();
        assert_eq!(groups, [("a", 3), ("b", 1)]);
        assert_eq!(j.groups[0].tasks[0].driver, "raw_exec");
    }
}
