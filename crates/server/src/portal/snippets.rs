//! The portal's `~/.aws/config` snippets for `tokengate login` as a `credential_process`
//! (docs/login.md), and the credentials' time left in words.

use axum::http::{HeaderMap, header};

/// Where the portal was reached — `http://` and the request's `Host`, when it is a plain
/// `host[:port]` — so the snippets name the endpoint the user actually uses.
pub fn endpoint(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
    match host {
        Some(host) => format!("http://{host}"),
        None => "http://localhost:8787".to_owned(),
    }
}

/// The long-term key's profile (named after the user) and the profile whose credentials
/// come from `tokengate login` (`NAME-mfa`), as docs/login.md sets them up.
pub fn user_config(endpoint: &str, user: &str, mfa_serial: Option<&str>) -> String {
    let mut out = format!(
        "# Your access key goes in ~/.aws/credentials as [{user}].\n\
         [profile {user}]\n\
         endpoint_url = {endpoint}\n\
         region = us-east-1\n"
    );
    if let Some(serial) = mfa_serial {
        out.push_str(&format!("mfa_serial = {serial}\n"));
    }
    out.push_str(&format!(
        "\n[profile {user}-mfa]\n\
         credential_process = tokengate login --profile {user}\n\
         endpoint_url = {endpoint}\n\
         region = us-east-1"
    ));
    out
}

/// The user's profiles, a role profile assumed from them (`USER-ROLE`) and the profile
/// whose credentials come from `tokengate login` for it (`USER-ROLE-mfa`).
pub fn role_config(
    endpoint: &str,
    user: &str,
    role: &str,
    role_arn: &str,
    mfa_serial: Option<&str>,
) -> String {
    let mut out = format!(
        "# Your access key goes in ~/.aws/credentials as [{user}].\n\
         [profile {user}]\n\
         endpoint_url = {endpoint}\n\
         region = us-east-1\n"
    );
    let mfa = mfa_serial.map_or(String::new(), |s| format!("mfa_serial = {s}\n"));
    out.push_str(&mfa);
    out.push_str(&format!(
        "\n[profile {user}-{role}]\n\
         role_arn = {role_arn}\n\
         source_profile = {user}\n\
         {mfa}\
         endpoint_url = {endpoint}\n\
         region = us-east-1\n\
         \n[profile {user}-{role}-mfa]\n\
         credential_process = tokengate login --profile {user}-{role}\n\
         endpoint_url = {endpoint}\n\
         region = us-east-1"
    ));
    out
}

/// `seconds` left, in words: "11 hours 59 minutes", "5 minutes", "less than a minute".
pub fn time_left(seconds: i64) -> String {
    let minutes = seconds.max(0) / 60;
    let (h, m) = (minutes / 60, minutes % 60);
    let unit = |n: i64, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    match (h, m) {
        (0, 0) => "less than a minute".to_owned(),
        (0, m) => unit(m, "minute"),
        (h, 0) => unit(h, "hour"),
        (h, m) => format!("{} {}", unit(h, "hour"), unit(m, "minute")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_is_the_host_reached() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "localhost:8787".parse().unwrap());
        assert_eq!(endpoint(&h), "http://localhost:8787");
        h.insert(header::HOST, "evil\"host".parse().unwrap());
        assert_eq!(endpoint(&h), "http://localhost:8787");
    }

    #[test]
    fn snippets_name_the_profiles_login_reads() {
        let c = user_config("http://localhost:1", "alice", Some("arn:aws:iam::0:mfa/a"));
        assert!(c.contains(
            "[profile alice-mfa]\ncredential_process = tokengate login --profile alice\n"
        ));
        assert!(c.contains("mfa_serial = arn:aws:iam::0:mfa/a\n"));
        let r = role_config("http://h", "alice", "dev", "arn:aws:iam::0:role/dev", None);
        assert!(r.contains("[profile alice-dev]\nrole_arn = arn:aws:iam::0:role/dev\nsource_profile = alice\nendpoint_url"));
        assert!(r.contains("credential_process = tokengate login --profile alice-dev\n"));
    }

    #[test]
    fn time_left_in_words() {
        assert_eq!(time_left(43_200), "12 hours");
        assert_eq!(time_left(3_661), "1 hour 1 minute");
        assert_eq!(time_left(125), "2 minutes");
        assert_eq!(time_left(-5), "less than a minute");
    }
}
