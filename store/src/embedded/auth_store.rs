//! Durability of the embedded store's users and roles ([`super::auth`]): a small SQLite
//! database of its own (`nomos-auth.sqlite`, WAL, `synchronous=FULL`) in the store's data
//! directory, next to the key space's database but apart from it, as etcd keeps its auth
//! buckets apart from the keys: nothing here can be read through a KV range. The whole auth
//! state is rewritten in one transaction on every change (it is small and changes rarely).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rusqlite::{params, Connection};

use super::auth::{Access, AuthData, AuthError, Permission, Role, User};

/// File name of the auth database inside the data directory.
pub const AUTH_DB_FILE: &str = "nomos-auth.sqlite";

pub(crate) struct AuthDb {
    conn: Connection,
}

fn failed(e: rusqlite::Error) -> AuthError {
    AuthError::Persist(format!("sqlite: {e}"))
}

impl AuthDb {
    /// Opens (or creates) the auth database in `dir`.
    pub fn open(dir: &Path) -> Result<AuthDb, AuthError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            AuthError::Persist(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let conn = Connection::open(dir.join(AUTH_DB_FILE)).map_err(failed)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS auth_meta (
                 name TEXT PRIMARY KEY,
                 value INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS auth_users (
                 name TEXT PRIMARY KEY,
                 password TEXT
             );
             CREATE TABLE IF NOT EXISTS auth_user_roles (
                 user TEXT NOT NULL,
                 role TEXT NOT NULL,
                 PRIMARY KEY (user, role)
             );
             CREATE TABLE IF NOT EXISTS auth_roles (
                 name TEXT PRIMARY KEY
             );
             CREATE TABLE IF NOT EXISTS auth_permissions (
                 role TEXT NOT NULL,
                 access INTEGER NOT NULL,
                 key BLOB NOT NULL,
                 range_end BLOB NOT NULL
             );",
        )
        .map_err(failed)?;
        Ok(AuthDb { conn })
    }

    /// Reads the whole auth state.
    pub fn load(&self) -> Result<AuthData, AuthError> {
        let meta = |name: &str| -> Result<i64, AuthError> {
            self.conn
                .query_row(
                    "SELECT value FROM auth_meta WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(0),
                    e => Err(failed(e)),
                })
        };
        let mut data = AuthData {
            enabled: meta("enabled")? != 0,
            revision: meta("revision")?.max(0) as u64,
            enabled_at: meta("enabled_at")?.max(0) as u64,
            ..AuthData::default()
        };
        data.users = self.load_users()?;
        data.roles = self.load_roles()?;
        Ok(data)
    }

    fn load_users(&self) -> Result<BTreeMap<String, User>, AuthError> {
        let mut users = BTreeMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT name, password FROM auth_users")
            .map_err(failed)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))
            .map_err(failed)?;
        for row in rows {
            let (name, password_hash) = row.map_err(failed)?;
            let user = User {
                password_hash,
                roles: BTreeSet::new(),
            };
            users.insert(name, user);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT user, role FROM auth_user_roles")
            .map_err(failed)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(failed)?;
        for row in rows {
            let (user, role) = row.map_err(failed)?;
            if let Some(u) = users.get_mut(&user) {
                u.roles.insert(role);
            }
        }
        Ok(users)
    }

    fn load_roles(&self) -> Result<BTreeMap<String, Role>, AuthError> {
        let mut roles = BTreeMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM auth_roles")
            .map_err(failed)?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(failed)?;
        for name in names {
            roles.insert(name.map_err(failed)?, Role::default());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT role, access, key, range_end FROM auth_permissions ORDER BY rowid")
            .map_err(failed)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })
            .map_err(failed)?;
        for row in rows {
            let (role, access, key, range_end) = row.map_err(failed)?;
            let access = Access::from_etcd(access as i32).ok_or_else(|| {
                AuthError::Persist(format!(
                    "role {role:?} holds a permission of unknown type {access}"
                ))
            })?;
            if let Some(r) = roles.get_mut(&role) {
                r.permissions.push(Permission {
                    access,
                    key,
                    range_end,
                });
            }
        }
        Ok(roles)
    }

    /// Replaces the stored auth state with `data`, in one durable transaction.
    pub fn save(&mut self, data: &AuthData) -> Result<(), AuthError> {
        let tx = self.conn.transaction().map_err(failed)?;
        tx.execute_batch(
            "DELETE FROM auth_meta; DELETE FROM auth_users; DELETE FROM auth_user_roles;
             DELETE FROM auth_roles; DELETE FROM auth_permissions;",
        )
        .map_err(failed)?;
        for (name, value) in [
            ("enabled", i64::from(data.enabled)),
            ("revision", data.revision as i64),
            ("enabled_at", data.enabled_at as i64),
        ] {
            tx.execute(
                "INSERT INTO auth_meta (name, value) VALUES (?1, ?2)",
                params![name, value],
            )
            .map_err(failed)?;
        }
        for (name, user) in &data.users {
            tx.execute(
                "INSERT INTO auth_users (name, password) VALUES (?1, ?2)",
                params![name, user.password_hash],
            )
            .map_err(failed)?;
            for role in &user.roles {
                tx.execute(
                    "INSERT INTO auth_user_roles (user, role) VALUES (?1, ?2)",
                    params![name, role],
                )
                .map_err(failed)?;
            }
        }
        for (name, role) in &data.roles {
            tx.execute("INSERT INTO auth_roles (name) VALUES (?1)", params![name])
                .map_err(failed)?;
            for perm in &role.permissions {
                tx.execute(
                    "INSERT INTO auth_permissions (role, access, key, range_end)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![name, perm.access as i64, perm.key, perm.range_end],
                )
                .map_err(failed)?;
            }
        }
        tx.commit().map_err(failed)
    }
}
