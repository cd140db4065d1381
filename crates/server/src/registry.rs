//! The action registry: the one table of every API action tokengate answers — its API,
//! handler family, access level, how its resource ARN is built, and its handler.
//!
//! Routing (`InvalidAction`), authorization ([`crate::authz`]), the audit hook and the API
//! guess before authentication ([`api_of`]) all read [`ACTIONS`]; nothing else keeps a list
//! of actions. Names match exactly, as AWS's do (`createuser` is not `CreateUser`).
//!
//! The vocabulary of the table lives in [`crate::action`] and is re-exported here.

pub use crate::action::{
    AccessLevel, ActionKey, ActionSpec, Api, Call, Family, HandlerFuture, Reply, ResourceInput,
    ResourceSpec,
};
use crate::handlers::{advisor, audit, passwords, reports};
use crate::handlers::{groups, mfa_devices, policies, roles, security_keys, simulator, sts, users};

use AccessLevel::{List, PermissionsManagement, Read, Tagging, Write};
use Family::{Advisor, Audit, Passwords, Reports};
use Family::{Groups, MfaDevices, Policies, Roles, SecurityKeys, Simulator, Sts, UsersAndKeys};
use ResourceSpec::{Any, Custom, Group, Mfa, Policy, Role, User, VirtualMfaName};

/// A handler of the form `async fn(&Arc<AppState>, &Caller, &Params) -> Result<R, ApiError>`
/// (`R` a [`Reply`]) as a `fn(Call) -> HandlerFuture`.
macro_rules! run {
    ($handler:path) => {
        |call: Call| -> HandlerFuture {
            Box::pin(async move {
                $handler(&call.state, &call.caller, &call.params)
                    .await
                    .map(Reply::into_reply)
            })
        }
    };
}

/// A handler of the form `async fn(Call) -> Result<Option<String>, ApiError>` as a
/// `fn(Call) -> HandlerFuture`.
macro_rules! call {
    ($handler:path) => {
        |call: Call| -> HandlerFuture { Box::pin($handler(call)) }
    };
}

/// An IAM action.
const fn iam(
    name: &'static str,
    family: Family,
    access: AccessLevel,
    resource: ResourceSpec,
    handler: fn(Call) -> HandlerFuture,
) -> ActionSpec {
    ActionSpec {
        name,
        api: Api::Iam,
        family,
        access,
        resource,
        handler,
    }
}

/// An STS action.
const fn sts(
    name: &'static str,
    family: Family,
    access: AccessLevel,
    resource: ResourceSpec,
    handler: fn(Call) -> HandlerFuture,
) -> ActionSpec {
    ActionSpec {
        name,
        api: Api::Sts,
        family,
        access,
        resource,
        handler,
    }
}

/// A CloudTrail action (JSON 1.1 protocol).
const fn cloudtrail(
    name: &'static str,
    family: Family,
    access: AccessLevel,
    resource: ResourceSpec,
    handler: fn(Call) -> HandlerFuture,
) -> ActionSpec {
    ActionSpec {
        name,
        api: Api::CloudTrail,
        family,
        access,
        resource,
        handler,
    }
}

const USER_NAME: ResourceSpec = User { param: "UserName" };
const SERIAL: ResourceSpec = Mfa {
    param: "SerialNumber",
};
const GROUP_NAME: ResourceSpec = Group { param: "GroupName" };
const ROLE_NAME: ResourceSpec = Role { param: "RoleName" };
const POLICY_ARN: ResourceSpec = Policy { param: "PolicyArn" };
const VIRTUAL_MFA_NAME: ResourceSpec = VirtualMfaName {
    name_param: "VirtualMFADeviceName",
    path_param: "Path",
};

