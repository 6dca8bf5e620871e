//! etcd's users, roles and permissions (its RBAC) for the embedded store, so a store served
//! over etcd's protocol (`nomos-store-server`) answers `etcdctl user/role/auth` and limits
//! each user to its roles' keys exactly as etcd does, and a server can make nodes' users
//! directly ([`EmbeddedAuth::grant_node_access`]).
//!
//! The state is held in memory behind one mutex and made durable by `auth_store` (its own
//! SQLite file, apart from the key space) before a change is visible. Passwords are kept as
//! salted PBKDF2-HMAC-SHA256 hashes. Tokens are the server's business; this module gives each
//! user a [`EmbeddedAuth::credential_stamp`] that changes when the user is deleted, its
//! password changes or authentication is enabled again, which is when etcd drops its tokens.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use ring::rand::{SecureRandom, SystemRandom};
use thiserror::Error;

use super::auth_store::AuthDb;

/// The user that must exist before authentication can be enabled, and the role with every
/// permission.
pub const ROOT: &str = "root";
/// PBKDF2 rounds for new password hashes (each hash records its own count).
const HASH_ROUNDS: u32 = 20_000;

/// Why an auth call failed. The messages are etcd's own (its `rpctypes`), so clients that
/// match them (etcdctl's `auth enable` adds the root role on [`AuthError::RootRoleMissing`])
/// behave as against etcd. None is retryable except [`AuthError::Persist`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    #[error("etcdserver: user name already exists")]
    UserExists,
    #[error("etcdserver: user name not found")]
    UserNotFound,
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    #[error("etcdserver: role name already exists")]
    RoleExists,
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    #[error("etcdserver: authentication is not enabled")]
    NotEnabled,
    #[error("etcdserver: invalid auth token")]
    InvalidToken,
    #[error("etcdserver: invalid auth management")]
    InvalidManagement,
    #[error("etcdserver: root user does not exist")]
    RootUserMissing,
    #[error("etcdserver: root user does not have root role")]
    RootRoleMissing,
    /// The change could not be made durable; nothing changed.
    #[error("etcdserver: cannot store the auth change: {0}")]
    Persist(String),
}

/// What a permission allows (etcd's `Permission.Type` numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read = 0,
    Write = 1,
    ReadWrite = 2,
}

impl Access {
    /// etcd's numbering; `None` for an unknown type.
    pub fn from_etcd(value: i32) -> Option<Access> {
        match value {
            0 => Some(Access::Read),
            1 => Some(Access::Write),
            2 => Some(Access::ReadWrite),
            _ => None,
        }
    }

    /// Whether holding `self` allows `wanted` (`wanted` is `Read` or `Write`).
    fn allows(self, wanted: Access) -> bool {
        self == Access::ReadWrite || self == wanted
    }
}

/// One permission of a role: a key (`range_end` empty), a range `[key, range_end)`, or every
/// key from `key` on (`range_end` = `\0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub access: Access,
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct User {
    /// `None` for a user added without a password: it cannot authenticate with one.
    pub password_hash: Option<String>,
    pub roles: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Role {
    pub permissions: Vec<Permission>,
}

/// The whole auth state, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AuthData {
    pub enabled: bool,
    /// Bumped by every change (etcd's auth revision).
    pub revision: u64,
    /// The revision at which authentication was last enabled: tokens from before it are void.
    pub enabled_at: u64,
    pub users: BTreeMap<String, User>,
    pub roles: BTreeMap<String, Role>,
}

/// The embedded store's users and roles. Cheap to share in an `Arc`; every change is durable
/// (when opened on a directory) before it returns.
pub struct EmbeddedAuth {
    data: Mutex<AuthData>,
    /// Mirrors `data.enabled` so the unauthenticated fast path takes no lock.
    enabled: AtomicBool,
    db: Option<Mutex<AuthDb>>,
}

impl std::fmt::Debug for EmbeddedAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedAuth")
            .field("enabled", &self.is_enabled())
            .field("durable", &self.db.is_some())
            .finish()
    }
}

