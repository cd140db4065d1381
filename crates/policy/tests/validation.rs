//! Validation messages of policy.md §4.9, one or more cases per message class, and valid
//! documents of every shape.
#![allow(clippy::unwrap_used)]

use tokengate_policy::{
    MANAGED_POLICY_MAX_SIZE, PolicyDocument, PolicyError, PolicyKind, aws_managed_policies,
    aws_managed_policy, policy_size,
};

const SYNTAX: &str = "Syntax errors in policy.";
const LEGACY: &str = "The policy failed legacy parsing";

fn error(kind: PolicyKind, text: &str) -> String {
    match PolicyDocument::parse(text, kind) {
        Err(PolicyError::Malformed(message)) => message,
        other => panic!("expected Malformed for {text}, got {other:?}"),
    }
}

fn statement(body: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":{{{body}}}}}"#)
}

#[test]
fn syntax_errors() {
    let cases = [
        "not json".to_owned(),
        "[]".to_owned(),
        r#"{"Version":"2012-10-17"}"#.to_owned(),
        r#"{"Version":"2012-10-17","Statement":"x"}"#.to_owned(),
        r#"{"Version":"2012-10-17","Statement":[]}"#.to_owned(),
        r#"{"Version":"2012-10-17","Statement":["x"]}"#.to_owned(),
        r#"{"Version":"2012-10-17","Foo":1,"Statement":{"Effect":"Allow","Action":"*",
            "Resource":"*"}}"#
            .to_owned(),
        r#"{"Version":"2012-10-18","Statement":{"Effect":"Allow","Action":"*",
            "Resource":"*"}}"#
            .to_owned(),
        r#"{"Version":"2012-10-17","Id":1,"Statement":{"Effect":"Allow","Action":"*",
            "Resource":"*"}}"#
            .to_owned(),
        statement(r#""Action":"*","Resource":"*""#),
        statement(r#""Effect":"Permit","Action":"*","Resource":"*""#),
        statement(r#""Effect":"Allow","Action":1,"Resource":"*""#),
        statement(r#""Effect":"Allow","Action":"*","Resource":{"a":"b"}"#),
        statement(r#""Effect":"Deny","Action":"*","Resource":["a",{}]"#),
        statement(r#""Effect":"Allow","Action":"*","NotAction":"*","Resource":"*""#),
        statement(r#""Effect":"Allow","Action":"*","Resource":"*","NotResource":[]"#),
        statement(r#""Effect":"Allow","Action":"*","Resource":"*","Foo":"x""#),
        statement(r#""Effect":"Allow","Action":"*","Resource":"*","Condition":[]"#),
        statement(r#""Effect":"Allow","Action":"*","Resource":"*","Condition":"a""#),
        statement(r#""Effect":"Allow","Action":"*","Resource":"*","Condition":{"a":"b"}"#),
        statement(
            r#""Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"DateGreaterThan":"b"}"#,
        ),
        statement(r#""Effect":"Allow","Action":"*","Resource":"*","Condition":{"x":{"a":"1"}}"#),
        statement(
            r#""Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"ForAnyValue::StringEqualsIfExists":{"a:b":"1"}}"#,
        ),
        statement(
            r#""Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"StringEquals":{"a:b":null}}"#,
        ),
        statement(
            r#""Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"StringEquals":{"a:b":{"c":"d"}}}"#,
        ),
        statement(
            r#""Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"NullIfExists":{"a:b":"true"}}"#,
        ),
        statement(r#""Sid":1,"Effect":"Allow","Action":"*","Resource":"*""#),
        // Duplicate keys, at the top and inside a statement.
        r#"{"Version":"2012-10-17","Version":"2012-10-17","Statement":{"Effect":"Allow",
            "Action":"*","Resource":"*"}}"#
            .to_owned(),
        statement(r#""Effect":"Allow","Action":"*","Action":"iam:GetUser","Resource":"*""#),
    ];
    for text in &cases {
        assert_eq!(error(PolicyKind::Managed, text), SYNTAX, "{text}");
    }
}

#[test]
fn version_rules_depend_on_kind() {
    let v2008 =
        r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#;
    let none = r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#;
    for text in [v2008, none] {
        assert_eq!(
            error(PolicyKind::Managed, text),
            "Policy document must be version 2012-10-17 or greater."
        );
        for kind in [
            PolicyKind::UserInline,
            PolicyKind::GroupInline,
            PolicyKind::RoleInline,
            PolicyKind::Session,
        ] {
            assert!(PolicyDocument::parse(text, kind).is_ok(), "{kind:?} {text}");
        }
    }
}

#[test]
fn legacy_parsing_errors() {
    for body in [
        r#""Effect":"allow","Action":"*","Resource":"*""#,
        r#""Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"DateGreaterThan":{"a:b":"sdfdsf"}}"#,
        r#""Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"DateLessThanIfExists":{"a:b":"234-13"}}"#,
        r#""Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"ForAnyValue:DateEquals":{"a:b":"9223372036854775808"}}"#,
        r#""Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3::example_bucket""#,
    ] {
        assert_eq!(
            error(PolicyKind::Managed, &statement(body)),
            LEGACY,
            "{body}"
        );
    }
}

#[test]
fn actions_and_resources_must_be_present() {
    let no_action = statement(r#""Effect":"Allow","Resource":"*""#);
    assert_eq!(
        error(PolicyKind::Managed, &no_action),
        "Policy statement must contain actions."
    );
    let empty = statement(r#""Effect":"Allow","Action":[],"Resource":"*""#);
    assert_eq!(
        error(PolicyKind::Managed, &empty),
        "Policy statement must contain actions."
    );
    let no_resource = statement(r#""Effect":"Allow","Action":"*""#);
    for kind in [
        PolicyKind::Managed,
        PolicyKind::UserInline,
        PolicyKind::Session,
    ] {
        assert_eq!(
            error(kind, &no_resource),
            "Policy statement must contain resources."
        );
    }
    let empty = statement(r#""Effect":"Allow","NotAction":"*","NotResource":[]"#);
    assert_eq!(
        error(PolicyKind::RoleInline, &empty),
        "Policy statement must contain resources."
    );
}

#[test]
fn action_vendor_rules() {
    let action = |a: &str| {
        statement(&format!(
            r#""Effect":"Allow","Action":"{a}","Resource":"*""#
        ))
    };
    let vendor = "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.";
    assert_eq!(error(PolicyKind::Managed, &action("invalid")), vendor);
    assert_eq!(
        error(
            PolicyKind::Managed,
            &statement(r#""Effect":"Allow","NotAction":"","Resource":"*""#)
        ),
        vendor
    );
    assert_eq!(
        error(PolicyKind::Managed, &action("a:b:c")),
        "Actions/Condition can contain only one colon."
    );
    assert_eq!(
        error(PolicyKind::Managed, &action("a a:b")),
        "Vendor a a is not valid"
    );
    let key = statement(
        r#""Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"StringEquals":{"nokey":"x"}}"#,
    );
    assert_eq!(error(PolicyKind::Managed, &key), vendor);
}

#[test]
fn resource_format_rules() {
    let resource = |r: &str| {
        statement(&format!(
            r#""Effect":"Allow","Action":"s3:ListBucket","Resource":"{r}""#
        ))
    };
    let cases = [
        (
            "invalid resource",
            "Resource invalid resource must be in ARN format or \"*\".",
        ),
        (
            "arn:b:c:d:e:f:g:h",
            "Partition \"b\" is not valid for resource \"arn:b:c:d:e:f:g:h\".",
        ),
        (
            "arn:b",
            "Partition \"b\" is not valid for resource \"arn:b:*:*:*:*\".",
        ),
        (
            "arn:aws",
            "Resource vendor must be fully qualified and cannot contain regexes.",
        ),
        (
            "arn:aws:*:*:1:*",
            "Resource vendor must be fully qualified and cannot contain regexes.",
        ),
        (
            "arn:aws:iam:us-east-1::example_bucket",
            "IAM resource arn:aws:iam:us-east-1::example_bucket cannot contain region information.",
        ),
        (
            "arn:aws:s3:us-east-1::example_bucket",
            "Resource arn:aws:s3:us-east-1::example_bucket can not contain region information.",
        ),
        (
            "arn:aws:iam:::example_bucket",
            "IAM resource path must either be \"*\" or start with user/, federated-user/, role/, \
             group/, instance-profile/, mfa/, server-certificate/, policy/, sms-mfa/, \
             saml-provider/, oidc-provider/, report/, access-report/.",
        ),
    ];
    for (r, message) in cases {
        assert_eq!(error(PolicyKind::Managed, &resource(r)), message, "{r}");
    }
    // Resource errors are reported after the missing-action check.
    let both = statement(r#""Effect":"Allow","Resource":"bad""#);
    assert_eq!(
        error(PolicyKind::Managed, &both),
        "Policy statement must contain actions."
    );
    for ok in [
        "arn:aws:s3:us-east-1:1:accesspoint/x",
        "arn:aws:iam::*:root",
        "arn:*:iam::*:user/*",
    ] {
        assert!(
            PolicyDocument::parse(&resource(ok), PolicyKind::Managed).is_ok(),
            "{ok}"
        );
    }
}

#[test]
fn sid_rules() {
    let two = |a: &str, b: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"{a}","Effect":"Allow","Action":"*",
                "Resource":"*"}},{{"Sid":"{b}","Effect":"Deny","Action":"*","Resource":"*"}}]}}"#
        )
    };
    assert_eq!(
        error(PolicyKind::Managed, &two("A1", "A1")),
        "Statement IDs (SID) in a single policy must be unique."
    );
    assert!(PolicyDocument::parse(&two("", ""), PolicyKind::Managed).is_ok());
    assert!(PolicyDocument::parse(&two("A1", "a1"), PolicyKind::Managed).is_ok());
    assert_eq!(
        error(PolicyKind::Managed, &two("Atomic_Red_Team", "B")),
        "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the \
         regular expression [0-9A-Za-z]*"
    );
}

#[test]
fn principal_rules() {
    let with_principal =
        statement(r#""Effect":"Allow","Principal":"*","Action":"*","Resource":"*""#);
    for kind in [
        PolicyKind::Managed,
        PolicyKind::UserInline,
        PolicyKind::Session,
    ] {
        assert_eq!(
            error(kind, &with_principal),
            "Policy document should not specify a principal."
        );
    }
    let trust_no_principal = statement(r#""Effect":"Allow","Action":"sts:AssumeRole""#);
    let balsa = "Invalid principal in policy: com.amazon.balsa.error.InvalidPolicyException: \
                 The passed in policy has a statement with no principals!";
    assert_eq!(error(PolicyKind::Trust, &trust_no_principal), balsa);
    let trust_resource = statement(
        r#""Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"sts:AssumeRole",
            "Resource":"*""#,
    );
    assert_eq!(
        error(PolicyKind::Trust, &trust_resource),
        "Has prohibited field Resource"
    );
    let trust = statement(
        r#""Effect":"Allow","Principal":{"AWS":["arn:aws:iam::123456789012:root"],
            "Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole""#,
    );
    assert!(PolicyDocument::parse(&trust, PolicyKind::Trust).is_ok());
    let bad_map =
        statement(r#""Effect":"Allow","Principal":{"Users":"x"},"Action":"sts:AssumeRole""#);
    assert_eq!(error(PolicyKind::Trust, &bad_map), SYNTAX);
}

#[test]
fn valid_shapes() {
    let valid = [
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        r#"{"Version":"2012-10-17","Id":"x","Statement":[{"Effect":"Deny","NotAction":["iam:*"],
            "NotResource":["arn:aws:iam::*:user/*"]}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"","Effect":"Allow","Action":["s3:Get*",
            "iam:List*"],"Resource":["*"],"Condition":{"Bool":{"aws:MultiFactorAuthPresent":true},
            "NumericLessThan":{"aws:MultiFactorAuthAge":3600},"StringLike":{"aws:userid":["AIDA*",
            "AROA*:*"]}}}]}"#,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*",
            "Condition":{"UnknownOperator":{}}}}"#,
        "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": {\"Effect\": \"Allow\", \"Action\"\
            : \"*\", \"Resource\": \"*\"}\n}\n",
    ];
    for text in valid {
        let doc = PolicyDocument::parse(text, PolicyKind::Managed).unwrap();
        assert_eq!(doc.text(), text);
    }
}

#[test]
fn context_keys_are_deduplicated_and_sorted() {
    let text = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"*","Resource":"arn:aws:iam::*:user/${aws:username}",
         "Condition":{"Bool":{"aws:SecureTransport":"true"},
                      "StringEquals":{"AWS:UserName":"${aws:PrincipalTag/team}"}}},
        {"Effect":"Deny","Action":"*","Resource":"*",
         "Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"},
                      "BoolIfExists":{"aws:securetransport":"false"}}}
    ]}"#;
    let doc = PolicyDocument::parse(text, PolicyKind::Managed).unwrap();
    assert_eq!(doc.statement_count(), 2);
    assert_eq!(
        doc.context_keys(),
        [
            "aws:PrincipalTag/team",
            "aws:SecureTransport",
            "aws:SourceIp",
            "AWS:UserName"
        ]
    );
}

#[test]
fn size_limits() {
    let padding = " ".repeat(10_000);
    let text = format!(
        r#"{{"Version":"2012-10-17",{padding}"Statement":{{"Effect":"Allow","Action":"*",
            "Resource":"*"}}}}"#
    );
    assert!(PolicyDocument::parse(&text, PolicyKind::Managed).is_ok());
    let actions: Vec<String> = (0..400).map(|i| format!("\"iam:Action{i:05}\"")).collect();
    let big = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":[{}],
            "Resource":"*"}}}}"#,
        actions.join(",")
    );
    assert!(policy_size(&big) > MANAGED_POLICY_MAX_SIZE);
    assert_eq!(
        PolicyDocument::parse(&big, PolicyKind::Managed),
        Err(PolicyError::TooLarge {
            limit: MANAGED_POLICY_MAX_SIZE
        })
    );
    assert!(matches!(
        PolicyDocument::parse(&big, PolicyKind::Session),
        Err(PolicyError::TooLarge { limit: 2048 })
    ));
    assert!(PolicyDocument::parse(&big, PolicyKind::UserInline).is_ok());
    assert!(PolicyDocument::parse(&big, PolicyKind::AwsManaged).is_ok());
    assert_eq!(policy_size(" {\n\t\"a\" : 1 }"), 7);
}

#[test]
fn aws_managed_catalog_parses() {
    let names: Vec<&str> = aws_managed_policies().iter().map(|p| p.name).collect();
    for required in [
        "AdministratorAccess",
        "PowerUserAccess",
        "IAMFullAccess",
        "IAMReadOnlyAccess",
        "IAMUserChangePassword",
        "ReadOnlyAccess",
    ] {
        assert!(names.contains(&required), "{required}");
    }
    for p in aws_managed_policies() {
        assert_eq!(p.arn, format!("arn:aws:iam::aws:policy/{}", p.name));
        assert_eq!(p.path, "/");
        let doc = PolicyDocument::parse(p.document, PolicyKind::AwsManaged).unwrap();
        assert!(doc.statement_count() >= 1);
        assert!(
            PolicyDocument::parse(p.document, PolicyKind::Managed).is_ok(),
            "{}",
            p.name
        );
    }
    let admin = aws_managed_policy("arn:aws:iam::aws:policy/AdministratorAccess").unwrap();
    assert_eq!(admin.version_id, "v1");
    assert!(aws_managed_policy("arn:aws:iam::aws:policy/Nonexistent").is_none());
}
