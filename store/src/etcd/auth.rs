//! etcd users and roles for nodes (etcd RBAC): [`EtcdStore::grant_node_access`] makes one
//! user and one role per node, the role granted exactly [`node_key_grants`], so a node's
//! credentials reach its own keys and the few shared ones an agent reads, and nothing else.
//! These are user-management operations, so they live on [`EtcdStore`], not on the `Store`
//! trait; [`EmbeddedAuth::grant_node_access`] does the same on the embedded store's own users
//! (what its etcd endpoint enforces).

use etcd_client as ec;

use super::{map_err, EtcdStore};
use crate::embedded::auth::{Access, AuthError, EmbeddedAuth, Permission};
use crate::{keys, Result, StoreError};

/// What a node may do with a key or a range of keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAccess {
    Read,
    ReadWrite,
}

/// One permission of a node's role: a single key, or every key under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGrant {
    pub key: String,
    /// Whether `key` is a prefix (etcd's range end is then the prefix with its last byte + 1).
    pub prefix: bool,
    pub access: KeyAccess,
}

impl KeyGrant {
    fn read_prefix(key: String) -> Self {
        KeyGrant {
            key,
            prefix: true,
            access: KeyAccess::Read,
        }
    }

    fn read_key(key: String) -> Self {
        KeyGrant {
            key,
            prefix: false,
            access: KeyAccess::Read,
        }
    }

    fn write_key(key: String) -> Self {
        KeyGrant {
            key,
            prefix: false,
            access: KeyAccess::ReadWrite,
        }
    }

    fn permission(&self) -> ec::Permission {
        let perm = match self.access {
            KeyAccess::Read => ec::Permission::read(self.key.clone()),
            KeyAccess::ReadWrite => ec::Permission::read_write(self.key.clone()),
        };
        if self.prefix {
            perm.with_range_end(prefix_end(self.key.as_bytes()))
        } else {
            perm
        }
    }

    /// The same grant as the embedded store's permission.
    fn embedded_permission(&self) -> Permission {
        Permission {
            access: match self.access {
                KeyAccess::Read => Access::Read,
                KeyAccess::ReadWrite => Access::ReadWrite,
            },
            key: self.key.as_bytes().to_vec(),
            range_end: if self.prefix {
                prefix_end(self.key.as_bytes())
            } else {
                Vec::new()
            },
        }
    }
}

/// etcd's range end for every key starting with `prefix`: the prefix with its last byte that is
/// not 0xff incremented (and what follows it dropped); `\0` (every key) when there is none.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The user name and password a node connects to etcd with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdCredentials {
    pub user: String,
    pub password: String,
}

/// The etcd user, and its role, of node `node`.
pub fn node_user(node: &str) -> String {
    format!("nomos-node-{node}")
}

/// Every key an agent on `node` reads or writes (see docs/keys.md and docs/security.md):
/// reads its allocations and workload identities, the job versions they name, the servers'
/// heartbeat settings and addresses, the cluster's identity (it touches no task on a store of
/// another cluster), the node registrations (it counts them to size its lease) and the service
/// catalogue and the users' key-value space (templates' `nomadService`, `key`); writes its
/// registration, heartbeat and allocation statuses.
pub fn node_key_grants(node: &str) -> Vec<KeyGrant> {
    vec![
        KeyGrant::read_prefix(keys::allocs_prefix(Some(node))),
        KeyGrant::read_prefix(keys::identities_prefix(Some(node))),
        KeyGrant::read_prefix(keys::JOB_VERSIONS_PREFIX.to_string()),
        KeyGrant::read_key(keys::HEARTBEAT_CONFIG.to_string()),
        KeyGrant::read_key(keys::CLUSTER.to_string()),
        KeyGrant::read_prefix(keys::SERVERS_PREFIX.to_string()),
        KeyGrant::read_prefix(keys::NODES_PREFIX.to_string()),
        KeyGrant::read_prefix(keys::SERVICES_PREFIX.to_string()),
        KeyGrant::read_key(keys::SERVICES_INDEX.to_string()),
        KeyGrant::read_prefix(keys::KV_PREFIX.to_string()),
        KeyGrant::write_key(keys::node(node)),
        KeyGrant::write_key(keys::heartbeat(node)),
        KeyGrant::write_key(keys::usage(node)),
        KeyGrant {
            key: keys::alloc_status_prefix(Some(node)),
            prefix: true,
            access: KeyAccess::ReadWrite,
        },
    ]
}

