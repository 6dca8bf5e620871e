//! Quota arithmetic (pure): whether one more allocation of a namespace fits its quota, given
//! what the namespace's non-terminal allocations hold. The snapshot keeps each namespace's
//! usage in step with its allocations ([`super::ClusterSnapshot::namespace_usage`]) and the
//! limits the controller read ([`super::ClusterSnapshot::set_namespace_quota`]); the engine
//! asks [`admit`] before it commits a placement to a node.
//!
//! Limits follow Nomad: 0 is unlimited, a negative limit allows none of the resource.

use std::collections::BTreeMap;

use nomos_api::namespace::{Namespace, QuotaSpec, RegionLimit};

/// The quota attached to a namespace, as the scheduler applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceQuota {
    /// The quota specification's name (for the refusal's text).
    pub name: String,
    pub limit: RegionLimit,
}

/// What a namespace's non-terminal allocations hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaUsage {
    pub cpu: u64,
    pub memory_mb: u64,
    pub allocs: u64,
}

impl QuotaUsage {
    pub fn add(&mut self, cpu: u32, memory_mb: u32) {
        self.cpu = self.cpu.saturating_add(cpu.into());
        self.memory_mb = self.memory_mb.saturating_add(memory_mb.into());
        self.allocs = self.allocs.saturating_add(1);
    }

    pub fn sub(&mut self, cpu: u32, memory_mb: u32) {
        self.cpu = self.cpu.saturating_sub(cpu.into());
        self.memory_mb = self.memory_mb.saturating_sub(memory_mb.into());
        self.allocs = self.allocs.saturating_sub(1);
    }

    pub fn is_zero(&self) -> bool {
        *self == QuotaUsage::default()
    }
}

/// The quota each namespace is held to: namespaces whose `Quota` names a specification that
/// exists and has a `global` limit. (A namespace naming a missing specification is unlimited;
/// the API refuses to write one.)
pub fn namespace_quotas(
    namespaces: &BTreeMap<String, Namespace>,
    quotas: &BTreeMap<String, QuotaSpec>,
) -> Vec<(String, NamespaceQuota)> {
    namespaces
        .iter()
        .filter(|(_, ns)| !ns.quota.is_empty())
        .filter_map(|(name, ns)| {
            let spec = quotas.get(&ns.quota)?;
            let limit = *spec.global_limit()?;
            Some((
                name.clone(),
                NamespaceQuota {
                    name: spec.name.clone(),
                    limit,
                },
            ))
        })
        .collect()
}

