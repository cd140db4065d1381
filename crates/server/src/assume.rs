//! STS AssumeRole's request (policy.md §5.1), shared by the two floors that read it: the
//! chokepoint, which verifies its second factor *before* authorization (the trust policy
//! must see `aws:MultiFactorAuthPresent`), and authorization, which evaluates the role's
//! trust policy; the STS family's handler then mints the role session.
//!
//! Parameters are validated here once, in botocore's terms, before any code is spent:
//! a request that would fail validation never consumes a TOTP step.

use std::sync::Arc;

use axum::http::StatusCode;
use tokengate_policy::{PolicyError, PolicyKind, policy_size};
use tokengate_token::session::{MfaContext, SessionAttributes, SessionPolicy, SessionTag};

use crate::auth::Caller;
use crate::entities::{DOCUMENT_CHARS, MAX_TAGS, POLICY_ARN, malformed, read_tags};
use crate::error::ApiError;
use crate::mfa::{
    self, MFA_INVALID_CODE, MFA_INVALID_SERIAL, MFA_REQUIRED, SERIAL_NUMBER, TOKEN_CODE,
};
use crate::params::{Params, Pattern, Rule, Validator};
use crate::principals::RoleAuthz;
use crate::state::AppState;
use crate::touch::{self, AssertionParams};

/// The IAM action AssumeRole is authorized as; its resource policy is the role's trust
/// policy.
pub const ASSUME_ROLE: &str = "sts:AssumeRole";
/// tokengate's AssumeRole by touch (docs/security-keys.md), authorized as `sts:AssumeRole`.
pub const ASSUME_ROLE_WITH_SECURITY_KEY: &str = "AssumeRoleWithSecurityKey";
/// The IAM action GetFederationToken is authorized as.
pub const FEDERATION_TOKEN: &str = "sts:GetFederationToken";

/// `RoleArn` (arnType): 20..2048.
pub const ROLE_ARN: Rule = Rule {
    name: "RoleArn",
    min: 20,
    max: 2048,
    pattern: None,
};

/// `RoleSessionName` (roleSessionNameType): 2..64, `[\w+=,.@-]*`.
pub const ROLE_SESSION_NAME: Rule = Rule {
    name: "RoleSessionName",
    min: 2,
    max: 64,
    pattern: Some(Pattern {
        text: r"[\w+=,.@-]*",
        allows: |c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c),
        _plus: false,
    }),
};

/// `ExternalId` (externalIdType): 2..1224, `[\w+=,.@:\/-]*`.
pub const EXTERNAL_ID: Rule = Rule {
    name: "ExternalId",
    min: 2,
    max: 1224,
    pattern: Some(Pattern {
        text: r"[\w+=,.@:\/-]*",
        allows: |c| c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(c),
        _plus: false,
    }),
};

/// `Policy` (sessionPolicyDocumentType): at least 1 character; the model sets no maximum
/// (policy.md §8.7), the packed size does.
pub const SESSION_POLICY: Rule = Rule {
    name: "Policy",
    min: 1,
    max: 131_072,
    pattern: Some(DOCUMENT_CHARS),
};

/// `SourceIdentity`: 2..64 — the user guide's limit, stricter than the model's 256
/// (policy.md §8.6, docs/policies.md) — `[\w+=,.@-]*`.
pub const SOURCE_IDENTITY: Rule = Rule {
    name: "SourceIdentity",
    min: 2,
    max: 64,
    pattern: Some(Pattern {
        text: r"[\w+=,.@-]*",
        allows: |c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c),
        _plus: false,
    }),
};

/// The IAM action that passing (or inheriting) session tags is authorized as.
pub const TAG_SESSION: &str = "sts:TagSession";
/// The IAM action that setting (or carrying on) a source identity is authorized as.
pub const SET_SOURCE_IDENTITY: &str = "sts:SetSourceIdentity";

