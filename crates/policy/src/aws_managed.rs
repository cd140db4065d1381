//! A static catalog of AWS managed policies (policy.md §4.11), documents as AWS returns them
//! from GetPolicyVersion (moto 5.2.5's snapshot of AWS).

/// One AWS managed policy, at its default version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsManagedPolicy {
    /// `PolicyName`.
    pub name: &'static str,
    /// `PolicyId` (`ANPA…`), fixed per policy.
    pub policy_id: &'static str,
    /// `arn:aws:iam::aws:policy/NAME`.
    pub arn: &'static str,
    /// `Path`.
    pub path: &'static str,
    /// `DefaultVersionId`.
    pub version_id: &'static str,
    /// `CreateDate`, ISO 8601.
    pub create_date: &'static str,
    /// `UpdateDate`, ISO 8601.
    pub update_date: &'static str,
    /// `Description`.
    pub description: &'static str,
    /// The policy document (JSON).
    pub document: &'static str,
}

const CATALOG: &[AwsManagedPolicy] = &[
    AwsManagedPolicy {
        name: "AdministratorAccess",
        policy_id: "ANPAIWMBCKSKIEE64ZLYK",
        arn: "arn:aws:iam::aws:policy/AdministratorAccess",
        path: "/",
        version_id: "v1",
        create_date: "2015-02-06T18:39:46Z",
        update_date: "2015-02-06T18:39:46Z",
        description: "Provides full access to AWS services and resources.",
        document: concat!(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","#,
            r#""Resource":"*"}]}"#,
        ),
    },
    AwsManagedPolicy {
        name: "PowerUserAccess",
        policy_id: "ANPAJYRXTHIB4FOVS3ZXS",
        arn: "arn:aws:iam::aws:policy/PowerUserAccess",
        path: "/",
        version_id: "v12",
        create_date: "2015-02-06T18:39:47Z",
        update_date: "2026-02-12T00:00:00Z",
        description: "Provides full access to AWS services and resources, but does not allow \
            management of Users and groups.",
        document: concat!(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":["iam:*","#,
            r#""organizations:*","account:*"],"Resource":"*"},{"Effect":"Allow","#,
            r#""Action":["account:GetAccountInformation","#,
            r#""account:GetGovCloudAccountInformation","account:GetPrimaryEmail","#,
            r#""account:ListRegions","iam:CreateServiceLinkedRole","#,
            r#""iam:DeleteServiceLinkedRole","iam:ListRoles","#,
            r#""organizations:DescribeEffectivePolicy","#,
            r#""organizations:DescribeOrganization"],"Resource":"*"}]}"#,
        ),
    },
    AwsManagedPolicy {
        name: "IAMFullAccess",
        policy_id: "ANPAI7XKCFMBPM3QQRRVQ",
        arn: "arn:aws:iam::aws:policy/IAMFullAccess",
        path: "/",
        version_id: "v2",
        create_date: "2015-02-06T18:40:38Z",
        update_date: "2019-06-21T19:40:00Z",
        description: "Provides full access to IAM via the AWS Management Console.",
        document: concat!(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["iam:*","#,
            r#""organizations:DescribeAccount","organizations:DescribeOrganization","#,
            r#""organizations:DescribeOrganizationalUnit","organizations:DescribePolicy","#,
            r#""organizations:ListChildren","organizations:ListParents","#,
            r#""organizations:ListPoliciesForTarget","organizations:ListRoots","#,
            r#""organizations:ListPolicies","organizations:ListTargetsForPolicy"],"#,
            r#""Resource":"*"}]}"#,
        ),
    },
    AwsManagedPolicy {
        name: "IAMReadOnlyAccess",
        policy_id: "ANPAJKSO7NDY4T57MWDSQ",
        arn: "arn:aws:iam::aws:policy/IAMReadOnlyAccess",
        path: "/",
        version_id: "v4",
        create_date: "2015-02-06T18:40:39Z",
        update_date: "2018-01-25T19:11:27Z",
        description: "Provides read only access to IAM via the AWS Management Console.",
        document: concat!(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","#,
            r#""Action":["iam:GenerateCredentialReport","#,
            r#""iam:GenerateServiceLastAccessedDetails","iam:Get*","iam:List*","#,
            r#""iam:SimulateCustomPolicy","iam:SimulatePrincipalPolicy"],"Resource":"*"}]}"#,
        ),
    },
    AwsManagedPolicy {
        name: "IAMUserChangePassword",
        policy_id: "ANPAJ4L4MM2A7QIEB56MS",
        arn: "arn:aws:iam::aws:policy/IAMUserChangePassword",
        path: "/",
        version_id: "v5",
        create_date: "2016-11-15T23:18:55Z",
        update_date: "2026-02-12T00:00:00Z",
        description: "Provides the ability for an IAM user to change their own password.",
        document: concat!(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","#,
            r#""Action":["iam:ChangePassword"],"#,
            r#""Resource":["arn:aws:iam::*:user/${aws:username}","#,
            r#""arn:aws:iam::*:user/*/${aws:username}"]},{"Effect":"Allow","#,
            r#""Action":["iam:GetAccountPasswordPolicy"],"Resource":"*"}]}"#,
        ),
    },
    // Reduced: AWS's ReadOnlyAccess (v190, ~98 KB, three statements over every service) is cut
    // down to its IAM and STS entries, the only services tokengate serves (§4.11).
    AwsManagedPolicy {
        name: "ReadOnlyAccess",
        policy_id: "ANPAILL3HVNFSB6DCOWYQ",
        arn: "arn:aws:iam::aws:policy/ReadOnlyAccess",
        path: "/",
        version_id: "v190",
        create_date: "2015-02-06T18:39:48Z",
        update_date: "2026-09-24T00:00:00Z",
        description: "Provides read-only access to AWS services and resources. (tokengate: \
            reduced to its IAM and STS entries.)",
        document: concat!(
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"ReadOnlyActionsGroup1","#,
            r#""Effect":"Allow","Action":["iam:Generate*","iam:Get*","iam:List*","#,
            r#""iam:Simulate*","sts:GetAccessKeyInfo","sts:GetCallerIdentity","#,
            r#""sts:GetSessionToken"],"Resource":"*"}]}"#,
        ),
    },
];

/// Every policy in the catalog.
pub fn aws_managed_policies() -> &'static [AwsManagedPolicy] {
    CATALOG
}

/// The catalog entry with this ARN.
pub fn aws_managed_policy(arn: &str) -> Option<&'static AwsManagedPolicy> {
    CATALOG.iter().find(|p| p.arn == arn)
}