impl EmbeddedAuth {
    /// Opens (or creates) the auth state kept in the store's data directory `dir`.
    pub fn open(dir: &Path) -> Result<EmbeddedAuth, AuthError> {
        let db = AuthDb::open(dir)?;
        let data = db.load()?;
        Ok(Self::with(data, Some(db)))
    }

    /// Auth state that lives in memory only (tests; stores that are not durable).
    pub fn in_memory() -> EmbeddedAuth {
        Self::with(AuthData::default(), None)
    }

    fn with(data: AuthData, db: Option<AuthDb>) -> EmbeddedAuth {
        EmbeddedAuth {
            enabled: AtomicBool::new(data.enabled),
            data: Mutex::new(data),
            db: db.map(Mutex::new),
        }
    }

    fn lock(&self) -> MutexGuard<'_, AuthData> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether authentication is enabled (requests then need a user).
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// etcd's auth revision: bumped by every change.
    pub fn revision(&self) -> u64 {
        self.lock().revision
    }

    /// Applies `change` to a copy of the state, stores it, then makes it visible; on any
    /// error nothing changes. Answers the new revision.
    fn change(
        &self,
        change: impl FnOnce(&mut AuthData) -> Result<(), AuthError>,
    ) -> Result<u64, AuthError> {
        let mut current = self.lock();
        let mut next = current.clone();
        change(&mut next)?;
        next.revision += 1;
        if let Some(db) = &self.db {
            db.lock().unwrap_or_else(|p| p.into_inner()).save(&next)?;
        }
        self.enabled.store(next.enabled, Ordering::Release);
        *current = next;
        Ok(current.revision)
    }

    /// Enables authentication: needs user `root` holding role `root`, as etcd.
    pub fn enable(&self) -> Result<u64, AuthError> {
        self.change(|d| {
            let root = d.users.get(ROOT).ok_or(AuthError::RootUserMissing)?;
            if !root.roles.contains(ROOT) {
                return Err(AuthError::RootRoleMissing);
            }
            if !d.enabled {
                d.enabled = true;
                d.enabled_at = d.revision + 1;
            }
            Ok(())
        })
    }

    /// Disables authentication (every request is then allowed, tokens are ignored).
    pub fn disable(&self) -> Result<u64, AuthError> {
        self.change(|d| {
            d.enabled = false;
            Ok(())
        })
    }

    /// Adds a user; `password` `None` makes one that cannot authenticate with a password
    /// (etcd's `--no-password`, for certificate users).
    pub fn user_add(&self, name: &str, password: Option<&str>) -> Result<u64, AuthError> {
        if name.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        let hash = password.map(hash_password).transpose()?;
        self.change(|d| {
            if d.users.contains_key(name) {
                return Err(AuthError::UserExists);
            }
            let user = User {
                password_hash: hash,
                roles: BTreeSet::new(),
            };
            d.users.insert(name.to_string(), user);
            Ok(())
        })
    }

    /// Deletes a user; `root` cannot be deleted while authentication is enabled.
    pub fn user_delete(&self, name: &str) -> Result<u64, AuthError> {
        self.change(|d| {
            if d.enabled && name == ROOT {
                return Err(AuthError::InvalidManagement);
            }
            d.users.remove(name).ok_or(AuthError::UserNotFound)?;
            Ok(())
        })
    }

    /// Sets a user's password (its tokens become invalid).
    pub fn user_change_password(&self, name: &str, password: &str) -> Result<u64, AuthError> {
        let hash = hash_password(password)?;
        self.change(|d| {
            let user = d.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
            user.password_hash = Some(hash);
            Ok(())
        })
    }

    /// Grants a role to a user; `root` need not exist as a role to be granted, as in etcd.
    pub fn user_grant_role(&self, name: &str, role: &str) -> Result<u64, AuthError> {
        self.change(|d| {
            if role != ROOT && !d.roles.contains_key(role) {
                return Err(AuthError::RoleNotFound);
            }
            let user = d.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
            user.roles.insert(role.to_string());
            Ok(())
        })
    }

