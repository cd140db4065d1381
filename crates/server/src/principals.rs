//! The policies of a principal, compiled once and cached until the next IAM change.
//!
//! A user's identity policies (inline, attached, and each group's), permissions boundary and
//! tags are read from the store in one read ([`Store::user_policies`]), parsed and compiled by
//! crates/policy, and kept per user id. Every committed admin write bumps the store's
//! [`Store::iam_generation`]; the cache compares it on every lookup and starts afresh when it
//! moved, so a detached policy, a removed membership or a deleted user takes effect on the very
//! next request ("IAM changes apply immediately"). A load that raced a write is not cached.
//!
//! Roles are kept the same way, per role id ([`Store::role_policies`]): their identity
//! policies, boundary and tags for their sessions, and their trust policy for AssumeRole.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokengate_policy::{Policy, PolicyDocument, PolicyKind, SourceType, aws_managed_policy};
use tokengate_store::{AttachedPolicyDocument, InlinePolicy, Role, Store, StoreError, Tag, User};

use crate::error::ApiError;

/// Everything authorization knows of one user.
#[derive(Debug)]
pub struct UserAuthz {
    /// The user as stored now.
    pub user: User,
    /// The user's tags (they feed `aws:PrincipalTag/…`).
    pub tags: Vec<Tag>,
    /// Identity policies: the user's inline and attached ones, then each group's.
    pub identity: Vec<Policy>,
    /// The permissions boundary, if one is set.
    pub boundary: Option<Policy>,
}

/// Everything authorization knows of one role.
#[derive(Debug)]
pub struct RoleAuthz {
    /// The role as stored now.
    pub role: Role,
    /// The role's tags (`aws:PrincipalTag/…` for its sessions).
    pub tags: Vec<Tag>,
    /// Identity policies: the role's inline and attached ones.
    pub identity: Vec<Policy>,
    /// The permissions boundary, if one is set.
    pub boundary: Option<Policy>,
    /// The trust policy, compiled as a `Trust` document (the resource policy of
    /// `sts:AssumeRole`, policy.md §1.3).
    pub trust: Policy,
}

/// Compiled policies per user id, valid for one IAM generation.
#[derive(Default)]
pub struct PolicyCache {
    inner: RwLock<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    generation: u64,
    users: Entries<UserAuthz>,
    roles: Entries<RoleAuthz>,
    /// Compiled documents by their text: the policies of a group, or an AWS managed
    /// policy, are compiled once for all the users that have them.
    documents: HashMap<(PolicyKind, String), Arc<PolicyDocument>>,
}

/// Cached principals by id; `None` remembers that the id names nobody.
type Entries<T> = HashMap<String, Option<Arc<T>>>;

