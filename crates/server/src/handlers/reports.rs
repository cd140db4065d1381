//! Reports (IAM, API version 2010-05-08): the credential report, GenerateCredentialReport
//! and GetCredentialReport (portal.md §1).
//!
//! The account keeps one report. Generating is synchronous: GenerateCredentialReport
//! answers `STARTED` after writing a new report, and `COMPLETE` without regenerating while
//! the stored one is under four hours old; GetCredentialReport answers `ReportNotPresent`
//! before any and `ReportExpired` once it is four hours old.
//!
//! Access-key last use comes from the store's last-used columns, written in batches by
//! [`crate::usage`] (flushed before the report is generated); until a use is recorded the
//! columns read `N/A`, AWS's token for "never used".

use std::sync::Arc;

use axum::http::StatusCode;
use tokengate_store::{
    CredentialInventory, KeySummary, LoginProfile, PasswordPolicy, PrincipalCredentials,
    StoredReport,
};
use tokengate_token::arn;

use crate::auth::Caller;
use crate::common::{db, iso8601};
use crate::error::ApiError;
use crate::params::Params;
use crate::passwords::expires_at;
use crate::state::AppState;
use crate::xml::Xml;

/// A report is fresh for four hours (IAMUG `id_credentials_getting-report.md`).
pub const REPORT_MAX_AGE_SECS: i64 = 4 * 3600;

/// The 22 columns, in AWS's order (portal.md §1.4).
pub const HEADER: [&str; 22] = [
    "user",
    "arn",
    "user_creation_time",
    "password_enabled",
    "password_last_used",
    "password_last_changed",
    "password_next_rotation",
    "mfa_active",
    "access_key_1_active",
    "access_key_1_last_rotated",
    "access_key_1_last_used_date",
    "access_key_1_last_used_region",
    "access_key_1_last_used_service",
    "access_key_2_active",
    "access_key_2_last_rotated",
    "access_key_2_last_used_date",
    "access_key_2_last_used_region",
    "access_key_2_last_used_service",
    "cert_1_active",
    "cert_1_last_rotated",
    "cert_2_active",
    "cert_2_last_rotated",
];

/// The root user's name in the report (portal.md §1.6).
pub const ROOT_ROW_NAME: &str = "<root_account>";
const NA: &str = "N/A";
const NO_INFORMATION: &str = "no_information";
const NOT_SUPPORTED: &str = "not_supported";

/// `YYYY-MM-DDTHH:MM:SS+00:00`, the report's timestamp form (portal.md §1.5).
pub fn report_time(unix: i64) -> String {
    let t = iso8601(unix);
    match t.strip_suffix('Z') {
        Some(stem) => format!("{stem}+00:00"),
        None => t,
    }
}

fn bool_cell(b: bool) -> String {
    if b { "true" } else { "false" }.to_owned()
}

/// The six cells of access key `n` (1 or 2): active, last rotated, last used date, region,
/// service. A key that was never used has `N/A` in all three last-used cells.
fn key_cells(key: Option<&KeySummary>) -> [String; 5] {
    let Some(k) = key else {
        return [bool_cell(false), NA.into(), NA.into(), NA.into(), NA.into()];
    };
    let (date, region, service) = match &k.last_used {
        Some(u) => (
            report_time(u.at),
            if u.region.is_empty() {
                NA.into()
            } else {
                u.region.clone()
            },
            if u.service.is_empty() {
                NA.into()
            } else {
                u.service.clone()
            },
        ),
        None => (NA.into(), NA.into(), NA.into()),
    };
    [
        bool_cell(k.active),
        report_time(k.created),
        date,
        region,
        service,
    ]
}

/// The password cells of a user: enabled, last used, last changed, next rotation.
fn password_cells(profile: Option<&LoginProfile>, policy: Option<&PasswordPolicy>) -> [String; 4] {
    let Some(p) = profile else {
        return [bool_cell(false), NA.into(), NA.into(), NA.into()];
    };
    [
        bool_cell(true),
        p.last_used
            .map_or_else(|| NO_INFORMATION.into(), report_time),
        report_time(p.password_changed),
        expires_at(policy, p).map_or_else(|| NA.into(), report_time),
    ]
}