    /// Revokes a role from a user; not `root` from `root` while authentication is enabled.
    pub fn user_revoke_role(&self, name: &str, role: &str) -> Result<u64, AuthError> {
        self.change(|d| {
            if d.enabled && name == ROOT && role == ROOT {
                return Err(AuthError::InvalidManagement);
            }
            let user = d.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
            if !user.roles.remove(role) {
                return Err(AuthError::RoleNotGranted);
            }
            Ok(())
        })
    }

    /// A user's roles, sorted.
    pub fn user_get(&self, name: &str) -> Result<Vec<String>, AuthError> {
        let data = self.lock();
        let user = data.users.get(name).ok_or(AuthError::UserNotFound)?;
        Ok(user.roles.iter().cloned().collect())
    }

    /// Every user name, sorted.
    pub fn user_list(&self) -> Vec<String> {
        self.lock().users.keys().cloned().collect()
    }

    pub fn role_add(&self, name: &str) -> Result<u64, AuthError> {
        if name.is_empty() {
            return Err(AuthError::RoleEmpty);
        }
        self.change(|d| {
            if d.roles.contains_key(name) {
                return Err(AuthError::RoleExists);
            }
            d.roles.insert(name.to_string(), Role::default());
            Ok(())
        })
    }

    /// Deletes a role and takes it from every user; not `root` while enabled.
    pub fn role_delete(&self, name: &str) -> Result<u64, AuthError> {
        self.change(|d| {
            if d.enabled && name == ROOT {
                return Err(AuthError::InvalidManagement);
            }
            d.roles.remove(name).ok_or(AuthError::RoleNotFound)?;
            for user in d.users.values_mut() {
                user.roles.remove(name);
            }
            Ok(())
        })
    }

    /// A role's permissions, sorted by key.
    pub fn role_get(&self, name: &str) -> Result<Vec<Permission>, AuthError> {
        let data = self.lock();
        let role = data.roles.get(name).ok_or(AuthError::RoleNotFound)?;
        Ok(role.permissions.clone())
    }

    /// Every role name, sorted.
    pub fn role_list(&self) -> Vec<String> {
        self.lock().roles.keys().cloned().collect()
    }

    /// Grants `perm`; one with the same key and range end has its access replaced, as etcd.
    pub fn role_grant_permission(&self, role: &str, perm: Permission) -> Result<u64, AuthError> {
        self.change(|d| {
            let r = d.roles.get_mut(role).ok_or(AuthError::RoleNotFound)?;
            match r
                .permissions
                .iter_mut()
                .find(|p| p.key == perm.key && p.range_end == perm.range_end)
            {
                Some(existing) => existing.access = perm.access,
                None => r.permissions.push(perm),
            }
            r.permissions
                .sort_by(|a, b| (&a.key, &a.range_end).cmp(&(&b.key, &b.range_end)));
            Ok(())
        })
    }

