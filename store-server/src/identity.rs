//! Who this server says it is: the cluster and member ids, raft term, name, version and URL that
//! fill every response header and the Status and MemberList answers.

use etcd_client::proto::{PbMember, PbResponseHeader};

/// The identity of the single etcd "member" this server plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cluster_id: u64,
    pub member_id: u64,
    /// Constant: there is no raft here, but clients expect a non-zero term.
    pub raft_term: u64,
    pub name: String,
    /// The etcd version reported by `Status` (etcdctl shows it).
    pub version: String,
    /// The URL clients reach this server at (`http://` or `https://` and the bound address).
    pub client_url: String,
}

impl Identity {
    /// An identity whose ids are derived from the member name, so a restarted server keeps them.
    pub fn new(name: &str, version: &str, client_url: String) -> Self {
        let member_id = fnv1a(name.as_bytes()) | 1;
        let cluster_id = fnv1a(format!("nomos-cluster/{name}").as_bytes()) | 1;
        Identity {
            cluster_id,
            member_id,
            raft_term: 2,
            name: name.to_string(),
            version: version.to_string(),
            client_url,
        }
    }

    /// A filled response header at `revision`.
    pub fn header(&self, revision: i64) -> Option<PbResponseHeader> {
        Some(PbResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.raft_term,
        })
    }

    /// This server as the only member of its cluster.
    pub fn member(&self) -> PbMember {
        PbMember {
            id: self.member_id,
            name: self.name.clone(),
            // There are no peers; the one URL this member has stands in, so tools that expect a
            // peer URL (and `etcdctl member list`) show something meaningful.
            peer_ur_ls: vec![self.client_url.clone()],
            client_ur_ls: vec![self.client_url.clone()],
            is_learner: false,
        }
    }
}

/// 64-bit FNV-1a: a small stable hash for ids (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_non_zero_and_differ_by_name() {
        let a = Identity::new("default", "3.5.0", "http://127.0.0.1:1".into());
        let b = Identity::new("default", "3.5.0", "http://127.0.0.1:2".into());
        let c = Identity::new("other", "3.5.0", "http://127.0.0.1:1".into());
        assert_eq!(a.member_id, b.member_id);
        assert_eq!(a.cluster_id, b.cluster_id);
        assert_ne!(a.member_id, c.member_id);
        assert_ne!(a.member_id, 0);
        assert_ne!(a.cluster_id, a.member_id);
    }

    #[test]
    fn header_carries_ids_term_and_revision() {
        let id = Identity::new("n", "3.5.0", "http://x".into());
        let h = id.header(42).expect("header");
        assert_eq!(
            (h.cluster_id, h.member_id, h.revision, h.raft_term),
            (id.cluster_id, id.member_id, 42, 2)
        );
    }
}