/// Every API action: name, family, access level, resource; then the handler.
#[rustfmt::skip]
pub static ACTIONS: &[ActionSpec] = &[
    // Users and access keys.
    iam("CreateUser", UsersAndKeys, Write, Custom(users::create_user_resource),
        run!(users::create_user)),
    iam("GetUser", UsersAndKeys, Read, USER_NAME,
        run!(users::get_user)),
    iam("ListUsers", UsersAndKeys, List, Custom(users::list_users_resource),
        run!(users::list_users)),
    iam("DeleteUser", UsersAndKeys, Write, USER_NAME,
        run!(users::delete_user)),
    iam("CreateAccessKey", UsersAndKeys, Write, USER_NAME,
        run!(users::create_access_key)),
    iam("ListAccessKeys", UsersAndKeys, List, USER_NAME,
        run!(users::list_access_keys)),
    iam("UpdateAccessKey", UsersAndKeys, Write, USER_NAME,
        run!(users::update_access_key)),
    iam("DeleteAccessKey", UsersAndKeys, Write, USER_NAME,
        run!(users::delete_access_key)),
    iam("TagUser", UsersAndKeys, Tagging, USER_NAME,
        run!(users::tag_user)),
    iam("UntagUser", UsersAndKeys, Tagging, USER_NAME,
        run!(users::untag_user)),
    iam("ListUserTags", UsersAndKeys, List, USER_NAME,
        run!(users::list_user_tags)),
    // Groups.
    iam("CreateGroup", Groups, Write, GROUP_NAME, call!(groups::create_group)),
    iam("GetGroup", Groups, Read, GROUP_NAME, call!(groups::get_group)),
    iam("ListGroups", Groups, List, Any, call!(groups::list_groups)),
    iam("UpdateGroup", Groups, Write, GROUP_NAME, call!(groups::update_group)),
    iam("DeleteGroup", Groups, Write, GROUP_NAME, call!(groups::delete_group)),
    iam("AddUserToGroup", Groups, Write, GROUP_NAME, call!(groups::add_user_to_group)),
    iam("RemoveUserFromGroup", Groups, Write, GROUP_NAME,
        call!(groups::remove_user_from_group)),
    iam("ListGroupsForUser", Groups, List, USER_NAME, call!(groups::list_groups_for_user)),
    // Roles (assuming them is not here yet).
    iam("CreateRole", Roles, Write, Custom(roles::create_role_resource),
        call!(roles::create_role)),
    iam("GetRole", Roles, Read, ROLE_NAME, call!(roles::get_role)),
    iam("ListRoles", Roles, List, Custom(roles::list_roles_resource), call!(roles::list_roles)),
    iam("UpdateRole", Roles, Write, ROLE_NAME, call!(roles::update_role)),
    iam("UpdateRoleDescription", Roles, Write, ROLE_NAME, call!(roles::update_role)),
    iam("UpdateAssumeRolePolicy", Roles, PermissionsManagement, ROLE_NAME,
        call!(roles::update_assume_role_policy)),
    iam("DeleteRole", Roles, Write, ROLE_NAME, call!(roles::delete_role)),
    iam("TagRole", Roles, Tagging, ROLE_NAME, call!(roles::tag_role)),
    iam("UntagRole", Roles, Tagging, ROLE_NAME, call!(roles::untag_role)),
    iam("ListRoleTags", Roles, List, ROLE_NAME, call!(roles::list_role_tags)),
    // Managed policies and their versions.
    iam("CreatePolicy", Policies, PermissionsManagement, Custom(policies::create_resource),
        call!(policies::create_policy)),
    iam("GetPolicy", Policies, Read, POLICY_ARN, call!(policies::get_policy)),
    iam("ListPolicies", Policies, List, Any, call!(policies::list_policies)),
    iam("DeletePolicy", Policies, PermissionsManagement, POLICY_ARN,
        call!(policies::delete_policy)),
    iam("CreatePolicyVersion", Policies, PermissionsManagement, POLICY_ARN,
        call!(policies::create_policy_version)),
    iam("GetPolicyVersion", Policies, Read, POLICY_ARN, call!(policies::get_policy_version)),
    iam("ListPolicyVersions", Policies, List, POLICY_ARN,
        call!(policies::list_policy_versions)),
    iam("DeletePolicyVersion", Policies, PermissionsManagement, POLICY_ARN,
        call!(policies::delete_policy_version)),
    iam("SetDefaultPolicyVersion", Policies, PermissionsManagement, POLICY_ARN,
        call!(policies::set_default_policy_version)),
    iam("ListEntitiesForPolicy", Policies, List, POLICY_ARN,
        call!(policies::list_entities_for_policy)),
    iam("TagPolicy", Policies, Tagging, POLICY_ARN, call!(policies::tag_policy)),
    iam("UntagPolicy", Policies, Tagging, POLICY_ARN, call!(policies::untag_policy)),
    iam("ListPolicyTags", Policies, List, POLICY_ARN, call!(policies::list_policy_tags)),
    // Attached and inline policies of users and groups; users' permissions boundaries.
    iam("AttachUserPolicy", Policies, PermissionsManagement, USER_NAME,
        call!(policies::attach_policy)),
    iam("DetachUserPolicy", Policies, PermissionsManagement, USER_NAME,
        call!(policies::detach_policy)),
    iam("ListAttachedUserPolicies", Policies, List, USER_NAME,
        call!(policies::list_attached_policies)),
    iam("AttachGroupPolicy", Policies, PermissionsManagement, GROUP_NAME,
        call!(policies::attach_policy)),
    iam("DetachGroupPolicy", Policies, PermissionsManagement, GROUP_NAME,
        call!(policies::detach_policy)),
    iam("ListAttachedGroupPolicies", Policies, List, GROUP_NAME,
        call!(policies::list_attached_policies)),
    iam("PutUserPolicy", Policies, PermissionsManagement, USER_NAME,
        call!(policies::put_inline_policy)),
    iam("GetUserPolicy", Policies, Read, USER_NAME, call!(policies::get_inline_policy)),
    iam("DeleteUserPolicy", Policies, PermissionsManagement, USER_NAME,
        call!(policies::delete_inline_policy)),
    iam("ListUserPolicies", Policies, List, USER_NAME, call!(policies::list_inline_policies)),
    iam("PutGroupPolicy", Policies, PermissionsManagement, GROUP_NAME,
        call!(policies::put_inline_policy)),
    iam("GetGroupPolicy", Policies, Read, GROUP_NAME, call!(policies::get_inline_policy)),
    iam("DeleteGroupPolicy", Policies, PermissionsManagement, GROUP_NAME,
        call!(policies::delete_inline_policy)),
    iam("ListGroupPolicies", Policies, List, GROUP_NAME,
        call!(policies::list_inline_policies)),
    iam("PutUserPermissionsBoundary", Policies, PermissionsManagement, USER_NAME,
        call!(policies::put_permissions_boundary)),
    iam("DeleteUserPermissionsBoundary", Policies, PermissionsManagement, USER_NAME,
        call!(policies::delete_permissions_boundary)),
    // Attached and inline policies of roles; roles' permissions boundaries.
    iam("AttachRolePolicy", Policies, PermissionsManagement, ROLE_NAME,
        call!(policies::attach_policy)),
    iam("DetachRolePolicy", Policies, PermissionsManagement, ROLE_NAME,
        call!(policies::detach_policy)),
    iam("ListAttachedRolePolicies", Policies, List, ROLE_NAME,
        call!(policies::list_attached_policies)),
    iam("PutRolePolicy", Policies, PermissionsManagement, ROLE_NAME,
        call!(policies::put_inline_policy)),
    iam("GetRolePolicy", Policies, Read, ROLE_NAME, call!(policies::get_inline_policy)),
    iam("DeleteRolePolicy", Policies, PermissionsManagement, ROLE_NAME,
        call!(policies::delete_inline_policy)),
    iam("ListRolePolicies", Policies, List, ROLE_NAME, call!(policies::list_inline_policies)),
    iam("PutRolePermissionsBoundary", Policies, PermissionsManagement, ROLE_NAME,
        call!(policies::put_permissions_boundary)),
    iam("DeleteRolePermissionsBoundary", Policies, PermissionsManagement, ROLE_NAME,
        call!(policies::delete_permissions_boundary)),
    // The policy simulator.
    iam("SimulateCustomPolicy", Simulator, Read, Any,
        call!(simulator::simulate_custom_policy)),
    iam("SimulatePrincipalPolicy", Simulator, Read, Custom(simulator::source_resource),
        call!(simulator::simulate_principal_policy)),
    iam("GetContextKeysForCustomPolicy", Simulator, Read, Any,
        call!(simulator::get_context_keys_for_custom_policy)),
    iam("GetContextKeysForPrincipalPolicy", Simulator, Read, Custom(simulator::source_resource),
        call!(simulator::get_context_keys_for_principal_policy)),
    // TOTP MFA devices.
    iam("CreateVirtualMFADevice", MfaDevices, Write, VIRTUAL_MFA_NAME,
        run!(mfa_devices::create_virtual)),
    iam("EnableMFADevice", MfaDevices, Write, USER_NAME,
        run!(mfa_devices::enable)),
    iam("ResyncMFADevice", MfaDevices, Write, USER_NAME,
        run!(mfa_devices::resync)),
    // AWS's service authorization reference: DeactivateMFADevice's resource is the user
    // (so "manage your own MFA" grants it on `user/${aws:username}`).
    iam("DeactivateMFADevice", MfaDevices, Write, USER_NAME,
        run!(mfa_devices::deactivate)),
    iam("DeleteVirtualMFADevice", MfaDevices, Write, SERIAL,
        run!(mfa_devices::delete_virtual)),
    iam("ListMFADevices", MfaDevices, List, USER_NAME,
        run!(mfa_devices::list_for_user)),
    iam("ListVirtualMFADevices", MfaDevices, List, Custom(mfa_devices::list_virtual_resource),
        run!(mfa_devices::list_virtual)),
    iam("ImportHardwareMFADevice", MfaDevices, Write, SERIAL,
        run!(mfa_devices::import_hardware)),
    // Security keys: registration (IAM, authorized as EnableMFADevice) and login (STS).
    iam("CreateSecurityKeyRegistrationChallenge", SecurityKeys, Write, USER_NAME,
        run!(security_keys::registration_challenge)),
    iam("EnableSecurityKey", SecurityKeys, Write, Custom(security_keys::enable_resource),
        run!(security_keys::enable)),
    iam("GetMFADevice", SecurityKeys, Read, USER_NAME,
        run!(security_keys::get_mfa_device)),
    sts("GetSecurityKeyChallenge", SecurityKeys, Read, Any,
        run!(security_keys::login_challenge)),
    sts("GetSessionTokenWithSecurityKey", SecurityKeys, Read, Any,
        run!(security_keys::session_token)),
    // STS.
    sts("GetCallerIdentity", Sts, Read, Any,
        run!(sts::get_caller_identity)),
    sts("GetAccessKeyInfo", Sts, Read, Custom(sts::caller_resource),
        run!(sts::get_access_key_info)),
    sts("GetSessionToken", Sts, Read, Any,
        run!(sts::get_session_token)),
    // The resource is the role (RoleArn); its trust policy is the resource policy.
    sts("AssumeRole", Sts, Write, Custom(sts::role_arn_resource),
        run!(sts::assume_role)),
    // AssumeRole with a security-key touch as its second factor (docs/security-keys.md),
    // authorized as sts:AssumeRole.
    sts("AssumeRoleWithSecurityKey", Sts, Write, Custom(sts::role_arn_resource),
        run!(sts::assume_role)),
    // The resource is the calling user (policy.md §5.2).
    sts("GetFederationToken", Sts, Read, Custom(sts::caller_resource),
        run!(sts::get_federation_token)),
    // Console passwords: the account policy has no resource (`*`); login profiles are the
    // user's; ChangePassword is always the caller's own user.
    iam("UpdateAccountPasswordPolicy", Passwords, Write, Any,
        run!(passwords::update_account_password_policy)),
    iam("GetAccountPasswordPolicy", Passwords, Read, Any,
        run!(passwords::get_account_password_policy)),
    iam("DeleteAccountPasswordPolicy", Passwords, Write, Any,
        run!(passwords::delete_account_password_policy)),
    iam("CreateLoginProfile", Passwords, Write, USER_NAME,
        run!(passwords::create_login_profile)),
    iam("GetLoginProfile", Passwords, Read, USER_NAME,
        run!(passwords::get_login_profile)),
    iam("UpdateLoginProfile", Passwords, Write, USER_NAME,
        run!(passwords::update_login_profile)),
    iam("DeleteLoginProfile", Passwords, Write, USER_NAME,
        run!(passwords::delete_login_profile)),
    iam("ChangePassword", Passwords, Write, Custom(passwords::own_user_resource),
        run!(passwords::change_password)),
    // Reports (resource `*`).
    iam("GenerateCredentialReport", Reports, Read, Any,
        run!(reports::generate_credential_report)),
    iam("GetCredentialReport", Reports, Read, Any,
        run!(reports::get_credential_report)),
    // Account advisor (issue 12): access levels and resources as the service authorization
    // reference lists them.
    iam("GetAccessKeyLastUsed", Advisor, Read, Custom(advisor::key_owner_resource),
        run!(advisor::get_access_key_last_used)),
    iam("GenerateServiceLastAccessedDetails", Advisor, Read,
        Custom(advisor::advisor_target_resource),
        run!(advisor::generate_service_last_accessed_details)),
    iam("GetServiceLastAccessedDetails", Advisor, Read, Any,
        run!(advisor::get_service_last_accessed_details)),
    iam("GetAccountSummary", Advisor, List, Any,
        run!(advisor::get_account_summary)),
    iam("GetAccountAuthorizationDetails", Advisor, Read, Any,
        run!(advisor::get_account_authorization_details)),
    iam("CreateAccountAlias", Advisor, Write, Any,
        run!(advisor::create_account_alias)),
    iam("DeleteAccountAlias", Advisor, Write, Any,
        run!(advisor::delete_account_alias)),
    iam("ListAccountAliases", Advisor, List, Any,
        run!(advisor::list_account_aliases)),
    // The audit trail (resource `*`, as the service authorization reference has it).
    cloudtrail("LookupEvents", Audit, Read, Any,
        run!(audit::lookup_events)),
];

