//! Unit tests of the embedded store's users, roles and permission checks.

use super::*;

fn perm(access: Access, key: &str, end: &str) -> Permission {
    Permission {
        access,
        key: key.as_bytes().to_vec(),
        range_end: end.as_bytes().to_vec(),
    }
}

fn with_role(perms: Vec<Permission>) -> EmbeddedAuth {
    let auth = EmbeddedAuth::in_memory();
    auth.role_add("r").unwrap();
    for p in perms {
        auth.role_grant_permission("r", p).unwrap();
    }
    auth.user_add("u", Some("pw")).unwrap();
    auth.user_grant_role("u", "r").unwrap();
    auth
}

#[test]
fn a_permission_covers_only_its_own_key_range_and_access() {
    let auth = with_role(vec![
        perm(Access::Read, "/a/", "/a0"),
        perm(Access::Write, "/w", ""),
        perm(Access::ReadWrite, "/rw/", "/rw0"),
    ]);
    let ok = |k: &str, e: &str, a| auth.check("u", k.as_bytes(), e.as_bytes(), a).is_ok();
    assert!(ok("/a/x", "", Access::Read));
    assert!(ok("/a/", "/a0", Access::Read));
    assert!(!ok("/a/x", "", Access::Write));
    assert!(!ok("/a", "/b", Access::Read), "wider than the grant");
    assert!(!ok("/a/", "\0", Access::Read), "open-ended");
    assert!(ok("/w", "", Access::Write));
    assert!(!ok("/w", "", Access::Read));
    assert!(!ok("/wx", "", Access::Write));
    assert!(ok("/rw/k", "", Access::Read) && ok("/rw/k", "", Access::Write));
    assert_eq!(
        auth.check("nobody", b"/a/x", b"", Access::Read),
        Err(AuthError::PermissionDenied)
    );
}

#[test]
fn adjacent_grants_together_cover_a_range_and_root_covers_everything() {
    let auth = with_role(vec![
        perm(Access::Read, "a", "c"),
        perm(Access::Read, "c", "e"),
    ]);
    assert!(auth.check("u", b"a", b"e", Access::Read).is_ok());
    assert!(auth.check("u", b"a", b"f", Access::Read).is_err());
    auth.user_add("root", Some("r")).unwrap();
    auth.user_grant_role("root", ROOT).unwrap();
    assert!(auth.check("root", b"\0", b"\0", Access::Write).is_ok());
}

#[test]
fn enabling_needs_a_root_user_with_the_root_role() {
    let auth = EmbeddedAuth::in_memory();
    assert_eq!(auth.enable(), Err(AuthError::RootUserMissing));
    auth.user_add(ROOT, Some("pw")).unwrap();
    assert_eq!(auth.enable(), Err(AuthError::RootRoleMissing));
    auth.user_grant_role(ROOT, ROOT).unwrap();
    auth.enable().unwrap();
    assert!(auth.is_enabled());
    assert_eq!(auth.user_delete(ROOT), Err(AuthError::InvalidManagement));
    assert_eq!(
        auth.user_revoke_role(ROOT, ROOT),
        Err(AuthError::InvalidManagement)
    );
}

#[test]
fn authentication_checks_the_password_and_stamps_change_with_it() {
    let auth = EmbeddedAuth::in_memory();
    auth.user_add(ROOT, Some("pw")).unwrap();
    auth.user_grant_role(ROOT, ROOT).unwrap();
    assert_eq!(auth.authenticate(ROOT, "pw"), Err(AuthError::NotEnabled));
    auth.enable().unwrap();
    let stamp = auth.authenticate(ROOT, "pw").unwrap();
    assert_eq!(auth.authenticate(ROOT, "wrong"), Err(AuthError::AuthFailed));
    assert_eq!(auth.authenticate("ghost", "pw"), Err(AuthError::AuthFailed));
    assert_eq!(auth.credential_stamp(ROOT), Some(stamp.clone()));
    auth.user_change_password(ROOT, "new").unwrap();
    assert_ne!(auth.credential_stamp(ROOT), Some(stamp));
    let stamp = auth.authenticate(ROOT, "new").unwrap();
    auth.disable().unwrap();
    auth.enable().unwrap();
    assert_ne!(
        auth.credential_stamp(ROOT),
        Some(stamp),
        "re-enabling voids tokens"
    );
}

#[test]
fn users_roles_and_the_enabled_flag_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let auth = EmbeddedAuth::open(dir.path()).unwrap();
        auth.role_add("r").unwrap();
        auth.role_grant_permission("r", perm(Access::Read, "/k", ""))
            .unwrap();
        auth.user_add(ROOT, Some("pw")).unwrap();
        auth.user_grant_role(ROOT, ROOT).unwrap();
        auth.user_add("u", None).unwrap();
        auth.user_grant_role("u", "r").unwrap();
        auth.enable().unwrap();
    }
    let auth = EmbeddedAuth::open(dir.path()).unwrap();
    assert!(auth.is_enabled());
    assert_eq!(auth.user_list(), ["root", "u"]);
    assert_eq!(auth.user_get("u").unwrap(), ["r"]);
    assert_eq!(auth.role_get("r").unwrap(), [perm(Access::Read, "/k", "")]);
    assert!(auth.authenticate(ROOT, "pw").is_ok());
    assert_eq!(auth.authenticate("u", ""), Err(AuthError::AuthFailed));
    assert!(auth.check("u", b"/k", b"", Access::Read).is_ok());
}

#[test]
fn deleting_a_role_takes_it_from_its_users() {
    let auth = with_role(vec![perm(Access::Read, "/k", "")]);
    auth.role_delete("r").unwrap();
    assert!(auth.user_get("u").unwrap().is_empty());
    assert_eq!(
        auth.role_revoke_permission("nope", b"/k", b""),
        Err(AuthError::RoleNotFound)
    );
    assert_eq!(auth.user_grant_role("u", "r"), Err(AuthError::RoleNotFound));
}
