//! IAM roles: the role rows, their tags and permissions boundaries (migration
//! `0005_roles.sql`). A role's attached and inline policies go through the policy functions
//! of [`super::iam`] with [`crate::PolicyTarget::Role`], which find its tables here
//! ([`ROLE_TABLES`]).
//!
//! As in [`super::iam`], every write is one IMMEDIATE transaction through
//! [`SqliteStore::write`] (so the IAM generation moves), and every multi-statement read one
//! read transaction.

use rusqlite::{Connection, params};

use super::iam::{
    DOCUMENT_OF_ARN, TagTable, TargetTables, collect, count, one, policy_id, put_tags,
    read_attached_documents, read_inline, read_tags, remove_tags,
};
use super::{SqliteStore, backend, exists_or_backend};
use crate::{
    AttachedPolicyDocument, Entity, MAX_TAGS, PrincipalBinding, Role, RolePolicies, StoreError, Tag,
};

/// A role's attached and inline policy tables.
pub(super) const ROLE_TABLES: TargetTables = TargetTables {
    id_column: "role_id",
    attached: "role_attached_policy",
    inline: "role_inline_policy",
};

const ROLE_TAGS: TagTable = TagTable {
    table: "role_tag",
    id_column: "role_id",
};

/// The columns [`role_row`] reads, from `iam_role r`.
pub(super) const ROLE_COLUMNS: &str = "r.role_id, r.name, r.path, r.created,
     r.assume_role_policy, r.description, r.max_session_duration, r.last_used,
     r.last_used_region, r.trust_principals
     FROM iam_role r";

pub(super) fn role_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Role> {
    let seconds: i64 = r.get(6)?;
    Ok(Role {
        role_id: r.get(0)?,
        name: r.get(1)?,
        path: r.get(2)?,
        created: r.get(3)?,
        assume_role_policy: r.get(4)?,
        description: r.get(5)?,
        // Written from a u32 by this module only.
        max_session_duration: u32::try_from(seconds).unwrap_or(u32::MAX),
        last_used: r.get(7)?,
        last_used_region: r.get(8)?,
        trust_principals: decode_bindings(&r.get::<_, String>(9)?),
    })
}

/// `ARN<TAB>ID` lines (ARNs and ids have neither tabs nor newlines).
fn encode_bindings(bindings: &[PrincipalBinding]) -> String {
    bindings
        .iter()
        .map(|b| format!("{}\t{}\n", b.arn, b.unique_id))
        .collect()
}

fn decode_bindings(text: &str) -> Vec<PrincipalBinding> {
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(arn, id)| PrincipalBinding {
            arn: arn.to_owned(),
            unique_id: id.to_owned(),
        })
        .collect()
}

/// [`crate::Store::record_role_use`].
pub(super) fn record_role_use(
    store: &SqliteStore,
    role_id: &str,
    now: i64,
    region: &str,
) -> Result<(), StoreError> {
    store.write_login_state(|tx, _| {
        tx.execute(
            "UPDATE iam_role SET last_used = ?2, last_used_region = ?3
             WHERE role_id = ?1
               AND (last_used IS NULL OR last_used <= ?2 - ?4
                    OR last_used_region IS NOT ?3)",
            params![role_id, now, region, crate::ROLE_USE_GRANULARITY_SECS],
        )
        .map_err(backend)?;
        Ok(())
    })
}

/// The id of role `name` (ignoring case), or `NotFound(Role)`.
pub(super) fn role_id(tx: &Connection, name: &str) -> Result<String, StoreError> {
    one(
        tx,
        "SELECT role_id FROM iam_role WHERE name = ?1",
        [name],
        |r| r.get(0),
    )?
    .ok_or(StoreError::NotFound(Entity::Role))
}