/// tokengate's own actions that are a way of doing an AWS action, and are authorized as it:
/// the security-key registration ceremony enables an MFA device; a security-key login gets
/// a session token.
const AUTHORIZED_AS: &[(Api, &str, &str)] = &[
    (
        Api::Iam,
        "CreateSecurityKeyRegistrationChallenge",
        "EnableMFADevice",
    ),
    (Api::Iam, "EnableSecurityKey", "EnableMFADevice"),
    // A security-key login is a GetSessionToken by another factor (docs/policies.md).
    (Api::Sts, "GetSecurityKeyChallenge", "GetSessionToken"),
    (
        Api::Sts,
        "GetSessionTokenWithSecurityKey",
        "GetSessionToken",
    ),
    // An AssumeRole whose second factor is a touch.
    (Api::Sts, "AssumeRoleWithSecurityKey", "AssumeRole"),
];

/// The IAM actions whose request context carries action-specific condition keys
/// (policy.md §4.8, the service authorization reference's condition keys per action).
const ACTION_KEYS: &[(&str, &[ActionKey])] = {
    use ActionKey::{BoundaryParam, PolicyArn, RoleBoundary, UserBoundary};
    &[
        ("AttachUserPolicy", &[PolicyArn, UserBoundary]),
        ("DetachUserPolicy", &[PolicyArn, UserBoundary]),
        ("PutUserPolicy", &[UserBoundary]),
        ("DeleteUserPolicy", &[UserBoundary]),
        ("PutUserPermissionsBoundary", &[BoundaryParam]),
        ("DeleteUserPermissionsBoundary", &[UserBoundary]),
        ("AttachGroupPolicy", &[PolicyArn]),
        ("DetachGroupPolicy", &[PolicyArn]),
        ("CreateRole", &[BoundaryParam]),
        ("AttachRolePolicy", &[PolicyArn, RoleBoundary]),
        ("DetachRolePolicy", &[PolicyArn, RoleBoundary]),
        ("PutRolePolicy", &[RoleBoundary]),
        ("DeleteRolePolicy", &[RoleBoundary]),
        ("PutRolePermissionsBoundary", &[BoundaryParam]),
        ("DeleteRolePermissionsBoundary", &[RoleBoundary]),
    ]
};