/// AWS's text for two tags whose keys differ only in case (STS answers
/// `InvalidParameterValue`).
pub const DUPLICATE_TAG_KEYS: &str =
    "Duplicate tag keys found. Please note that Tag keys are case insensitive.";
/// AWS's text for a transitive key that names no tag of the request.
pub const TRANSITIVE_KEY_NOT_A_TAG: &str =
    "The specified transitive tag key must be included in the requested tags.";
/// AWS's text for a tag that would replace one the calling session passes on.
pub const TRANSITIVE_CONFLICT: &str = concat!(
    "One of the specified transitive tag keys can't be set because it conflicts with a ",
    "transitive tag key from the calling session."
);
/// tokengate's text for a SourceIdentity that differs from the calling session's (AWS
/// documents that it cannot be changed but not its error; docs/policies.md).
pub const SOURCE_IDENTITY_STICKY: &str = concat!(
    "The SourceIdentity of a session cannot be changed: the calling session's ",
    "SourceIdentity is set and is carried into every session it creates."
);

/// DurationSeconds: 900..43200 (roleDurationSecondsType).
pub const ROLE_DURATION_MIN_SECS: i64 = 900;
/// The longest role session AWS grants.
pub const ROLE_DURATION_MAX_SECS: i64 = 43_200;
/// The default role session (policy.md §5.1).
pub const ROLE_DURATION_DEFAULT_SECS: i64 = 3_600;
/// The longest session for a caller using session credentials (role chaining, §8.1).
pub const CHAINED_MAX_SECS: i64 = 3_600;
/// At most this many `PolicyArns` (policy.md §5.1).
pub const MAX_POLICY_ARNS: usize = 10;
/// The plaintext allowance for session policies (inline text plus ARNs), policy.md §5.1.
pub const PACKED_POLICY_ALLOWANCE: usize = 2_048;

/// AWS's text when DurationSeconds exceeds the role's MaxSessionDuration.
pub const EXCEEDS_MAX_SESSION: &str =
    "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.";
/// AWS's text when a caller with session credentials asks for more than an hour.
pub const EXCEEDS_CHAINING_LIMIT: &str = concat!(
    "The requested DurationSeconds exceeds the 1 hour session limit ",
    "for roles assumed by role chaining."
);

/// A validated AssumeRole request. Its `Debug` leaves the token code out.
#[derive(Clone)]
pub struct AssumeRoleRequest {
    /// `RoleArn`.
    pub role_arn: String,
    /// `RoleSessionName`.
    pub session_name: String,
    /// `DurationSeconds`, when given.
    pub duration: Option<i64>,
    /// `ExternalId` (`sts:ExternalId`).
    pub external_id: Option<String>,
    /// `SerialNumber`.
    pub serial: Option<String>,
    /// `TokenCode`.
    pub code: Option<String>,
    /// The session policies, when any were passed.
    pub session_policy: Option<SessionPolicy>,
    /// `PackedPolicySize`, when session policies or tags were passed.
    pub packed_percent: Option<usize>,
    /// `Tags` (session tags).
    pub tags: Vec<SessionTag>,
    /// `TransitiveTagKeys`.
    pub transitive_tag_keys: Vec<String>,
    /// `SourceIdentity`.
    pub source_identity: Option<String>,
}

impl std::fmt::Debug for AssumeRoleRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssumeRoleRequest")
            .field("role_arn", &self.role_arn)
            .field("session_name", &self.session_name)
            .field("duration", &self.duration)
            .field("external_id", &self.external_id)
            .field("serial", &self.serial)
            .field("code", &self.code.as_ref().map(|_| "<redacted>"))
            .field("session_policy", &self.session_policy)
            .field("packed_percent", &self.packed_percent)
            .field("tags", &self.tags)
            .field("transitive_tag_keys", &self.transitive_tag_keys)
            .field("source_identity", &self.source_identity)
            .finish()
    }
}

