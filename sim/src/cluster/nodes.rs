//! The simulated nodes: joining, losing and regaining their connection, leaving, and each
//! round of their agents.

use nomos_store::{keys, KeySelector, PutOptions};

use super::{node_value, Cluster, Failure, SimNode, LEASE_TTL_SECS};
use crate::agents::SimAgent;
use crate::invariants::{Actor, Violation};
use crate::observe::Snapshot;

impl Cluster {
    pub async fn add_node(&mut self, name: &str) {
        self.log(format!("node {name} joins"));
        let _ = self
            .store
            .put(
                keys::node(name).into_bytes(),
                serde_json::to_vec(&node_value(name)).unwrap_or_default(),
                PutOptions::default(),
            )
            .await;
        self.nodes.insert(
            name.into(),
            SimNode {
                name: name.into(),
                lease: None,
                registered: true,
                back: None,
            },
        );
        self.agents.insert(name.into(), SimAgent::new(name));
        self.connect(name).await;
    }

    /// The agent's heartbeat comes (back): a new lease and the heartbeat key on it.
    pub async fn connect(&mut self, name: &str) {
        let Ok(lease) = self.store.lease_grant(LEASE_TTL_SECS, 0).await else {
            return;
        };
        let _ = self
            .store
            .put(
                keys::heartbeat(name).into_bytes(),
                b"{}".to_vec(),
                PutOptions {
                    lease: lease.id,
                    ..Default::default()
                },
            )
            .await;
        let passes = self.nodes_passes;
        if let Some(n) = self.nodes.get_mut(name) {
            n.lease = Some(lease.id);
            n.back = Some((passes, 0));
        }
        self.log(format!("node {name} heartbeats"));
        self.check(Actor::User).await;
    }

    /// The heartbeat lease lapses (a network cut, or the agent died).
    pub async fn disconnect(&mut self, name: &str) {
        let Some(lease) = self.nodes.get_mut(name).and_then(|n| {
            n.back = None;
            n.lease.take()
        }) else {
            return;
        };
        self.log(format!("node {name} misses its heartbeat"));
        let _ = self.store.lease_revoke(lease).await;
        self.check(Actor::Fault).await;
    }

    /// The node is gone for good: deregistered.
    pub async fn remove_node(&mut self, name: &str) {
        self.disconnect(name).await;
        self.log(format!("node {name} is deregistered"));
        let _ = self
            .store
            .delete(KeySelector::key(keys::node(name)), Default::default())
            .await;
        if let Some(n) = self.nodes.get_mut(name) {
            n.registered = false;
        }
        self.agents.remove(name);
        self.check(Actor::Fault).await;
    }

    pub fn connected(&self) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| n.registered && n.lease.is_some())
            .map(|n| n.name.clone())
            .collect()
    }

    pub fn disconnected(&self) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| n.registered && n.lease.is_none())
            .map(|n| n.name.clone())
            .collect()
    }

    /// Every connected agent plays one round.
    pub async fn agents_round(&mut self) {
        let now = self.clock.now();
        let mut wrong = Vec::new();
        for name in self.connected() {
            let Some(agent) = self.agents.get_mut(&name) else {
                continue;
            };
            if let Ok(r) = agent.round(&*self.store, now).await {
                wrong.extend(r.wrong_spec);
            }
            if let Some((_, rounds)) = self.nodes.get_mut(&name).and_then(|n| n.back.as_mut()) {
                *rounds += 1;
            }
        }
        self.check(Actor::Agents).await;
        if !wrong.is_empty() && self.failure.is_none() {
            let violations: Vec<Violation> = wrong
                .into_iter()
                .map(|(id, named, found)| Violation {
                    invariant: "an_agent_only_runs_the_spec_its_allocation_names",
                    detail: format!("{id} names spec {named}, the store's version is {found}"),
                })
                .collect();
            for v in &violations {
                self.trace
                    .push(format!("  !! {}: {}", v.invariant, v.detail));
            }
            self.failure = Some(Failure {
                step: self.step,
                violations,
            });
        }
    }

    /// Nodes whose heartbeat is back, seen by the node-lifecycle loop twice since and by their
    /// agent once: none of their allocations may stay `unknown`.
    pub async fn check_nodes_back(&mut self) {
        let Ok(snap) = Snapshot::read(&*self.store, self.clock.now(), &mut self.cache).await else {
            return;
        };
        let mut violations = Vec::new();
        for n in self.nodes.values() {
            let Some((passes, rounds)) = n.back else {
                continue;
            };
            if self.nodes_passes < passes + 2 || rounds < 2 {
                continue;
            }
            for a in snap.allocs.values().filter(|a| a.node == n.name) {
                if snap.client_status(&a.id) == Some(nomos_api::ClientStatus::Unknown) {
                    violations.push(Violation {
                        invariant: "once_a_node_is_back_none_of_its_allocations_stays_unknown",
                        detail: format!("{} on {} is still unknown", a.name, n.name),
                    });
                }
            }
        }
        if !violations.is_empty() && self.failure.is_none() {
            for v in &violations {
                self.trace
                    .push(format!("  !! {}: {}", v.invariant, v.detail));
            }
            self.failure = Some(Failure {
                step: self.step,
                violations,
            });
        }
    }
}