/// Whether one more allocation asking `cpu` MHz and `memory_mb` MB fits `quota` on top of
/// `used`; `Err` says which dimension it exceeds, as
/// `quota "team-a" exhausted: cpu 2600/2500 MHz` (what the usage would be / the limit).
pub fn admit(
    quota: &NamespaceQuota,
    used: &QuotaUsage,
    cpu: u32,
    memory_mb: u32,
) -> Result<(), String> {
    let dims = [
        (
            "cpu",
            used.cpu.saturating_add(cpu.into()),
            quota.limit.cpu,
            " MHz",
        ),
        (
            "memory",
            used.memory_mb.saturating_add(memory_mb.into()),
            quota.limit.memory_mb,
            " MB",
        ),
        (
            "allocations",
            used.allocs.saturating_add(1),
            quota.limit.allocations,
            "",
        ),
    ];
    for (dim, after, limit, unit) in dims {
        if limit == 0 {
            continue;
        }
        if limit < 0 {
            return Err(format!(
                "quota {:?} exhausted: {dim} is not allowed (limit {limit})",
                quota.name
            ));
        }
        if after > limit as u64 {
            return Err(format!(
                "quota {:?} exhausted: {dim} {after}/{limit}{unit}",
                quota.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn quota(cpu: i64, memory_mb: i64, allocations: i64) -> NamespaceQuota {
        NamespaceQuota {
            name: "team-a".into(),
            limit: RegionLimit {
                cpu,
                memory_mb,
                allocations,
            },
        }
    }

    fn used(cpu: u64, memory_mb: u64, allocs: u64) -> QuotaUsage {
        QuotaUsage {
            cpu,
            memory_mb,
            allocs,
        }
    }

    #[test]
    fn admit_table() {
        /// Quota, usage, the new allocation's (cpu, memory), and the refusal expected.
        type Case = (
            NamespaceQuota,
            QuotaUsage,
            (u32, u32),
            Result<(), &'static str>,
        );
        let cases: &[Case] = &[
            // exactly at the limit fits
            (quota(2500, 0, 0), used(2000, 0, 0), (500, 0), Ok(())),
            // one over does not
            (
                quota(2500, 0, 0),
                used(2100, 0, 0),
                (500, 0),
                Err("quota \"team-a\" exhausted: cpu 2600/2500 MHz"),
            ),
            (
                quota(0, 1000, 0),
                used(9999, 900, 0),
                (10, 101),
                Err("memory 1001/1000 MB"),
            ),
            (quota(0, 0, 3), used(0, 0, 2), (100, 100), Ok(())),
            (
                quota(0, 0, 3),
                used(0, 0, 3),
                (0, 0),
                Err("allocations 4/3"),
            ),
            // 0 is unlimited
            (quota(0, 0, 0), used(u64::MAX, u64::MAX, 7), (1, 1), Ok(())),
            // negative allows none
            (
                quota(-1, 0, 0),
                used(0, 0, 0),
                (0, 0),
                Err("cpu is not allowed"),
            ),
            // cpu is reported before memory
            (
                quota(100, 100, 0),
                used(0, 0, 0),
                (200, 200),
                Err("cpu 200/100"),
            ),
        ];
        for (q, u, (cpu, mem), want) in cases {
            let got = admit(q, u, *cpu, *mem);
            match (got, want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(w)) => assert!(e.contains(w), "{q:?} {u:?}: {e}"),
                (g, w) => panic!("{q:?} {u:?} +({cpu},{mem}): got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn usage_add_then_sub_returns_to_zero() {
        let mut u = QuotaUsage::default();
        u.add(500, 256);
        u.add(100, 64);
        u.sub(500, 256);
        u.sub(100, 64);
        assert!(u.is_zero());
        u.sub(1, 1);
        assert!(u.is_zero(), "never below zero");
    }

    fn placed(
        snap: &mut super::super::ClusterSnapshot,
        namespace: &str,
        count: u32,
        ids: &str,
    ) -> Vec<Result<super::super::Placement, super::super::PlacementFailure>> {
        let mut job = nomos_api::build::job("web").group("g", count).build();
        job.namespace = namespace.into();
        let requests: Vec<super::super::PlacementRequest> = (0..count)
            .map(|i| super::super::PlacementRequest {
                alloc_id: format!("{ids}{i}"),
                penalty_node: None,
            })
            .collect();
        super::super::place(
            snap,
            &job,
            &job.groups[0],
            &requests,
            &Default::default(),
            1,
        )
    }

    #[test]
    fn the_engine_places_up_to_the_quota_and_freed_usage_admits_more() {
        let mut snap = super::super::ClusterSnapshot::new();
        let node = nomos_api::build::node("n1")
            .cpu(10_000)
            .memory(10_000)
            .build();
        snap.upsert_node(node, None, true);
        snap.set_namespace_quota("team-a", Some(quota(0, 0, 2)));

        let out = placed(&mut snap, "team-a", 3, "a");
        assert!(out[0].is_ok() && out[1].is_ok(), "{out:?}");
        let refused = out[2].as_ref().unwrap_err();
        assert_eq!(
            refused.summary(),
            "quota \"team-a\" exhausted: allocations 3/2"
        );
        assert_eq!(snap.namespace_usage("team-a"), used(200, 128, 2));

        // A namespace without a quota is unaffected.
        assert!(placed(&mut snap, "free", 3, "f").iter().all(Result::is_ok));

        // Freed usage admits the queued placement.
        snap.remove_alloc("a0");
        assert_eq!(snap.namespace_usage("team-a"), used(100, 64, 1));
        assert!(placed(&mut snap, "team-a", 1, "b")[0].is_ok());
        assert_eq!(
            placed(&mut snap, "team-a", 1, "c")[0]
                .as_ref()
                .unwrap_err()
                .summary(),
            "quota \"team-a\" exhausted: allocations 3/2"
        );
    }

    #[test]
    fn usage_counts_allocations_on_nodes_not_yet_known_once() {
        let mut snap = super::super::ClusterSnapshot::new();
        snap.add_alloc(super::super::AllocUsage {
            id: "x".into(),
            job: "team-a/web".into(),
            group: "g".into(),
            node: "later".into(),
            cpu: 100,
            memory_mb: 64,
            ports: Box::default(),
            devices: Box::default(),
        });
        assert_eq!(snap.namespace_usage("team-a"), used(100, 64, 1));
        let node = nomos_api::build::node("later")
            .cpu(1000)
            .memory(1000)
            .build();
        snap.upsert_node(node, None, true);
        assert_eq!(snap.namespace_usage("team-a"), used(100, 64, 1));
        snap.remove_alloc("x");
        assert!(snap.namespace_usage("team-a").is_zero());
    }

    #[test]
    fn namespaces_get_the_global_limit_of_the_quota_they_name() {
        let limit = RegionLimit {
            cpu: 2500,
            ..Default::default()
        };
        let spec = QuotaSpec {
            name: "q".into(),
            limits: vec![nomos_api::namespace::QuotaLimit {
                region: "global".into(),
                region_limit: limit,
            }],
            ..Default::default()
        };
        let ns = |name: &str, quota: &str| {
            (
                name.to_string(),
                Namespace {
                    name: name.into(),
                    quota: quota.into(),
                    ..Default::default()
                },
            )
        };
        let namespaces = BTreeMap::from([ns("a", "q"), ns("b", ""), ns("c", "missing")]);
        let quotas = BTreeMap::from([("q".to_string(), spec)]);
        let got = namespace_quotas(&namespaces, &quotas);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "a");
        assert_eq!(got[0].1.limit, limit);
    }

    proptest! {
        /// Admitting allocations one at a time, each admitted one added to the usage, never
        /// takes the usage past any positive limit.
        #[test]
        fn admitted_usage_never_exceeds_a_limit(
            cpu in 0i64..5000, mem in 0i64..5000, count in 0i64..20,
            asks in proptest::collection::vec((0u32..1500, 0u32..1500), 0..40),
        ) {
            let q = quota(cpu, mem, count);
            let mut u = QuotaUsage::default();
            for (c, m) in asks {
                if admit(&q, &u, c, m).is_ok() {
                    u.add(c, m);
                }
                prop_assert!(cpu == 0 || u.cpu <= cpu as u64);
                prop_assert!(mem == 0 || u.memory_mb <= mem as u64);
                prop_assert!(count == 0 || u.allocs <= count as u64);
            }
        }
    }
}