impl AssumeRoleRequest {
    /// Validates AssumeRole's parameters (botocore's constraints, then the session policy:
    /// packed size, then the document as a `Session` policy).
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        let mut v = Validator::new();
        let role_arn = v.required(params, ROLE_ARN);
        let session_name = v.required(params, ROLE_SESSION_NAME);
        let duration = v.integer(
            params,
            "DurationSeconds",
            ROLE_DURATION_MIN_SECS,
            ROLE_DURATION_MAX_SECS,
        );
        let external_id = v.optional(params, EXTERNAL_ID);
        let serial = v.optional(params, SERIAL_NUMBER);
        let code = v.optional(params, TOKEN_CODE);
        let inputs = SessionInputs::read(&mut v, params, SESSION_POLICY);
        let transitive_tag_keys = transitive_keys_in(params, &mut v);
        let source_identity = v.optional(params, SOURCE_IDENTITY);
        v.finish()?;
        let (Some(role_arn), Some(session_name)) = (role_arn, session_name) else {
            // `required` recorded the failure; `finish` answered it.
            return Err(ApiError::validation(
                "RoleArn and RoleSessionName are required",
            ));
        };
        if let Some(si) = &source_identity
            && si.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
        {
            return Err(ApiError::validation(
                "SourceIdentity cannot begin with the text aws:",
            ));
        }
        let (session_policy, packed_percent, tags) = inputs.check(&transitive_tag_keys)?;
        Ok(Self {
            role_arn,
            session_name,
            duration,
            external_id,
            serial,
            code,
            session_policy,
            packed_percent,
            tags,
            transitive_tag_keys,
            source_identity,
        })
    }

    /// The tags and source identity of the session this request creates for `caller`:
    /// the request's tags plus the transitive tags the caller's session passes on (a tag of
    /// the request may not replace one of those), and the source identity — the caller's
    /// session's, which may not be changed, else the request's.
    pub fn session_attributes(&self, caller: &Caller) -> Result<SessionAttributes, ApiError> {
        let inherited = caller
            .session
            .as_ref()
            .map(|s| &s.attributes)
            .cloned()
            .unwrap_or_default();
        let mut tags = self.tags.clone();
        let mut transitive_tag_keys = self.transitive_tag_keys.clone();
        for t in inherited.transitive_tags() {
            if tags
                .iter()
                .any(|mine| mine.key.eq_ignore_ascii_case(&t.key))
            {
                return Err(invalid_parameter(TRANSITIVE_CONFLICT));
            }
            tags.push(t.clone());
            transitive_tag_keys.push(t.key.clone());
        }
        let source_identity = match (inherited.source_identity, &self.source_identity) {
            (Some(old), Some(new)) if old != *new => {
                return Err(invalid_parameter(SOURCE_IDENTITY_STICKY));
            }
            (Some(old), _) => Some(old),
            (None, new) => new.clone(),
        };
        Ok(SessionAttributes {
            tags,
            transitive_tag_keys,
            source_identity,
        })
    }
}

/// What every session-minting request may pass along: session policies and session tags
/// (AssumeRole, GetFederationToken; policy.md §5.1, §5.2).
pub struct SessionInputs {
    inline: Option<String>,
    arns: Vec<String>,
    tags: Vec<SessionTag>,
}

impl SessionInputs {
    /// Reads `Policy` (as `policy_rule` constrains it), `PolicyArns` and `Tags`.
    pub fn read(v: &mut Validator, params: &Params, policy_rule: Rule) -> Self {
        let inline = v.optional(params, policy_rule);
        let arns = arns_in(params, v);
        let tags = read_tags(v, params, "Tags")
            .into_iter()
            .map(|t| SessionTag {
                key: t.key,
                value: t.value,
            })
            .collect();
        Self { inline, arns, tags }
    }