/// An admin call's error, naming the step that failed.
fn step_err(step: &str, e: ec::Error) -> StoreError {
    match map_err(e) {
        StoreError::Unavailable(m) => StoreError::Unavailable(format!("{step}: {m}")),
        StoreError::InvalidRequest(m) | StoreError::Backend(m) => {
            StoreError::Backend(format!("{step}: {m}"))
        }
        other => other,
    }
}

/// Whether an etcd error says the user or role being added is already there.
fn already_exists(e: &ec::Error) -> bool {
    e.to_string().contains("already exists")
}

impl EtcdStore {
    /// Whether etcd has authentication enabled. etcd 3.4 has no call that says so; an
    /// authentication attempt with a user that cannot exist answers "not enabled" when it is
    /// off and "authentication failed" when it is on.
    pub async fn auth_enabled(&self) -> Result<bool> {
        let mut auth = self
            .members
            .client()
            .await
            .map_err(map_err)?
            .1
            .auth_client();
        match auth
            .authenticate("\u{1}nomos-auth-probe".into(), String::new())
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let text = e.to_string();
                if text.contains("authentication is not enabled") {
                    Ok(false)
                } else if text.contains("authentication failed")
                    || text.contains("invalid user ID or password")
                {
                    Ok(true)
                } else {
                    Err(step_err("probe etcd authentication", e))
                }
            }
        }
    }

    /// Makes (or updates) etcd user and role `nomos-node-<node>`: the role holds exactly
    /// `grants` (permissions it held before are revoked first), the user gets `password`
    /// (a user that exists has its password changed) and the role. Needs a connection as a
    /// user allowed to manage users (root). Every step is idempotent, so a failed call can
    /// be repeated.
    pub async fn grant_node_access(
        &self,
        node: &str,
        grants: &[KeyGrant],
        password: &str,
    ) -> Result<EtcdCredentials> {
        if node.is_empty() || password.is_empty() {
            return Err(StoreError::InvalidRequest(
                "a node's etcd user needs a node name and a password".into(),
            ));
        }
        let name = node_user(node);
        let mut auth = self
            .members
            .client()
            .await
            .map_err(map_err)?
            .1
            .auth_client();
        match auth.role_add(name.clone()).await {
            Ok(_) => {}
            Err(e) if already_exists(&e) => self.revoke_all(&name).await?,
            Err(e) => return Err(step_err("add etcd role", e)),
        }
        for grant in grants {
            auth.role_grant_permission(name.clone(), grant.permission())
                .await
                .map_err(|e| step_err(&format!("grant {} to etcd role", grant.key), e))?;
        }
        match auth.user_add(name.clone(), password, None).await {
            Ok(_) => {}
            Err(e) if already_exists(&e) => {
                auth.user_change_password(name.clone(), password)
                    .await
                    .map_err(|e| step_err("change etcd user password", e))?;
            }
            Err(e) => return Err(step_err("add etcd user", e)),
        }
        auth.user_grant_role(name.clone(), name.clone())
            .await
            .map_err(|e| step_err("grant etcd role to user", e))?;
        Ok(EtcdCredentials {
            user: name,
            password: password.to_string(),
        })
    }

    /// Revokes every permission role `name` holds.
    async fn revoke_all(&self, name: &str) -> Result<()> {
        let mut auth = self
            .members
            .client()
            .await
            .map_err(map_err)?
            .1
            .auth_client();
        let role = auth
            .role_get(name.to_string())
            .await
            .map_err(|e| step_err("read etcd role", e))?;
        for perm in role.permissions() {
            let options = ec::RoleRevokePermissionOptions::new().with_range_end(perm.range_end());
            auth.role_revoke_permission(name.to_string(), perm.key(), Some(options))
                .await
                .map_err(|e| step_err("revoke etcd role permission", e))?;
        }
        Ok(())
    }
}