fn row(
    name: &str,
    arn: &str,
    created: i64,
    password: [String; 4],
    credentials: &PrincipalCredentials,
) -> Vec<String> {
    let mut cells = vec![name.to_owned(), arn.to_owned(), report_time(created)];
    cells.extend(password);
    cells.push(bool_cell(credentials.mfa_devices > 0));
    cells.extend(key_cells(credentials.keys.first()));
    cells.extend(key_cells(credentials.keys.get(1)));
    // tokengate has no signing certificates.
    cells.extend([bool_cell(false), NA.into(), bool_cell(false), NA.into()]);
    cells
}

/// One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break — user
/// names may hold commas, and paths quotes.
fn csv_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

fn csv_line(out: &mut String, cells: &[impl AsRef<str>]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, cell.as_ref());
    }
    out.push('\n');
}

/// The credential report's CSV: the header, the `<root_account>` row, then one row per
/// user by name.
pub fn credential_report_csv(
    inventory: &CredentialInventory,
    policy: Option<&PasswordPolicy>,
) -> String {
    let account = &inventory.account.account_id;
    let mut out = String::new();
    csv_line(&mut out, &HEADER);
    // The root has no console password in tokengate; AWS writes not_supported for its
    // password columns except the last use, which has never happened.
    let root_password = [
        NOT_SUPPORTED.into(),
        NO_INFORMATION.into(),
        NOT_SUPPORTED.into(),
        NOT_SUPPORTED.into(),
    ];
    csv_line(
        &mut out,
        &row(
            ROOT_ROW_NAME,
            &format!("arn:aws:iam::{account}:root"),
            inventory.account.created,
            root_password,
            &inventory.root,
        ),
    );
    for (user, credentials) in &inventory.users {
        let password = password_cells(credentials.login_profile.as_ref(), policy);
        csv_line(
            &mut out,
            &row(
                &user.name,
                &arn::user_arn(account, &user.path, &user.name),
                user.created,
                password,
                credentials,
            ),
        );
    }
    out
}

pub(crate) async fn generate_credential_report(
    state: &Arc<AppState>,
    caller: &Caller,
    _p: &Params,
) -> Result<String, ApiError> {
    let now = state.clock.now().unix_timestamp();
    let stored = db(state, |s| s.credential_report()).await??;
    let mut x = Xml::fragment();
    if stored
        .as_ref()
        .is_some_and(|r| now - r.generated < REPORT_MAX_AGE_SECS)
    {
        // Real AWS answers COMPLETE with no Description (portal.md §1.1).
        x.text("State", "COMPLETE");
        return Ok(x.finish());
    }
    // The uses this replica has batched go in first (crate::usage).
    let usage = Arc::clone(state);
    let (inventory, policy) = db(state, move |s| {
        usage.usage.flush(s)?;
        Ok((s.credential_inventory()?, s.password_policy()?))
    })
    .await??;
    let report = StoredReport {
        generated: now,
        content: credential_report_csv(&inventory, policy.as_ref()).into_bytes(),
    };
    db(state, move |s| s.put_credential_report(&report)).await??;
    tracing::info!(by = %caller.principal.arn(), users = inventory.users.len(),
        "generated the credential report");
    x.text(
        "Description",
        if stored.is_none() {
            "No report exists. Starting a new report generation task"
        } else {
            // tokengate's text: AWS's for a report past four hours is not published.
            "The report is older than 4 hours. Starting a new report generation task"
        },
    );
    x.text("State", "STARTED");
    Ok(x.finish())
}