/// What the cache keeps per principal id (users' and roles' compiled policies): where in
/// the cache, and how it is read from the store.
trait Cached: Sized {
    fn entries(inner: &CacheInner) -> &Entries<Self>;
    fn entries_mut(inner: &mut CacheInner) -> &mut Entries<Self>;
    fn load(store: &dyn Store, id: &str, compiler: Compiler<'_>) -> Result<Option<Self>, ApiError>;
}

impl Cached for UserAuthz {
    fn entries(inner: &CacheInner) -> &Entries<Self> {
        &inner.users
    }
    fn entries_mut(inner: &mut CacheInner) -> &mut Entries<Self> {
        &mut inner.users
    }
    fn load(store: &dyn Store, id: &str, compiler: Compiler<'_>) -> Result<Option<Self>, ApiError> {
        load(store, id, compiler)
    }
}

impl Cached for RoleAuthz {
    fn entries(inner: &CacheInner) -> &Entries<Self> {
        &inner.roles
    }
    fn entries_mut(inner: &mut CacheInner) -> &mut Entries<Self> {
        &mut inner.roles
    }
    fn load(store: &dyn Store, id: &str, compiler: Compiler<'_>) -> Result<Option<Self>, ApiError> {
        load_role(store, id, compiler)
    }
}

impl CacheInner {
    /// Moves to `generation` (dropping everything) if it is newer. Generations only move
    /// forward: a load that started before a newer one was filed must not wipe it.
    fn advance(&mut self, generation: u64) {
        if generation > self.generation {
            self.users.clear();
            self.roles.clear();
            self.documents.clear();
            self.generation = generation;
        }
    }
}

/// Most users kept; past it the cache starts afresh (a bound, not an eviction policy).
const MAX_CACHED_USERS: usize = 100_000;
/// Most compiled documents kept. Session policies are caller-chosen text, so without a
/// bound every AssumeRole with a new one would grow the cache until the next IAM change.
const MAX_CACHED_DOCUMENTS: usize = 10_000;

impl PolicyCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The compiled policies of user `user_id`, or `None` when no such user exists (any
    /// more). A point read, run inline on the worker like the authentication read.
    pub fn user(
        &self,
        store: &dyn Store,
        user_id: &str,
    ) -> Result<Option<Arc<UserAuthz>>, ApiError> {
        self.cached(store, user_id)
    }

    /// The compiled policies of role `role_id` (`AROA…`), or `None` when no such role
    /// exists (any more). Cached like users, under the same generation.
    pub fn role(
        &self,
        store: &dyn Store,
        role_id: &str,
    ) -> Result<Option<Arc<RoleAuthz>>, ApiError> {
        self.cached(store, role_id)
    }

    /// Entry `id` of `T`'s map, loaded by `load` on a miss. Only what was read under the
    /// generation it is filed under is cached, and only while that generation is current.
    ///
    /// A generation that cannot be read (a shared database out of reach) fails the lookup
    /// (`ServiceUnavailable`): what was cached may have been changed on another replica.
    fn cached<T: Cached>(&self, store: &dyn Store, id: &str) -> Result<Option<Arc<T>>, ApiError> {
        let generation = store.checked_iam_generation()?;
        if let Ok(inner) = self.inner.read()
            && inner.generation == generation
            && let Some(hit) = T::entries(&inner).get(id)
        {
            return Ok(hit.clone());
        }
        let loaded = T::load(store, id, &|text, kind| {
            self.compile(text, kind, generation)
        })?
        .map(Arc::new);
        if let Ok(mut inner) = self.inner.write() {
            inner.advance(generation);
            if inner.generation == generation && store.iam_generation() == generation {
                if T::entries(&inner).len() >= MAX_CACHED_USERS {
                    T::entries_mut(&mut inner).clear();
                    inner.documents.clear();
                }
                T::entries_mut(&mut inner).insert(id.to_owned(), loaded.clone());
            }
        }
        Ok(loaded)
    }

    /// The identity policies of group `name` (the simulator's group source; not cached per
    /// group — documents go through the document cache), or `None` when there is no such
    /// group.
    pub fn group(&self, store: &dyn Store, name: &str) -> Result<Option<Vec<Policy>>, ApiError> {
        let generation = store.checked_iam_generation()?;
        let Some(g) = store.group_policies(name)? else {
            return Ok(None);
        };
        let mut identity = Vec::new();
        let compiler: Compiler<'_> = &|text, kind| self.compile(text, kind, generation);
        compile_set(
            &g.inline,
            &g.attached,
            SourceType::Group,
            compiler,
            &mut identity,
        )?;
        Ok(Some(identity))
    }

    /// `text` compiled as `kind` through the document cache (session policies: the same
    /// text passed to many sessions is compiled once per IAM generation).
    pub fn document(
        &self,
        store: &dyn Store,
        text: &str,
        kind: PolicyKind,
    ) -> Result<Arc<PolicyDocument>, ApiError> {
        self.compile(text, kind, store.checked_iam_generation()?)
    }
}

impl PolicyCache {
    /// `text` compiled as `kind`, from the document cache when the generation still holds.
    fn compile(
        &self,
        text: &str,
        kind: PolicyKind,
        generation: u64,
    ) -> Result<Arc<PolicyDocument>, ApiError> {
        let key = (kind, text.to_owned());
        if let Ok(inner) = self.inner.read()
            && inner.generation == generation
            && let Some(hit) = inner.documents.get(&key)
        {
            return Ok(Arc::clone(hit));
        }
        let compiled = Arc::new(compile(text, kind)?);
        if let Ok(mut inner) = self.inner.write() {
            inner.advance(generation);
            if inner.generation == generation {
                if inner.documents.len() >= MAX_CACHED_DOCUMENTS {
                    inner.documents.clear();
                }
                inner.documents.insert(key, Arc::clone(&compiled));
            }
        }
        Ok(compiled)
    }
}

/// Compiles a stored document (through a cache).
type Compiler<'a> = &'a dyn Fn(&str, PolicyKind) -> Result<Arc<PolicyDocument>, ApiError>;

fn load(
    store: &dyn Store,
    user_id: &str,
    compiler: Compiler<'_>,
) -> Result<Option<UserAuthz>, ApiError> {
    let Some(p) = store.user_policies(user_id).map_err(ApiError::from)? else {
        return Ok(None);
    };
    let mut identity = Vec::new();
    compile_set(
        &p.inline,
        &p.attached,
        SourceType::User,
        compiler,
        &mut identity,
    )?;
    for g in &p.groups {
        compile_set(
            &g.inline,
            &g.attached,
            SourceType::Group,
            compiler,
            &mut identity,
        )?;
    }
    let boundary = p
        .boundary
        .as_ref()
        .map(|b| attached_with(b, compiler))
        .transpose()?;
    Ok(Some(UserAuthz {
        user: p.user,
        tags: p.tags,
        identity,
        boundary,
    }))
}

fn load_role(
    store: &dyn Store,
    role_id: &str,
    compiler: Compiler<'_>,
) -> Result<Option<RoleAuthz>, ApiError> {
    let Some(p) = store.role_policies(role_id).map_err(ApiError::from)? else {
        return Ok(None);
    };
    let mut identity = Vec::new();
    compile_set(
        &p.inline,
        &p.attached,
        SourceType::Role,
        compiler,
        &mut identity,
    )?;
    let boundary = p
        .boundary
        .as_ref()
        .map(|b| attached_with(b, compiler))
        .transpose()?;
    let trust = Policy {
        id: "AssumeRolePolicyDocument".to_owned(),
        source: SourceType::Resource,
        // Principals bound at save time that now name nobody (or another entity) are
        // replaced by their old unique ids, which match no caller (crate::trust).
        document: compiler(
            &crate::trust::effective_trust_policy(store, &p.role)?,
            PolicyKind::Trust,
        )?,
    };
    Ok(Some(RoleAuthz {
        role: p.role,
        tags: p.tags,
        identity,
        boundary,
        trust,
    }))
}

/// The inline policies (`source`: whose they are) and the attached managed policies of one
/// user, group or role, compiled and appended to `out` in that order.
fn compile_set(
    inline: &[InlinePolicy],
    attached: &[AttachedPolicyDocument],
    source: SourceType,
    compiler: Compiler<'_>,
    out: &mut Vec<Policy>,
) -> Result<(), ApiError> {
    let kind = match source {
        SourceType::Group => PolicyKind::GroupInline,
        SourceType::Role => PolicyKind::RoleInline,
        _ => PolicyKind::UserInline,
    };
    for i in inline {
        out.push(Policy {
            id: i.name.clone(),
            source,
            document: compiler(&i.document, kind)?,
        });
    }
    for a in attached {
        out.push(attached_with(a, compiler)?);
    }
    Ok(())
}

/// A managed policy's default version: shipped (AWS managed) or stored (customer).
fn attached_with(a: &AttachedPolicyDocument, compiler: Compiler<'_>) -> Result<Policy, ApiError> {
    let (document, source, kind) = match (&a.document, aws_managed_policy(&a.arn)) {
        (Some(text), _) => (text.as_str(), SourceType::UserManaged, PolicyKind::Managed),
        (None, Some(aws)) => (aws.document, SourceType::AwsManaged, PolicyKind::AwsManaged),
        (None, None) => {
            return Err(ApiError::internal(StoreError::Backend(format!(
                "attached policy {} has no document",
                a.arn
            ))));
        }
    };
    Ok(Policy {
        id: a.arn.clone(),
        source,
        document: compiler(document, kind)?,
    })
}

/// Stored documents were validated when written; one that no longer parses (a newer
/// validator) is an internal error, never silently skipped: skipping a Deny would widen
/// access.
fn compile(text: &str, kind: PolicyKind) -> Result<PolicyDocument, ApiError> {
    PolicyDocument::parse(text, kind)
        .map_err(|e| ApiError::internal(format!("a stored policy document no longer parses: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokengate_store::{Group, PolicyTarget, SqliteStore};
    use tokengate_token::Secret;

    use super::*;

    const READ_ONLY: &str = "arn:aws:iam::aws:policy/IAMReadOnlyAccess";

    fn user(store: &SqliteStore, name: &str) -> String {
        let id = format!("AIDA{}", name.to_uppercase());
        store
            .create_user(&User {
                user_id: id.clone(),
                name: name.into(),
                path: "/".into(),
                created: 0,
            })
            .unwrap();
        id
    }

    fn store() -> SqliteStore {
        SqliteStore::open_in_memory(&Secret::new(vec![5; 32])).unwrap()
    }

    #[test]
    fn cached_until_an_iam_change_then_reloaded() {
        let s = store();
        let alice = user(&s, "alice");
        let target = PolicyTarget::User("alice".into());
        s.attach_policy(&target, READ_ONLY, true, 10).unwrap();
        let cache = PolicyCache::new();
        let first = cache.user(&s, &alice).unwrap().unwrap();
        assert_eq!(first.identity.len(), 1);
        assert_eq!(first.identity[0].source, SourceType::AwsManaged);
        // A hit is the same compiled value.
        let again = cache.user(&s, &alice).unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        // Any admin write moves the generation: the next lookup sees the detach.
        s.detach_policy(&target, READ_ONLY).unwrap();
        let after = cache.user(&s, &alice).unwrap().unwrap();
        assert!(after.identity.is_empty());
    }

    #[test]
    fn a_deleted_user_is_gone_on_the_next_lookup() {
        let s = store();
        let bob = user(&s, "bob");
        let cache = PolicyCache::new();
        assert!(cache.user(&s, &bob).unwrap().is_some());
        s.delete_user("bob").unwrap();
        assert!(cache.user(&s, &bob).unwrap().is_none());
        // A user re-created under the same name has another id; the old one stays gone.
        user(&s, "bob2");
        assert!(cache.user(&s, &bob).unwrap().is_none());
    }

    #[test]
    fn a_group_policy_is_compiled_once_for_all_its_members() {
        let s = store();
        let (carol, dave) = (user(&s, "carol"), user(&s, "dave"));
        s.create_group(
            &Group {
                group_id: "AGPATEAM".into(),
                name: "team".into(),
                path: "/".into(),
                created: 0,
            },
            10,
        )
        .unwrap();
        s.attach_policy(&PolicyTarget::Group("team".into()), READ_ONLY, true, 10)
            .unwrap();
        s.add_user_to_group("team", "carol", 10).unwrap();
        s.add_user_to_group("team", "dave", 10).unwrap();
        let cache = PolicyCache::new();
        let c = cache.user(&s, &carol).unwrap().unwrap();
        let d = cache.user(&s, &dave).unwrap().unwrap();
        assert!(Arc::ptr_eq(
            &c.identity[0].document,
            &d.identity[0].document
        ));
    }
}
