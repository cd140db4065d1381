//! Trust-policy principals bound to unique ids (policy.md §8.5): IAM resolves the users and
//! roles a trust policy names to their unique ids when it stores the policy, so a principal
//! deleted and created again under the same name — a different entity — is not trusted in
//! its place, and the policy then shows the old unique id where the ARN was.
//!
//! tokengate keeps the document as written plus the bindings ARN → unique id taken when it
//! was stored ([`PrincipalBinding`]); [`effective_trust_policy`] gives the document with every
//! binding whose entity is gone (or is another entity now) replaced by the bound unique id,
//! which matches no caller. Both the authorization cache (crate::principals) and GetRole read
//! trust policies through it.

use std::borrow::Cow;

use serde_json::Value;
use tokengate_store::{PrincipalBinding, Role, Store, StoreError};

/// The `AWS` principals a trust policy names, as written (a string or a list of strings per
/// statement). The engine keeps its compiled principals to itself; the document has already
/// passed its validation, so only its shape is read here.
pub fn aws_principals(document: &str) -> Vec<String> {
    let Ok(json) = serde_json::from_str::<Value>(document) else {
        return Vec::new();
    };
    let statements = match json.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for statement in statements {
        match statement.get("Principal").and_then(|p| p.get("AWS")) {
            Some(Value::String(s)) => out.push(s.clone()),
            Some(Value::Array(list)) => {
                out.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
            }
            _ => {}
        }
    }
    out
}

/// A user or role of `account` that `principal` names: (is a role, path, name). Account
/// principals (`:root`, a bare id), other accounts and session ARNs are not entities to
/// look up.
pub fn named_entity<'a>(account: &str, principal: &'a str) -> Option<(bool, String, &'a str)> {
    let rest = principal.strip_prefix("arn:aws:iam::")?;
    let (acct, resource) = rest.split_once(':')?;
    if acct != account {
        return None;
    }
    // `role/p/q/name` → (`/p/q/`, `name`).
    let (role, slashed) = match resource.strip_prefix("role") {
        Some(r) => (true, r),
        None => (false, resource.strip_prefix("user")?),
    };
    let (head, name) = slashed.rsplit_once('/')?;
    if !head.is_empty() && !head.starts_with('/') {
        return None;
    }
    Some((role, format!("{head}/"), name))
}

/// Whether `binding` still names the entity it was bound to: the user or role of its ARN
/// exists with exactly that path and name, and has the bound unique id.
pub fn binding_holds(store: &dyn Store, binding: &PrincipalBinding) -> Result<bool, StoreError> {
    // Bindings are made for this account's users and roles only: the ARN names the account.
    let account = binding
        .arn
        .strip_prefix("arn:aws:iam::")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_default();
    let Some((role, path, name)) = named_entity(account, &binding.arn) else {
        return Ok(true);
    };
    Ok(if role {
        store
            .role(name)?
            .is_some_and(|r| r.name == name && r.path == path && r.role_id == binding.unique_id)
    } else {
        store
            .user(name)?
            .is_some_and(|u| u.name == name && u.path == path && u.user_id == binding.unique_id)
    })
}

/// `role`'s trust policy as it applies now: the stored text when every binding holds, else
/// the document with each stale principal ARN replaced by its bound unique id.
pub fn effective_trust_policy<'r>(
    store: &dyn Store,
    role: &'r Role,
) -> Result<Cow<'r, str>, StoreError> {
    let mut stale = Vec::new();
    for binding in &role.trust_principals {
        if !binding_holds(store, binding)? {
            stale.push(binding);
        }
    }
    if stale.is_empty() {
        return Ok(Cow::Borrowed(&role.assume_role_policy));
    }
    Ok(Cow::Owned(replace_principals(
        &role.assume_role_policy,
        &stale,
    )))
}

/// `document` with each `Principal.AWS` string equal to a binding's ARN replaced by its
/// unique id. A document that is not JSON (it always is: it was validated) is returned as is.
fn replace_principals(document: &str, stale: &[&PrincipalBinding]) -> String {
    let Ok(mut json) = serde_json::from_str::<Value>(document) else {
        return document.to_owned();
    };
    let replace = |v: &mut Value| {
        if let Value::String(s) = v
            && let Some(b) = stale.iter().find(|b| b.arn == *s)
        {
            *s = b.unique_id.clone();
        }
    };
    let statements: Vec<&mut Value> = match json.get_mut("Statement") {
        Some(Value::Array(list)) => list.iter_mut().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    for statement in statements {
        match statement
            .get_mut("Principal")
            .and_then(|p| p.get_mut("AWS"))
        {
            Some(Value::Array(list)) => list.iter_mut().for_each(replace),
            Some(one) => replace(one),
            None => {}
        }
    }
    serde_json::to_string(&json).unwrap_or_else(|_| document.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_policy_principals_as_written() {
        let doc = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/a"},
             "Action":"sts:AssumeRole"},
            {"Effect":"Allow","Principal":{"AWS":["123","arn:aws:iam::1:role/p/r"],
             "Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"},
            {"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole"}]}"#;
        assert_eq!(
            aws_principals(doc),
            [
                "arn:aws:iam::111122223333:user/a",
                "123",
                "arn:aws:iam::1:role/p/r"
            ]
        );
        let single = r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"x"},"Action":"a:b"}}"#;
        assert_eq!(aws_principals(single), ["x"]);
        assert!(aws_principals("not json").is_empty());
    }

    #[test]
    fn principals_that_name_entities_of_this_account() {
        let a = "111122223333";
        assert_eq!(
            named_entity(a, "arn:aws:iam::111122223333:user/alice"),
            Some((false, "/".to_owned(), "alice"))
        );
        assert_eq!(
            named_entity(a, "arn:aws:iam::111122223333:role/eng/ci/deploy"),
            Some((true, "/eng/ci/".to_owned(), "deploy"))
        );
        for other in [
            "arn:aws:iam::111122223333:root",
            "111122223333",
            "arn:aws:iam::999999999999:user/alice",
            "arn:aws:sts::111122223333:assumed-role/r/s",
            "arn:aws:iam::111122223333:group/g",
        ] {
            assert_eq!(named_entity(a, other), None, "{other}");
        }
    }

    #[test]
    fn stale_principals_become_their_unique_ids() {
        let doc = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:user/a"},"Action":"sts:AssumeRole"},
            {"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::1:user/a","arn:aws:iam::1:role/r"]},
             "Action":"sts:AssumeRole"}]}"#;
        let a = PrincipalBinding {
            arn: "arn:aws:iam::1:user/a".into(),
            unique_id: "AIDAOLD".into(),
        };
        let out: Value = serde_json::from_str(&replace_principals(doc, &[&a])).unwrap();
        assert_eq!(out["Statement"][0]["Principal"]["AWS"], "AIDAOLD");
        assert_eq!(
            out["Statement"][1]["Principal"]["AWS"],
            serde_json::json!(["AIDAOLD", "arn:aws:iam::1:role/r"])
        );
    }
}