impl EmbeddedAuth {
    /// The embedded store's [`EtcdStore::grant_node_access`]: makes (or updates) user and role
    /// `nomos-node-<node>` holding exactly `grants`, with `password`. Every step is
    /// idempotent, so a failed call can be repeated.
    pub fn grant_node_access(
        &self,
        node: &str,
        grants: &[KeyGrant],
        password: &str,
    ) -> Result<EtcdCredentials> {
        if node.is_empty() || password.is_empty() {
            return Err(StoreError::InvalidRequest(
                "a node's store user needs a node name and a password".into(),
            ));
        }
        let name = node_user(node);
        let failed = |step: &str, e: AuthError| StoreError::Backend(format!("{step}: {e}"));
        match self.role_add(&name) {
            Ok(_) => {}
            Err(AuthError::RoleExists) => {
                for perm in self.role_get(&name).map_err(|e| failed("read role", e))? {
                    self.role_revoke_permission(&name, &perm.key, &perm.range_end)
                        .map_err(|e| failed("revoke role permission", e))?;
                }
            }
            Err(e) => return Err(failed("add role", e)),
        }
        for grant in grants {
            self.role_grant_permission(&name, grant.embedded_permission())
                .map_err(|e| failed(&format!("grant {} to role", grant.key), e))?;
        }
        match self.user_add(&name, Some(password)) {
            Ok(_) => {}
            Err(AuthError::UserExists) => {
                self.user_change_password(&name, password)
                    .map_err(|e| failed("change user password", e))?;
            }
            Err(e) => return Err(failed("add user", e)),
        }
        self.user_grant_role(&name, &name)
            .map_err(|e| failed("grant role to user", e))?;
        Ok(EtcdCredentials {
            user: name,
            password: password.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nodes_grants_stay_inside_its_own_allocations_and_statuses() {
        let grants = node_key_grants("n1");
        let writes: Vec<&str> = grants
            .iter()
            .filter(|g| g.access == KeyAccess::ReadWrite)
            .map(|g| g.key.as_str())
            .collect();
        assert_eq!(
            writes,
            [
                "/nomos/nodes/n1",
                "/nomos/heartbeats/n1",
                "/nomos/usage/n1",
                "/nomos/allocstatus/n1/"
            ]
        );
        assert!(grants
            .iter()
            .any(|g| g.key == "/nomos/allocs/n1/" && g.prefix));
        assert!(!grants.iter().any(|g| g.key == "/nomos/allocs/"
            || g.key.starts_with("/nomos/acl")
            || g.key == keys::ROOT));
    }

    #[test]
    fn a_prefix_grant_ends_its_range_after_the_prefix() {
        let perm = KeyGrant::read_prefix("/nomos/allocs/n1/".into()).permission();
        assert_eq!(perm.key(), b"/nomos/allocs/n1/");
        assert_eq!(perm.range_end(), b"/nomos/allocs/n10");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
    }

    #[test]
    fn an_embedded_nodes_user_reaches_its_own_keys_only_and_a_rejoin_replaces_its_password() {
        let auth = EmbeddedAuth::in_memory();
        let creds = auth
            .grant_node_access("n1", &node_key_grants("n1"), "pw1")
            .unwrap();
        assert_eq!(creds.user, "nomos-node-n1");
        let user = creds.user.as_str();
        let can = |key: &str, end: &str, a| auth.check(user, key.as_bytes(), end.as_bytes(), a);
        assert!(can("/nomos/allocs/n1/", "/nomos/allocs/n10", Access::Read).is_ok());
        assert!(can("/nomos/allocstatus/n1/a", "", Access::Write).is_ok());
        assert!(can("/nomos/allocs/n2/a", "", Access::Read).is_err());
        assert!(can("/nomos/jobs/default/x", "", Access::Write).is_err());
        auth.grant_node_access("n1", &node_key_grants("n1"), "pw2")
            .unwrap();
        assert_eq!(
            auth.role_get(user).unwrap().len(),
            node_key_grants("n1").len()
        );
        auth.user_add("root", Some("r")).unwrap();
        auth.user_grant_role("root", "root").unwrap();
        auth.enable().unwrap();
        assert!(auth.authenticate(user, "pw1").is_err());
        assert!(auth.authenticate(user, "pw2").is_ok());
    }
}