    /// Checks the tags (unique keys, `transitive` among them), the packed size and the
    /// inline document: the session policy, `PackedPolicySize` (when anything was passed)
    /// and the tags.
    #[allow(clippy::type_complexity)]
    pub fn check(
        self,
        transitive: &[String],
    ) -> Result<(Option<SessionPolicy>, Option<usize>, Vec<SessionTag>), ApiError> {
        let Self { inline, arns, tags } = self;
        check_tags(&tags, transitive)?;
        if inline.is_none() && arns.is_empty() && tags.is_empty() {
            return Ok((None, None, tags));
        }
        // Session tags share the packed allowance with the policies (policy.md §5.1:
        // "compresses the passed session policies and session tags").
        let packed = inline.as_deref().map_or(0, policy_size)
            + arns.iter().map(|a| a.chars().count()).sum::<usize>()
            + tags
                .iter()
                .map(|t| t.key.chars().count() + t.value.chars().count())
                .sum::<usize>();
        let percent = packed_percent(packed);
        if percent > 100 {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "PackedPolicyTooLarge",
                format!("Packed policy consumes {percent}% of allotted space"),
            ));
        }
        if let Some(text) = &inline {
            tokengate_policy::PolicyDocument::parse(text, PolicyKind::Session)
                .map_err(|e| session_policy_error(&e))?;
        }
        let policy =
            (inline.is_some() || !arns.is_empty()).then_some(SessionPolicy { inline, arns });
        Ok((policy, Some(percent), tags))
    }
}

/// Each `PolicyArns` ARN names a policy that exists (an AWS managed policy or one of the
/// account's), else AWS's ValidationError.
pub fn check_policy_arns(state: &AppState, policy: Option<&SessionPolicy>) -> Result<(), ApiError> {
    for arn in policy.map(|p| p.arns.as_slice()).unwrap_or_default() {
        let exists = tokengate_policy::aws_managed_policy(arn).is_some()
            || state.store.managed_policy(arn)?.is_some();
        if !exists {
            return Err(ApiError::validation(format!(
                "Policy {arn} does not exist or is not attachable."
            )));
        }
    }
    Ok(())
}

/// `InvalidParameterValue` (400), STS's answer for a session-tag conflict.
pub fn invalid_parameter(message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "InvalidParameterValue", message)
}

/// Keys unique case-insensitively; every transitive key one of the tags'.
fn check_tags(tags: &[SessionTag], transitive: &[String]) -> Result<(), ApiError> {
    for (i, t) in tags.iter().enumerate() {
        if tags[..i].iter().any(|u| u.key.eq_ignore_ascii_case(&t.key)) {
            return Err(invalid_parameter(DUPLICATE_TAG_KEYS));
        }
    }
    if transitive
        .iter()
        .any(|k| !tags.iter().any(|t| t.key.eq_ignore_ascii_case(k)))
    {
        return Err(invalid_parameter(TRANSITIVE_KEY_NOT_A_TAG));
    }
    Ok(())
}

/// `TransitiveTagKeys.member.N`: at most [`MAX_TAGS`] keys of 1..128 characters.
fn transitive_keys_in(params: &Params, v: &mut Validator) -> Vec<String> {
    let keys = params.list("TransitiveTagKeys");
    for (i, k) in keys.iter().enumerate() {
        let len = k.chars().count();
        if !(1..=128).contains(&len) {
            v.custom(format!(
                "Value '{k}' at 'transitiveTagKeys.{}.member' failed to satisfy constraint: \
                 Member must have length between 1 and 128",
                i + 1
            ));
        }
    }
    if keys.len() > MAX_TAGS {
        v.custom(format!(
            "Value at 'transitiveTagKeys' failed to satisfy constraint: Member must have \
             length less than or equal to {MAX_TAGS}"
        ));
    }
    keys
}