/// Sets (`Some`) or removes (`None`) the boundary of the role with id `id`.
fn put_boundary(
    tx: &Connection,
    id: &str,
    arn: Option<&str>,
    aws_managed: bool,
) -> Result<(), StoreError> {
    let Some(arn) = arn else {
        tx.execute(
            "DELETE FROM role_permissions_boundary WHERE role_id = ?1",
            [id],
        )
        .map_err(backend)?;
        return Ok(());
    };
    if !aws_managed {
        policy_id(tx, arn)?;
    }
    tx.execute(
        "INSERT INTO role_permissions_boundary (role_id, policy_arn) VALUES (?1, ?2)
         ON CONFLICT (role_id) DO UPDATE SET policy_arn = excluded.policy_arn",
        [id, arn],
    )
    .map_err(backend)?;
    Ok(())
}

pub(super) fn create_role(
    store: &SqliteStore,
    role: &Role,
    tags: &[Tag],
    boundary: Option<(&str, bool)>,
    max_roles: usize,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        if count(
            tx,
            "SELECT count(*) FROM iam_role WHERE name = ?1",
            [&role.name],
        )? > 0
        {
            return Err(StoreError::AlreadyExists(Entity::Role));
        }
        if count(tx, "SELECT count(*) FROM iam_role", [])? >= max_roles {
            return Err(StoreError::LimitExceeded(Entity::Role));
        }
        tx.execute(
            "INSERT INTO iam_role (role_id, name, path, created, assume_role_policy,
                 description, max_session_duration, last_used, trust_principals)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                role.role_id,
                role.name,
                role.path,
                role.created,
                role.assume_role_policy,
                role.description,
                role.max_session_duration,
                role.last_used,
                encode_bindings(&role.trust_principals)
            ],
        )
        .map_err(exists_or_backend(Entity::Role))?;
        put_tags(tx, &ROLE_TAGS, &role.role_id, tags, MAX_TAGS)?;
        if let Some((arn, aws_managed)) = boundary {
            put_boundary(tx, &role.role_id, Some(arn), aws_managed)?;
        }
        Ok(())
    })
}

pub(super) fn role(store: &SqliteStore, name: &str) -> Result<Option<Role>, StoreError> {
    store.read_tx(|tx| {
        one(
            tx,
            &format!("SELECT {ROLE_COLUMNS} WHERE r.name = ?1"),
            [name],
            role_row,
        )
    })
}

pub(super) fn role_policies(
    store: &SqliteStore,
    role_id: &str,
) -> Result<Option<RolePolicies>, StoreError> {
    store.read_tx(|tx| {
        let Some(role) = one(
            tx,
            &format!("SELECT {ROLE_COLUMNS} WHERE r.role_id = ?1"),
            [role_id],
            role_row,
        )?
        else {
            return Ok(None);
        };
        let document = DOCUMENT_OF_ARN.replace("{arn}", "b.policy_arn");
        let boundary = one(
            tx,
            &format!(
                "SELECT b.policy_arn, {document} FROM role_permissions_boundary b
                 WHERE b.role_id = ?1"
            ),
            [role_id],
            |r| {
                Ok(AttachedPolicyDocument {
                    arn: r.get(0)?,
                    document: r.get(1)?,
                })
            },
        )?;
        Ok(Some(RolePolicies {
            tags: read_tags(tx, &ROLE_TAGS, role_id)?,
            inline: read_inline(tx, &ROLE_TABLES, role_id)?,
            attached: read_attached_documents(tx, &ROLE_TABLES, role_id)?,
            boundary,
            role,
        }))
    })
}

pub(super) fn list_roles(store: &SqliteStore, path_prefix: &str) -> Result<Vec<Role>, StoreError> {
    store.read_tx(|tx| {
        collect(
            tx,
            &format!(
                "SELECT {ROLE_COLUMNS} WHERE substr(r.path, 1, length(?1)) = ?1
                 ORDER BY r.name"
            ),
            [path_prefix],
            role_row,
        )
    })
}

pub(super) fn update_role(
    store: &SqliteStore,
    name: &str,
    description: Option<&str>,
    max_session_duration: Option<u32>,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let id = role_id(tx, name)?;
        tx.execute(
            "UPDATE iam_role SET description = coalesce(?1, description),
                 max_session_duration = coalesce(?2, max_session_duration)
             WHERE role_id = ?3",
            params![description, max_session_duration, id],
        )
        .map_err(backend)?;
        Ok(())
    })
}