    /// Revokes the permission on exactly `key` .. `range_end`.
    pub fn role_revoke_permission(
        &self,
        role: &str,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<u64, AuthError> {
        self.change(|d| {
            let r = d.roles.get_mut(role).ok_or(AuthError::RoleNotFound)?;
            let before = r.permissions.len();
            r.permissions
                .retain(|p| !(p.key == key && p.range_end == range_end));
            if r.permissions.len() == before {
                return Err(AuthError::PermissionNotGranted);
            }
            Ok(())
        })
    }

    /// Checks a user's password; answers its credential stamp. Refused unless enabled.
    pub fn authenticate(&self, name: &str, password: &str) -> Result<String, AuthError> {
        let (hash, stamp) = {
            let data = self.lock();
            if !data.enabled {
                return Err(AuthError::NotEnabled);
            }
            let user = data.users.get(name).ok_or(AuthError::AuthFailed)?;
            let hash = user.password_hash.clone().ok_or(AuthError::AuthFailed)?;
            (hash, stamp(&data, user))
        };
        // The slow hash runs outside the lock.
        if !verify_password(&hash, password) {
            return Err(AuthError::AuthFailed);
        }
        Ok(stamp)
    }

    /// What a token for `name` must still match to be valid: it changes when the user is
    /// deleted (`None`), its password changes, or authentication is enabled again.
    pub fn credential_stamp(&self, name: &str) -> Option<String> {
        let data = self.lock();
        data.users.get(name).map(|u| stamp(&data, u))
    }

    /// Whether `name` exists (users named by a client certificate need not have a password).
    pub fn user_exists(&self, name: &str) -> bool {
        self.lock().users.contains_key(name)
    }

    /// Whether `name` holds the `root` role (may manage users and roles, compact, ...).
    pub fn is_root(&self, name: &str) -> bool {
        self.lock()
            .users
            .get(name)
            .is_some_and(|u| u.roles.contains(ROOT))
    }

    /// Whether `name` may `wanted` (`Read` or `Write`) every key of `key` .. `range_end`
    /// (etcd's range convention: empty = the key alone, `\0` = every key from `key` on).
    pub fn check(
        &self,
        name: &str,
        key: &[u8],
        range_end: &[u8],
        wanted: Access,
    ) -> Result<(), AuthError> {
        let data = self.lock();
        let user = data.users.get(name).ok_or(AuthError::PermissionDenied)?;
        if user.roles.contains(ROOT) {
            return Ok(());
        }
        let granted: Vec<Span> = user
            .roles
            .iter()
            .filter_map(|r| data.roles.get(r))
            .flat_map(|r| &r.permissions)
            .filter(|p| p.access.allows(wanted))
            .map(|p| Span::of(&p.key, &p.range_end))
            .collect();
        if covers(granted, &Span::of(key, range_end)) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }
}

fn stamp(data: &AuthData, user: &User) -> String {
    format!(
        "{}:{}",
        data.enabled_at,
        user.password_hash.as_deref().unwrap_or("")
    )
}

/// A half-open key interval; `end` `None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl Span {
    fn of(key: &[u8], range_end: &[u8]) -> Span {
        let end = match range_end {
            [] => {
                let mut next = key.to_vec();
                next.push(0);
                Some(next)
            }
            [0] => None,
            end if end <= key => {
                // An empty range reads nothing; check its first key alone.
                let mut next = key.to_vec();
                next.push(0);
                Some(next)
            }
            end => Some(end.to_vec()),
        };
        Span {
            start: key.to_vec(),
            end,
        }
    }
}

/// Whether the union of `granted` covers all of `wanted`.
fn covers(mut granted: Vec<Span>, wanted: &Span) -> bool {
    granted.sort_by(|a, b| a.start.cmp(&b.start));
    let mut reached = wanted.start.clone();
    for span in granted {
        if span.start > reached {
            break;
        }
        match span.end {
            None => return true,
            Some(end) if end > reached => reached = end,
            Some(_) => {}
        }
        if wanted.end.as_ref().is_some_and(|e| reached >= *e) {
            return true;
        }
    }
    false
}

fn rounds_of(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `pbkdf2-sha256$<rounds>$<salt>$<hash>`, salt and hash in hex.
fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| AuthError::Persist("the OS random source failed".into()))?;
    let mut out = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds_of(HASH_ROUNDS),
        &salt,
        password.as_bytes(),
        &mut out,
    );
    Ok(format!(
        "pbkdf2-sha256${HASH_ROUNDS}${}${}",
        hex(&salt),
        hex(&out)
    ))
}

fn verify_password(stored: &str, password: &str) -> bool {
    let parts: Vec<&str> = stored.split('$').collect();
    let [scheme, rounds, salt, hash] = parts.as_slice() else {
        return false;
    };
    let (Ok(rounds), Some(salt), Some(hash)) = (rounds.parse::<u32>(), unhex(salt), unhex(hash))
    else {
        return false;
    };
    *scheme == "pbkdf2-sha256"
        && ring::pbkdf2::verify(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            rounds_of(rounds),
            &salt,
            password.as_bytes(),
            &hash,
        )
        .is_ok()
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