/// `PolicyArns.member.N.arn`: each a policy ARN (20..2048), at most
/// [`MAX_POLICY_ARNS`] of them.
fn arns_in(params: &Params, v: &mut Validator) -> Vec<String> {
    let mut arns = Vec::new();
    for i in 1.. {
        let Some(arn) = params.get(&format!("PolicyArns.member.{i}.arn")) else {
            break;
        };
        let len = arn.chars().count();
        if !(POLICY_ARN.min..=POLICY_ARN.max).contains(&len) {
            v.custom(format!(
                "Value '{arn}' at 'policyArns.{i}.member.arn' failed to satisfy constraint: \
                 Member must have length between {} and {}",
                POLICY_ARN.min, POLICY_ARN.max
            ));
        }
        arns.push(arn.to_owned());
    }
    if arns.len() > MAX_POLICY_ARNS {
        v.custom(format!(
            "Value '[{}]' at 'policyArns' failed to satisfy constraint: Member must have \
             length less than or equal to {MAX_POLICY_ARNS}",
            arns.join(", ")
        ));
    }
    arns
}

/// `PackedPolicySize`: the session policies' plaintext — the inline document counted
/// without white space (as every policy quota) plus each ARN's length — as a percentage of
/// [`PACKED_POLICY_ALLOWANCE`], rounded up (ADR 0005). AWS compresses into a binary form
/// whose size it does not document; this is the plaintext rule its documentation states.
pub fn packed_percent(packed_chars: usize) -> usize {
    (packed_chars * 100).div_ceil(PACKED_POLICY_ALLOWANCE)
}

fn session_policy_error(e: &PolicyError) -> ApiError {
    match e {
        PolicyError::TooLarge { .. } => ApiError::new(
            StatusCode::BAD_REQUEST,
            "PackedPolicyTooLarge",
            "Packed policy consumes more than 100% of allotted space",
        ),
        other => malformed(other.to_string()),
    }
}

/// The role that `role_arn` names, if it exists and the ARN is exactly its ARN (path
/// included); `None` otherwise — AWS answers a missing role with the same AccessDenied as a
/// refused one.
pub fn target_role(state: &AppState, role_arn: &str) -> Result<Option<Arc<RoleAuthz>>, ApiError> {
    let prefix = format!("arn:aws:iam::{}:role/", state.account_id);
    let Some(rest) = role_arn.strip_prefix(&prefix) else {
        return Ok(None);
    };
    let name = rest.rsplit('/').next().unwrap_or(rest);
    // A point read, inline on the worker (ADR 0003), then the role's compiled policies.
    let Some(role) = state.store.role(name)? else {
        return Ok(None);
    };
    let arn = tokengate_token::arn::role_arn(&state.account_id, &role.path, &role.name);
    if arn != role_arn {
        return Ok(None);
    }
    state.policies.role(state.store.as_ref(), &role.role_id)
}

/// AssumeRoleWithSecurityKey's validated assertion (docs/security-keys.md): the
/// GetSessionTokenWithSecurityKey parameters beside AssumeRole's, for long-term keys only
/// (its challenge comes from GetSecurityKeyChallenge, which refuses session credentials), and
/// no `TokenCode`.
pub fn read_touch(params: &Params, caller: &Caller) -> Result<AssertionParams, ApiError> {
    let mut v = Validator::new();
    let assertion = touch::read_assertion(&mut v, params);
    if params.get(TOKEN_CODE.name).is_some() {
        v.custom(format!(
            "TokenCode cannot be used with {ASSUME_ROLE_WITH_SECURITY_KEY}: its second factor \
             is the security key's assertion"
        ));
    }
    v.finish()?;
    let assertion = assertion.ok_or_else(|| ApiError::internal("validated parameter missing"))?;
    if caller.is_session() {
        return Err(ApiError::access_denied(format!(
            "Cannot call {ASSUME_ROLE_WITH_SECURITY_KEY} with session credentials"
        )));
    }
    Ok(assertion)
}