pub(super) fn update_assume_role_policy(
    store: &SqliteStore,
    name: &str,
    document: &str,
    principals: &[PrincipalBinding],
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let id = role_id(tx, name)?;
        tx.execute(
            "UPDATE iam_role SET assume_role_policy = ?1, trust_principals = ?3
             WHERE role_id = ?2",
            [document, &id, &encode_bindings(principals)],
        )
        .map_err(backend)?;
        Ok(())
    })
}

pub(super) fn delete_role(store: &SqliteStore, name: &str) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let id = role_id(tx, name)?;
        // AWS's order (DeleteRole): inline policies, then attached policies.
        let blockers = [
            (ROLE_TABLES.inline, Entity::InlinePolicy),
            (ROLE_TABLES.attached, Entity::AttachedPolicy),
        ];
        for (table, dependents) in blockers {
            let sql = format!("SELECT count(*) FROM {table} WHERE role_id = ?1");
            if count(tx, &sql, [&id])? > 0 {
                return Err(StoreError::DeleteConflict {
                    entity: Entity::Role,
                    dependents,
                });
            }
        }
        // Tags and the boundary go with it (ON DELETE CASCADE).
        tx.execute("DELETE FROM iam_role WHERE role_id = ?1", [&id])
            .map_err(backend)?;
        Ok(())
    })
}

pub(super) fn tag_role(
    store: &SqliteStore,
    role: &str,
    tags: &[Tag],
    max_tags: usize,
) -> Result<(), StoreError> {
    store.write(|tx, _| put_tags(tx, &ROLE_TAGS, &role_id(tx, role)?, tags, max_tags))
}

pub(super) fn untag_role(
    store: &SqliteStore,
    role: &str,
    keys: &[String],
) -> Result<(), StoreError> {
    store.write(|tx, _| remove_tags(tx, &ROLE_TAGS, &role_id(tx, role)?, keys))
}

pub(super) fn role_tags(store: &SqliteStore, role: &str) -> Result<Vec<Tag>, StoreError> {
    store.read_tx(|tx| read_tags(tx, &ROLE_TAGS, &role_id(tx, role)?))
}

pub(super) fn set_role_permissions_boundary(
    store: &SqliteStore,
    role: &str,
    arn: Option<&str>,
    aws_managed: bool,
) -> Result<(), StoreError> {
    store.write(|tx, _| put_boundary(tx, &role_id(tx, role)?, arn, aws_managed))
}