impl ActionSpec {
    /// The action-specific condition keys this action's request context carries.
    pub fn action_keys(&self) -> &'static [ActionKey] {
        if self.api != Api::Iam {
            return &[];
        }
        ACTION_KEYS
            .iter()
            .find(|(name, _)| *name == self.name)
            .map_or(&[], |(_, keys)| keys)
    }

    /// The action as policies name it: `iam:CreateUser`, `sts:GetSessionToken`.
    pub fn iam_action(&self) -> String {
        let name = AUTHORIZED_AS
            .iter()
            .find(|(api, name, _)| *api == self.api && *name == self.name)
            .map_or(self.name, |(_, _, as_action)| as_action);
        format!("{}:{name}", self.api.service())
    }
}

/// The action `name` of `api`, matched exactly.
pub fn lookup(api: Api, name: &str) -> Option<&'static ActionSpec> {
    ACTIONS.iter().find(|a| a.api == api && a.name == name)
}

/// The API that answers action `name` (IAM first), for answering before authentication has
/// said which API a request is for.
pub fn api_of(name: &str) -> Option<Api> {
    Api::ALL
        .into_iter()
        .find(|&api| lookup(api, name).is_some())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::Path;

    use super::*;

    #[test]
    fn names_are_unique_per_api() {
        let mut seen = HashSet::new();
        for a in ACTIONS {
            assert!(seen.insert((a.api, a.name)), "{} twice", a.name);
        }
    }

    #[test]
    fn every_family_module_is_in_the_table_and_only_those() {
        let handlers = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/handlers");
        for family in Family::ALL {
            let has_module = handlers.join(format!("{}.rs", family.module())).exists();
            let has_actions = ACTIONS.iter().any(|a| a.family == family);
            assert_eq!(has_module, has_actions, "{family:?}");
        }
    }

    #[test]
    fn the_side_tables_name_actions_of_the_table() {
        for (api, name, _) in AUTHORIZED_AS {
            assert!(lookup(*api, name).is_some(), "AUTHORIZED_AS names {name}");
        }
        for (name, _) in ACTION_KEYS {
            assert!(lookup(Api::Iam, name).is_some(), "ACTION_KEYS names {name}");
        }
    }

    #[test]
    fn lookup_is_exact_case() {
        assert_eq!(
            lookup(Api::Iam, "CreateUser").map(|a| a.name),
            Some("CreateUser")
        );
        assert!(lookup(Api::Iam, "createuser").is_none());
        assert!(lookup(Api::Iam, "CREATEUSER").is_none());
        assert!(lookup(Api::Iam, "CreateUser ").is_none());
        assert!(lookup(Api::Sts, "CreateUser").is_none());
        assert!(lookup(Api::Iam, "GetSessionToken").is_none());
        assert_eq!(api_of("GetSessionToken"), Some(Api::Sts));
        assert_eq!(api_of("GetMFADevice"), Some(Api::Iam));
        assert_eq!(api_of("GetSecurityKeyChallenge"), Some(Api::Sts));
        assert_eq!(api_of("getsessiontoken"), None);
    }

    #[test]
    fn apis_and_action_names() {
        assert_eq!(Api::from_service("iam"), Some(Api::Iam));
        assert_eq!(Api::from_service("sts"), Some(Api::Sts));
        assert_eq!(Api::from_service("s3"), None);
        assert_eq!(Api::Iam.version(), "2010-05-08");
        assert_eq!(Api::Sts.version(), "2011-06-15");
        let action = |api, name| lookup(api, name).map(ActionSpec::iam_action);
        assert_eq!(
            action(Api::Iam, "CreateUser").as_deref(),
            Some("iam:CreateUser")
        );
        assert_eq!(
            action(Api::Sts, "GetSessionToken").as_deref(),
            Some("sts:GetSessionToken")
        );
        assert_eq!(
            action(Api::Iam, "EnableSecurityKey").as_deref(),
            Some("iam:EnableMFADevice")
        );
        for (api, name, _) in AUTHORIZED_AS {
            assert!(lookup(*api, name).is_some(), "{name}");
        }
    }
}