/// The second factor of an AssumeRole request, verified before authorization exactly as
/// GetSessionToken verifies it (replay refused, failures counted, AWS's texts): the MFA
/// context it proves, or `None` when none was given. With `mfa.required`, a request without
/// a code whose caller's own session has no MFA is refused with GetSessionToken's text.
pub async fn second_factor(
    state: &Arc<AppState>,
    caller: &Caller,
    request: &AssumeRoleRequest,
    touch: Option<&AssertionParams>,
) -> Result<Option<MfaContext>, ApiError> {
    if let Some(assertion) = touch {
        return Ok(Some(touch::verify_login(state, caller, assertion).await?));
    }
    match (&request.serial, &request.code) {
        (Some(serial), Some(code)) => {
            Ok(Some(mfa::verify_code(state, caller, serial, code).await?))
        }
        (Some(_), None) => Err(ApiError::access_denied(MFA_INVALID_CODE)),
        (None, Some(_)) => Err(ApiError::access_denied(MFA_INVALID_SERIAL)),
        (None, None) if state.config.mfa.required && !caller.mfa_present() => {
            Err(ApiError::access_denied(MFA_REQUIRED))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    const ARN: &str = "arn:aws:iam::000000000000:role/r";

    #[test]
    fn debug_never_shows_the_token_code() {
        let request = AssumeRoleRequest::parse(&params(&[
            ("RoleArn", ARN),
            ("RoleSessionName", "ss"),
            ("SerialNumber", "arn:aws:iam::000000000000:mfa/alice"),
            ("TokenCode", "482913"),
        ]))
        .unwrap();
        let shown = format!("{request:?}");
        assert!(!shown.contains("482913"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("mfa/alice"),
            "{shown}"
        );
    }

    #[test]
    fn packed_size_is_a_rounded_up_percentage_of_2048() {
        assert_eq!(packed_percent(0), 0);
        assert_eq!(packed_percent(1), 1);
        assert_eq!(packed_percent(2048), 100);
        assert_eq!(packed_percent(2049), 101);
    }

    #[test]
    fn requests_are_validated_in_botocores_terms() {
        let ok = AssumeRoleRequest::parse(&params(&[
            ("RoleArn", ARN),
            ("RoleSessionName", "s@x.y"),
            (
                "Policy",
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iam:Get*","Resource":"*"}}"#,
            ),
            (
                "PolicyArns.member.1.arn",
                "arn:aws:iam::aws:policy/IAMReadOnlyAccess",
            ),
        ]))
        .unwrap();
        let sp = ok.session_policy.unwrap();
        assert_eq!(sp.arns.len(), 1);
        assert!(ok.packed_percent.unwrap() > 0);
        for bad in [
            vec![("RoleArn", ARN), ("RoleSessionName", "has space")],
            vec![("RoleArn", ARN), ("RoleSessionName", "s")],
            vec![
                ("RoleArn", ARN),
                ("RoleSessionName", "ss"),
                ("DurationSeconds", "899"),
            ],
            vec![
                ("RoleArn", ARN),
                ("RoleSessionName", "ss"),
                ("TokenCode", "12345"),
            ],
            vec![
                ("RoleArn", ARN),
                ("RoleSessionName", "ss"),
                ("ExternalId", "x"),
            ],
            vec![("RoleSessionName", "ss")],
        ] {
            let e = AssumeRoleRequest::parse(&params(&bad)).unwrap_err();
            assert_eq!(e.code, "ValidationError", "{bad:?}");
        }
        let many: Vec<(String, String)> = (1..=11)
            .map(|i| {
                (
                    format!("PolicyArns.member.{i}.arn"),
                    "arn:aws:iam::aws:policy/IAMReadOnlyAccess".to_owned(),
                )
            })
            .chain([
                ("RoleArn".to_owned(), ARN.to_owned()),
                ("RoleSessionName".to_owned(), "ss".to_owned()),
            ])
            .collect();
        let e = AssumeRoleRequest::parse(&Params::new(many)).unwrap_err();
        assert_eq!(e.code, "ValidationError");
        let e = AssumeRoleRequest::parse(&params(&[
            ("RoleArn", ARN),
            ("RoleSessionName", "ss"),
            ("Policy", "{}"),
        ]))
        .unwrap_err();
        assert_eq!(e.code, "MalformedPolicyDocument");
    }
}