pub(super) fn role_permissions_boundary(
    store: &SqliteStore,
    role: &str,
) -> Result<Option<String>, StoreError> {
    store.read_tx(|tx| {
        let id = role_id(tx, role)?;
        one(
            tx,
            "SELECT policy_arn FROM role_permissions_boundary WHERE role_id = ?1",
            [&id],
            |r| r.get(0),
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::sqlite::SqliteStore;
    use crate::sqlite::fixtures::*;
    use crate::{
        AttachedPolicy, Entity, NewManagedPolicy, PolicyTarget, PolicyUsage, PrincipalBinding,
        Role, Store, StoreError, Tag,
    };

    const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
    const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[]}"#;
    const DOC: &str = r#"{"Version":"2012-10-17","Statement":[]}"#;

    fn store() -> SqliteStore {
        SqliteStore::open_in_memory(&master()).unwrap()
    }

    fn role(name: &str) -> Role {
        Role {
            role_id: format!("AROA{name}"),
            name: name.into(),
            path: "/".into(),
            created: 5,
            assume_role_policy: TRUST.into(),
            description: String::new(),
            max_session_duration: 3600,
            last_used: None,
            last_used_region: None,
            trust_principals: vec![PrincipalBinding {
                arn: "arn:aws:iam::000000000000:user/alice".into(),
                unique_id: "AIDAALICE".into(),
            }],
        }
    }

    fn tag(key: &str, value: &str) -> Tag {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }

    fn r(name: &str) -> PolicyTarget {
        PolicyTarget::Role(name.into())
    }

    fn policy(name: &str) -> NewManagedPolicy {
        NewManagedPolicy {
            policy_id: format!("ANPA{name}"),
            name: name.into(),
            path: "/".into(),
            arn: format!("arn:aws:iam::000000000000:policy/{name}"),
            description: String::new(),
            document: DOC.into(),
            created: 1,
            tags: vec![],
        }
    }

    fn counts(s: &SqliteStore, arn: &str) -> (u32, u32) {
        let c = s.policy_use_counts(arn).unwrap();
        (c.attachments, c.boundary_uses)
    }

    #[test]
    fn role_use_is_recorded_coarsely_and_is_not_an_iam_change() {
        let s = store();
        s.create_role(&role("used"), &[], None, 2).unwrap();
        let generation = s.iam_generation();
        s.record_role_use("AROAused", 1_000, "us-east-1").unwrap();
        let r = s.role("used").unwrap().unwrap();
        assert_eq!(
            (r.last_used, r.last_used_region.as_deref()),
            (Some(1_000), Some("us-east-1"))
        );
        // Within the granularity: unchanged; past it, or from another region: moved.
        s.record_role_use("AROAused", 1_059, "us-east-1").unwrap();
        assert_eq!(s.role("used").unwrap().unwrap().last_used, Some(1_000));
        s.record_role_use("AROAused", 1_060, "us-east-1").unwrap();
        assert_eq!(s.role("used").unwrap().unwrap().last_used, Some(1_060));
        s.record_role_use("AROAused", 1_061, "eu-west-1").unwrap();
        let r = s.role("used").unwrap().unwrap();
        assert_eq!(
            (r.last_used, r.last_used_region.as_deref()),
            (Some(1_061), Some("eu-west-1"))
        );
        assert_eq!(s.iam_generation(), generation);
        // A role that is gone is not an error.
        s.record_role_use("AROAgone", 1_100, "us-east-1").unwrap();
    }

    #[test]
    fn roles_are_unique_ignoring_case_limited_listed_and_updated() {
        let s = store();
        s.create_role(&role("Deploy"), &[], None, 2).unwrap();
        let mut dup = role("DEPLOY");
        dup.role_id = "AROAother".into();
        assert_eq!(
            s.create_role(&dup, &[], None, 2),
            Err(StoreError::AlreadyExists(Entity::Role))
        );
        let mut ci = role("ci");
        ci.path = "/build/".into();
        s.create_role(&ci, &[], None, 2).unwrap();
        assert_eq!(
            s.create_role(&role("third"), &[], None, 2),
            Err(StoreError::LimitExceeded(Entity::Role))
        );
        assert_eq!(s.role("deploy").unwrap(), Some(role("Deploy")));
        assert_eq!(s.role("nobody").unwrap(), None);
        let names: Vec<_> = s
            .list_roles("/")
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        // Ordered ignoring case, as names compare.
        assert_eq!(names, ["ci", "Deploy"]);
        assert_eq!(s.list_roles("/build/").unwrap(), [ci]);
        let generation = s.iam_generation();
        s.update_role("deploy", Some("deploys"), None).unwrap();
        s.update_role("deploy", None, Some(7200)).unwrap();
        let bob = PrincipalBinding {
            arn: "arn:aws:iam::000000000000:user/bob".into(),
            unique_id: "AIDABOB".into(),
        };
        s.update_assume_role_policy("deploy", "{}", std::slice::from_ref(&bob))
            .unwrap();
        assert!(s.iam_generation() >= generation + 3);
        let got = s.role("deploy").unwrap().unwrap();
        assert_eq!(got.description, "deploys");
        assert_eq!(got.max_session_duration, 7200);
        assert_eq!(got.assume_role_policy, "{}");
        assert_eq!(got.trust_principals, [bob]);
        assert_eq!(
            s.update_role("nobody", None, None),
            Err(StoreError::NotFound(Entity::Role))
        );
        assert_eq!(
            s.update_assume_role_policy("nobody", "{}", &[]),
            Err(StoreError::NotFound(Entity::Role))
        );
    }

    #[test]
    fn create_role_writes_tags_and_boundary_or_nothing() {
        let s = store();
        s.create_policy(&policy("fence"), 10).unwrap();
        let fence = "arn:aws:iam::000000000000:policy/fence";
        s.create_role(
            &role("a"),
            &[tag("team", "x"), tag("Env", "")],
            Some((fence, false)),
            10,
        )
        .unwrap();
        assert_eq!(
            s.role_tags("a").unwrap(),
            [tag("Env", ""), tag("team", "x")]
        );
        assert_eq!(
            s.role_permissions_boundary("A").unwrap().as_deref(),
            Some(fence)
        );
        assert_eq!(counts(&s, fence), (0, 1));
        // A missing customer boundary, or too many tags: no role.
        let missing = "arn:aws:iam::000000000000:policy/missing";
        assert_eq!(
            s.create_role(&role("b"), &[], Some((missing, false)), 10),
            Err(StoreError::NotFound(Entity::Policy))
        );
        assert_eq!(s.role("b").unwrap(), None);
        let many: Vec<_> = (0..51).map(|i| tag(&format!("k{i}"), "")).collect();
        assert_eq!(
            s.create_role(&role("b"), &many, None, 10),
            Err(StoreError::LimitExceeded(Entity::Tag))
        );
        assert_eq!(s.role("b").unwrap(), None);
        s.create_role(&role("b"), &[], Some((ADMIN, true)), 10)
            .unwrap();
        assert_eq!(counts(&s, ADMIN), (0, 1));
        // Deleting the policy is refused while it is a role's boundary.
        assert_eq!(
            s.delete_policy(fence),
            Err(StoreError::DeleteConflict {
                entity: Entity::Policy,
                dependents: Entity::AttachedPolicy
            })
        );
        let used = s
            .policy_entities(fence, Some(PolicyUsage::Boundary))
            .unwrap();
        assert_eq!(used.roles.len(), 1);
        assert!(
            s.policy_entities(fence, Some(PolicyUsage::Permissions))
                .unwrap()
                .roles
                .is_empty()
        );
        // The boundary goes with the role.
        s.delete_role("a").unwrap();
        assert_eq!(counts(&s, fence), (0, 0));
        s.delete_policy(fence).unwrap();
    }

    #[test]
    fn role_tags_and_boundaries() {
        let s = store();
        s.create_role(&role("a"), &[], None, 10).unwrap();
        s.tag_role("A", &[tag("k", "1"), tag("j", "2")], 2).unwrap();
        s.tag_role("a", &[tag("K", "3")], 2).unwrap();
        assert_eq!(s.role_tags("a").unwrap(), [tag("j", "2"), tag("K", "3")]);
        assert_eq!(
            s.tag_role("a", &[tag("x", "")], 2),
            Err(StoreError::LimitExceeded(Entity::Tag))
        );
        s.untag_role("a", &["k".into(), "absent".into()]).unwrap();
        assert_eq!(s.role_tags("a").unwrap(), [tag("j", "2")]);
        for missing in [
            s.tag_role("nobody", &[], 2),
            s.untag_role("nobody", &[]),
            s.role_tags("nobody").map(|_| ()),
            s.set_role_permissions_boundary("nobody", None, false),
            s.role_permissions_boundary("nobody").map(|_| ()),
        ] {
            assert_eq!(missing, Err(StoreError::NotFound(Entity::Role)));
        }
        assert_eq!(
            s.set_role_permissions_boundary("a", Some("arn:aws:iam::000000000000:policy/x"), false),
            Err(StoreError::NotFound(Entity::Policy))
        );
        s.set_role_permissions_boundary("a", Some(ADMIN), true)
            .unwrap();
        assert_eq!(
            s.role_permissions_boundary("a").unwrap().as_deref(),
            Some(ADMIN)
        );
        s.set_role_permissions_boundary("a", None, false).unwrap();
        s.set_role_permissions_boundary("a", None, false).unwrap();
        assert_eq!(s.role_permissions_boundary("a").unwrap(), None);
    }

    #[test]
    fn role_policies_reads_a_role_by_id_with_everything_authorization_needs() {
        let s = store();
        assert!(s.role_policies("AROAa").unwrap().is_none());
        s.create_role(&role("a"), &[tag("team", "red")], Some((ADMIN, true)), 10)
            .unwrap();
        s.create_policy(&policy("p"), 10).unwrap();
        let p = "arn:aws:iam::000000000000:policy/p";
        s.attach_policy(&r("a"), p, false, 10).unwrap();
        s.put_inline_policy(&r("a"), "inline", DOC, 10, 10_240)
            .unwrap();
        let got = s.role_policies("AROAa").unwrap().unwrap();
        assert_eq!(got.role, role("a"));
        assert_eq!(got.tags, [tag("team", "red")]);
        assert_eq!(got.inline.len(), 1);
        assert_eq!(got.attached.len(), 1);
        assert_eq!(got.attached[0].document.as_deref(), Some(DOC));
        let boundary = got.boundary.unwrap();
        assert_eq!((boundary.arn.as_str(), boundary.document), (ADMIN, None));
        s.detach_policy(&r("a"), p).unwrap();
    }

    #[test]
    fn role_policies_count_and_block_deletes_in_aws_order() {
        let s = store();
        s.create_role(&role("a"), &[], None, 10).unwrap();
        s.create_policy(&policy("p"), 10).unwrap();
        let p = "arn:aws:iam::000000000000:policy/p";
        s.attach_policy(&r("A"), p, false, 10).unwrap();
        s.attach_policy(&r("a"), ADMIN, true, 10).unwrap();
        assert_eq!(
            s.attached_policies(&r("a")).unwrap(),
            [
                AttachedPolicy {
                    name: "p".into(),
                    arn: p.into()
                },
                AttachedPolicy {
                    name: "AdministratorAccess".into(),
                    arn: ADMIN.into()
                }
            ]
        );
        assert_eq!(counts(&s, p), (1, 0));
        assert_eq!(s.managed_policy(p).unwrap().unwrap().attachment_count, 1);
        let entities = s.policy_entities(p, None).unwrap();
        assert_eq!(entities.roles, [role("a")]);
        assert!(entities.users.is_empty() && entities.groups.is_empty());
        assert_eq!(
            s.attach_policy(&r("nobody"), ADMIN, true, 10),
            Err(StoreError::NotFound(Entity::Role))
        );
        s.put_inline_policy(&r("a"), "inline", DOC, 10_000, 10_240)
            .unwrap();
        assert_eq!(
            s.put_inline_policy(&r("a"), "other", DOC, 241, 10_240),
            Err(StoreError::LimitExceeded(Entity::InlinePolicy))
        );
        assert_eq!(s.inline_policy_names(&r("a")).unwrap(), ["inline"]);
        assert_eq!(
            s.inline_policy(&r("a"), "INLINE").unwrap().as_deref(),
            Some(DOC)
        );
        let conflict = |dependents| {
            Err(StoreError::DeleteConflict {
                entity: Entity::Role,
                dependents,
            })
        };
        assert_eq!(s.delete_role("a"), conflict(Entity::InlinePolicy));
        s.delete_inline_policy(&r("a"), "inline").unwrap();
        assert_eq!(s.delete_role("a"), conflict(Entity::AttachedPolicy));
        assert_eq!(
            s.delete_policy(p),
            Err(StoreError::DeleteConflict {
                entity: Entity::Policy,
                dependents: Entity::AttachedPolicy
            })
        );
        s.detach_policy(&r("a"), p).unwrap();
        s.detach_policy(&r("a"), ADMIN).unwrap();
        assert_eq!(
            s.detach_policy(&r("a"), ADMIN),
            Err(StoreError::NotFound(Entity::AttachedPolicy))
        );
        s.tag_role("a", &[tag("k", "v")], 50).unwrap();
        s.delete_role("a").unwrap();
        assert_eq!(s.delete_role("a"), Err(StoreError::NotFound(Entity::Role)));
        // Re-created under the same name, it starts clean.
        s.create_role(&role("a"), &[], None, 10).unwrap();
        assert!(s.role_tags("a").unwrap().is_empty());
        s.delete_policy(p).unwrap();
    }
}