pub(crate) async fn get_credential_report(
    state: &Arc<AppState>,
    _caller: &Caller,
    _p: &Params,
) -> Result<String, ApiError> {
    let now = state.clock.now().unix_timestamp();
    let report = db(state, |s| s.credential_report())
        .await??
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::GONE,
                "ReportNotPresent",
                "The request was rejected because the credential report does not exist. To \
             generate a credential report, use GenerateCredentialReport.",
            )
        })?;
    if now - report.generated >= REPORT_MAX_AGE_SECS {
        return Err(ApiError::new(
            StatusCode::GONE,
            "ReportExpired",
            "The request was rejected because the most recent credential report has \
             expired. To generate a new credential report, use GenerateCredentialReport. For \
             more information about credential report expiration, see Getting credential \
             reports in the IAM User Guide.",
        ));
    }
    let mut x = Xml::fragment();
    x.text("Content", &data_encoding::BASE64.encode(&report.content));
    x.text("ReportFormat", "text/csv");
    x.text("GeneratedTime", &iso8601(report.generated));
    Ok(x.finish())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use tokengate_store::{Account, KeyLastUsed, User};

    use super::*;

    fn profile(changed: i64, last_used: Option<i64>) -> LoginProfile {
        LoginProfile {
            user_name: String::new(),
            password_hash: String::new(),
            created: changed,
            password_changed: changed,
            reset_required: false,
            last_used,
            max_session_duration: None,
        }
    }

    fn user(name: &str, path: &str) -> User {
        User {
            user_id: format!("AIDA{name}"),
            name: name.into(),
            path: path.into(),
            created: 1_700_000_000,
        }
    }

    fn key(id: &str, active: bool, last_used: Option<KeyLastUsed>) -> KeySummary {
        KeySummary {
            access_key_id: id.into(),
            active,
            created: 1_700_000_100,
            last_used,
        }
    }

    #[test]
    fn timestamps_have_an_offset_not_a_z() {
        assert_eq!(report_time(1_497_062_107), "2017-06-10T02:35:07+00:00");
    }

    #[test]
    fn rows_follow_aws_conventions() {
        let inventory = CredentialInventory {
            account: Account {
                account_id: "123456789012".into(),
                created: 1_600_000_000,
            },
            root: PrincipalCredentials {
                login_profile: None,
                keys: vec![key("AKIAROOT", true, None)],
                mfa_devices: 1,
            },
            users: vec![
                (user("no-password", "/"), PrincipalCredentials::default()),
                (
                    user("unused-password", "/team/"),
                    PrincipalCredentials {
                        login_profile: Some(profile(1_700_000_200, None)),
                        keys: vec![
                            key(
                                "AKIA1",
                                true,
                                Some(KeyLastUsed {
                                    at: 1_700_001_000,
                                    service: "sts".into(),
                                    region: "eu-west-1".into(),
                                }),
                            ),
                            key("AKIA2", false, None),
                        ],
                        mfa_devices: 2,
                    },
                ),
                (
                    user("used,password", "/"),
                    PrincipalCredentials {
                        login_profile: Some(profile(1_700_000_200, Some(1_700_000_500))),
                        ..PrincipalCredentials::default()
                    },
                ),
            ],
        };
        let policy = PasswordPolicy {
            minimum_length: 6,
            require_symbols: false,
            require_numbers: false,
            require_uppercase: false,
            require_lowercase: false,
            allow_users_to_change: false,
            max_age_days: Some(1),
            reuse_prevention: None,
            hard_expiry: None,
        };
        let csv = credential_report_csv(&inventory, Some(&policy));
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], HEADER.join(","));
        assert_eq!(
            lines[1],
            "<root_account>,arn:aws:iam::123456789012:root,2020-09-13T12:26:40+00:00,\
             not_supported,no_information,not_supported,not_supported,true,\
             true,2023-11-14T22:15:00+00:00,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A"
        );
        assert_eq!(
            lines[2],
            "no-password,arn:aws:iam::123456789012:user/no-password,2023-11-14T22:13:20+00:00,\
             false,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,\
             false,N/A,false,N/A"
        );
        assert_eq!(
            lines[3],
            "unused-password,arn:aws:iam::123456789012:user/team/unused-password,\
             2023-11-14T22:13:20+00:00,true,no_information,2023-11-14T22:16:40+00:00,\
             2023-11-15T22:16:40+00:00,true,true,2023-11-14T22:15:00+00:00,\
             2023-11-14T22:30:00+00:00,eu-west-1,sts,false,2023-11-14T22:15:00+00:00,N/A,N/A,\
             N/A,false,N/A,false,N/A"
        );
        // A comma in a name is quoted (RFC 4180); the row keeps 22 fields.
        assert!(
            lines[4].starts_with(
                "\"used,password\",\"arn:aws:iam::123456789012:user/used,password\",\
                 2023-11-14T22:13:20+00:00,true,2023-11-14T22:21:40+00:00,"
            ),
            "{}",
            lines[4]
        );
        assert!(lines[4].ends_with(",N/A,false,N/A,false,N/A"));
        assert_eq!(lines.len(), 5);
        // Without a rotation policy, password_next_rotation is N/A.
        let csv = credential_report_csv(&inventory, None);
        let cells: Vec<&str> = csv.lines().nth(3).unwrap().split(',').collect();
        assert_eq!(cells[6], "N/A");
        for line in csv.lines().filter(|l| !l.contains('"')) {
            assert_eq!(line.split(',').count(), 22, "{line}");
        }
    }
}
