//! Users as authentication sees them: login names, the admin bootstrap, and the SuperUser
//! check. The records themselves are ordinary `users` / `permissions` store objects.

use std::io::Write as _;
use std::path::Path;

use vireo_model::{Domain, Permission, Role, User};
use vireo_store::{Filter, NameScope, ObjectWrite, Store, StoreError};

use super::{password, Auth};

/// The object every system-wide permission is granted on.
pub const SYSTEM_OBJECT_ID: &str = "aaa00000-0000-0000-0000-123456789aaa";
pub const SUPERUSER_ROLE_ID: &str = "00000000-0000-0000-0000-000000000001";
/// The authz domain of internal users and the authn profile users type in logins.
pub const INTERNAL_AUTHZ: &str = "internal-authz";
pub const INTERNAL_PROFILE: &str = "internal";
pub const ADMIN_PRINCIPAL: &str = "admin";
/// `user_name` of the admin as the API shows it, and its `users` record name.
pub const ADMIN_USER_NAME: &str = "admin@internal-authz";

/// Indexed attributes of `permissions` records, shared with the engine's permission code:
/// who holds it (`user`), which role (`role`), on what (`object_type`, `object`).
pub const PERM_USER: &str = "user";
pub const PERM_ROLE: &str = "role";
pub const PERM_OBJECT_TYPE: &str = "object_type";
pub const PERM_OBJECT: &str = "object";

/// oVirt's REST id of a directory domain or entry: the upper-case hex of its UTF-8 name
/// (`DirectoryEntryIdUtils.encode`, `DatatypeConverter.printHexBinary`), so the internal
/// domain is `696E7465726E616C2D617574687A`.
pub fn domain_id(name: &str) -> String {
    super::tokens::hex(name.as_bytes()).to_ascii_uppercase()
}

/// A login as typed (`admin@internal`), split the way oVirt's SSO does it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoginName {
    pub principal: String,
    /// The profile as typed (`internal`), used in error messages.
    pub profile: String,
    /// The user's `users` record name: `principal@authz`.
    pub user_name: String,
}

/// `user@profile`, split at the last `@` (principals may contain `@`). Profile `p` means
/// authz domain `p-authz`; an authz name is accepted as is. No profile: `None`, as oVirt
/// refuses logins without one.
pub(crate) fn parse_login(login: &str) -> Option<LoginName> {
    let (principal, profile) = login.rsplit_once('@')?;
    if principal.is_empty() || profile.is_empty() {
        return None;
    }
    let authz = if profile.ends_with("-authz") {
        profile.to_owned()
    } else {
        format!("{profile}-authz")
    };
    Some(LoginName {
        principal: principal.to_owned(),
        profile: profile.to_owned(),
        user_name: format!("{principal}@{authz}"),
    })
}

/// The store write for a user permission. `object_type` is the API element name of the
/// object (`system`, `vm`, `cluster`, `data_center`, …); a system permission shows no object
/// reference at all, as oVirt's `PermissionMapper` renders it.
pub fn permission_write(
    id: &str,
    role_id: &str,
    user_id: &str,
    object_type: &str,
    object_id: &str,
) -> ObjectWrite {
    let mut p = Permission {
        id: Some(id.to_owned()),
        role: Some(Box::new(Role {
            id: Some(role_id.to_owned()),
            ..Role::default()
        })),
        user: Some(Box::new(User {
            id: Some(user_id.to_owned()),
            ..User::default()
        })),
        ..Permission::default()
    };
    macro_rules! object_ref {
        ($($ty:literal => $field:ident: $model:ident),* $(,)?) => {
            match object_type {
                $($ty => p.$field = Some(Box::new(vireo_model::$model {
                    id: Some(object_id.to_owned()),
                    ..Default::default()
                })),)*
                _ => {}
            }
        };
    }
    object_ref!(
        "data_center" => data_center: DataCenter,
        "cluster" => cluster: Cluster,
        "host" => host: Host,
        "storage_domain" => storage_domain: StorageDomain,
        "vm" => vm: Vm,
        "vm_pool" => vm_pool: VmPool,
        "template" => template: Template,
        "disk" => disk: Disk,
    );
    let doc = String::from_utf8_lossy(&vireo_model::to_json(&p)).into_owned();
    ObjectWrite::new("permissions", id, doc)
        .attr(PERM_USER, user_id)
        .attr(PERM_ROLE, role_id)
        .attr(PERM_OBJECT_TYPE, object_type)
        .attr(PERM_OBJECT, object_id)
}

/// The admin as oVirt 4.5 shows it after engine-setup.
fn admin_user(id: &str) -> User {
    User {
        id: Some(id.to_owned()),
        name: Some(ADMIN_PRINCIPAL.to_owned()),
        user_name: Some(ADMIN_USER_NAME.to_owned()),
        principal: Some(ADMIN_PRINCIPAL.to_owned()),
        namespace: Some("*".to_owned()),
        email: Some("admin@localhost".to_owned()),
        // The external id of an internal user is its aaa-jdbc id; we use the user id.
        domain_entry_id: Some(domain_id(id)),
        domain: Some(Box::new(Domain {
            id: Some(domain_id(INTERNAL_AUTHZ)),
            name: Some(INTERNAL_AUTHZ.to_owned()),
            ..Domain::default()
        })),
        ..User::default()
    }
}

/// The store write for a user record (shared by the bootstrap and, later, user creation).
pub fn user_write(user: &User) -> ObjectWrite {
    let id = user.id.clone().unwrap_or_default();
    let doc = String::from_utf8_lossy(&vireo_model::to_json(user)).into_owned();
    let mut w = ObjectWrite::new("users", id, doc).unique(NameScope::Global);
    if let Some(n) = &user.user_name {
        w = w.name(n.clone());
    }
    if let Some(p) = &user.principal {
        w = w.attr("principal", p.clone());
    }
    if let Some(d) = user.domain.as_ref().and_then(|d| d.name.clone()) {
        w = w.attr("domain", d);
    }
    w
}

/// Whether `user_id` holds SuperUser on the system object.
pub(crate) async fn is_superuser(store: &Store, user_id: &str) -> Result<bool, StoreError> {
    let filter = Filter::And(vec![
        Filter::eq(PERM_USER, user_id),
        Filter::eq(PERM_ROLE, SUPERUSER_ROLE_ID),
        Filter::eq(PERM_OBJECT_TYPE, "system"),
    ]);
    Ok(store.count("permissions", &filter).await? > 0)
}

/// Writes `password` to `path`, readable by the owner only.
fn write_secret(path: &Path, password: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    // `mode` only applies when the file is created; tighten a file left from an earlier try.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    writeln!(f, "{password}")?;
    f.sync_all()
}

impl Auth {
    pub async fn bootstrap_admin(
        &self,
        env_password: Option<&str>,
        data_dir: &Path,
    ) -> anyhow::Result<Option<String>> {
        if self
            .store
            .get_by_name("users", ADMIN_USER_NAME, None)
            .await?
            .is_some()
        {
            return Ok(None);
        }
        let (password, generated) = match env_password {
            Some(p) if !p.is_empty() => (p.to_owned(), false),
            _ => (password::generate(), true),
        };
        let pw = password.clone();
        let phc = password::run(move || password::hash(&pw)).await??;

        let user_id = uuid::Uuid::new_v4().to_string();
        let user = user_write(&admin_user(&user_id));
        let perm_id = uuid::Uuid::new_v4().to_string();
        let perm = permission_write(
            &perm_id,
            SUPERUSER_ROLE_ID,
            &user_id,
            "system",
            SYSTEM_OBJECT_ID,
        );

        let mut tx = self.store.begin().await?;
        // Re-check under the write lock: two engines starting on one database must not both
        // create an admin (the unique name would refuse the second one anyway).
        if tx
            .get_by_name("users", ADMIN_USER_NAME, None)
            .await?
            .is_some()
        {
            return Ok(None);
        }
        tx.insert(&user).await?;
        tx.set_password_hash(&user_id, &phc).await?;
        tx.insert(&perm).await?;
        if generated {
            // Written before the commit: if this fails nothing is committed and the next start
            // tries again, instead of leaving an admin whose password nobody knows.
            std::fs::create_dir_all(data_dir)?;
            write_secret(&data_dir.join("admin-password"), &password)?;
        }
        tx.commit().await?;
        tracing::info!(
            user_id,
            "created {ADMIN_USER_NAME} with SuperUser on the system"
        );
        Ok(generated.then_some(password))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins() {
        let l = parse_login("admin@internal").unwrap();
        assert_eq!(l.user_name, "admin@internal-authz");
        assert_eq!(l.principal, "admin");
        assert_eq!(l.profile, "internal");
        assert_eq!(
            parse_login("admin@internal-authz").unwrap().user_name,
            "admin@internal-authz"
        );
        assert_eq!(
            parse_login("a@b.c@corp").unwrap().user_name,
            "a@b.c@corp-authz"
        );
        assert_eq!(parse_login("admin"), None);
        assert_eq!(parse_login("@internal"), None);
        assert_eq!(parse_login("admin@"), None);
    }

    #[test]
    fn domain_ids_match_ovirt() {
        assert_eq!(domain_id("internal-authz"), "696E7465726E616C2D617574687A");
    }

    #[test]
    fn system_permission_has_no_object_ref() {
        let w = permission_write("p", SUPERUSER_ROLE_ID, "u", "system", SYSTEM_OBJECT_ID);
        let v: serde_json::Value = serde_json::from_str(&w.doc).unwrap();
        assert_eq!(v["role"]["id"], SUPERUSER_ROLE_ID);
        assert_eq!(v["user"]["id"], "u");
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        let w = permission_write("p", "r", "u", "vm", "v1");
        let v: serde_json::Value = serde_json::from_str(&w.doc).unwrap();
        assert_eq!(v["vm"]["id"], "v1");
    }
}
