//! Request parameters and their validation, with AWS's `ValidationError` texts
//! (sts-iam.md §1.1 and §1.4): every constraint of the botocore models is enforced here,
//! since boto3 checks only minimums and sends the rest.
//!
//! Messages read `N validation error(s) detected: Value 'v' at 'member' failed to satisfy
//! constraint: Member must …`, with the members in request order, joined by `; `.

use crate::error::ApiError;

/// The decoded parameters of one request (form body and query string, in order).
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

/// A character class used by a model `pattern`, with the pattern's text for messages.
#[derive(Debug, Clone, Copy)]
pub struct Pattern {
    /// The pattern as the AWS model writes it.
    pub text: &'static str,
    /// Whether one character belongs to the class.
    pub allows: fn(char) -> bool,
    /// Whether the pattern is `+` (at least one) — length rules cover that here.
    pub _plus: bool,
}

fn word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `[\w+=,.@-]+` (user and device names).
pub const NAME: Pattern = Pattern {
    text: r"[\w+=,.@-]+",
    allows: |c| word(c) || "+=,.@-".contains(c),
    _plus: true,
};
/// `[\w+=/:,.@-]*` (MFA serial numbers, STS).
pub const SERIAL: Pattern = Pattern {
    text: r"[\w+=/:,.@-]*",
    allows: |c| word(c) || "+=/:,.@-".contains(c),
    _plus: false,
};
/// `[\d]*` (token codes, STS).
pub const DIGITS: Pattern = Pattern {
    text: r"[\d]*",
    allows: |c| c.is_ascii_digit(),
    _plus: false,
};
/// `[\w]*` (access key ids, STS).
pub const WORD: Pattern = Pattern {
    text: r"[\w]*",
    allows: word,
    _plus: false,
};
/// `[\w]+` (access key ids, IAM).
pub const WORD_PLUS: Pattern = Pattern {
    text: r"[\w]+",
    allows: word,
    _plus: true,
};
/// `[\u0020-\u00FF]+` (pagination markers).
pub const MARKER: Pattern = Pattern {
    text: r"[\u0020-\u00FF]+",
    allows: |c| ('\u{20}'..='\u{ff}').contains(&c),
    _plus: true,
};

/// A string parameter's constraints.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The wire name, e.g. `UserName`.
    pub name: &'static str,
    /// Minimum length in characters.
    pub min: usize,
    /// Maximum length in characters.
    pub max: usize,
    /// Allowed characters.
    pub pattern: Option<Pattern>,
}

impl Params {
    /// Wraps decoded pairs.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    /// The members of list parameter `name` (`name.member.1`, `name.member.2`, …), in
    /// order, up to the first missing index.
    pub fn list(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(v) = self.get(&format!("{name}.member.{}", out.len() + 1)) {
            out.push(v.to_owned());
        }
        out
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Collects validation failures for one request, then answers with all of them.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<String>,
}

/// The camelCase member name AWS uses in messages (`UserName` → `userName`).
fn member(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

impl Validator {
    /// A validator with no failures.
    pub fn new() -> Self {
        Self::default()
    }

    fn fail(&mut self, value: Option<&str>, name: &str, constraint: impl std::fmt::Display) {
        let value = match value {
            Some(v) => format!("'{v}'"),
            None => "null".to_owned(),
        };
        self.errors.push(format!(
            "Value {value} at '{}' failed to satisfy constraint: Member must {constraint}",
            member(name)
        ));
    }

    /// Records a failure whose text is already in AWS's `Value … at … failed to satisfy
    /// constraint: …` form (list members, whose member paths are built by the caller).
    pub fn custom(&mut self, message: String) {
        self.errors.push(message);
    }

    /// Records that `value` does not match `rule`'s pattern (for shapes a character class
    /// cannot express).
    pub fn pattern_failure(&mut self, value: &str, rule: Rule) {
        if let Some(p) = rule.pattern {
            self.fail(
                Some(value),
                rule.name,
                format_args!("satisfy regular expression pattern: {}", p.text),
            );
        }
    }

    /// An optional string parameter.
    pub fn optional(&mut self, params: &Params, rule: Rule) -> Option<String> {
        let value = params.get(rule.name)?;
        let len = value.chars().count();
        let mut ok = true;
        if len < rule.min {
            self.fail(
                Some(value),
                rule.name,
                format_args!("have length greater than or equal to {}", rule.min),
            );
            ok = false;
        }
        if len > rule.max {
            self.fail(
                Some(value),
                rule.name,
                format_args!("have length less than or equal to {}", rule.max),
            );
            ok = false;
        }
        if rule.pattern.is_some_and(|p| !value.chars().all(p.allows)) {
            self.pattern_failure(value, rule);
            ok = false;
        }
        ok.then(|| value.to_owned())
    }

    /// A required string parameter.
    pub fn required(&mut self, params: &Params, rule: Rule) -> Option<String> {
        if params.get(rule.name).is_none() {
            self.fail(None, rule.name, "not be null");
            return None;
        }
        self.optional(params, rule)
    }

    /// A required secret parameter (a TOTP seed): checked like [`Validator::required`], but
    /// its value never appears in the message — AWS echoes values, a secret must not travel
    /// back into responses or anything that records them.
    pub fn required_secret(&mut self, params: &Params, rule: Rule) -> Option<String> {
        let mut inner = Validator::new();
        let out = inner.required(params, rule);
        let quoted = params.get(rule.name).map(|v| format!("'{v}'"));
        self.errors
            .extend(inner.errors.into_iter().map(|e| match &quoted {
                Some(q) => e.replace(q.as_str(), "'***'"),
                None => e,
            }));
        out
    }

    /// An optional integer parameter within `min..=max`.
    pub fn integer(
        &mut self,
        params: &Params,
        name: &'static str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let raw = params.get(name)?;
        let Ok(value) = raw.trim().parse::<i64>() else {
            self.fail(Some(raw), name, "be a number");
            return None;
        };
        if value < min {
            self.fail(
                Some(raw),
                name,
                format_args!("have value greater than or equal to {min}"),
            );
            return None;
        }
        if value > max {
            self.fail(
                Some(raw),
                name,
                format_args!("have value less than or equal to {max}"),
            );
            return None;
        }
        Some(value)
    }

    /// An optional boolean parameter (`true` / `false`, any case, as the query protocol
    /// writes them).
    pub fn boolean(&mut self, params: &Params, name: &'static str) -> Option<bool> {
        let raw = params.get(name)?;
        match raw.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                self.fail(Some(raw), name, "be a boolean");
                None
            }
        }
    }

    /// An optional enum parameter.
    pub fn one_of(
        &mut self,
        params: &Params,
        name: &'static str,
        allowed: &[&'static str],
        required: bool,
    ) -> Option<&'static str> {
        let Some(raw) = params.get(name) else {
            if required {
                self.fail(None, name, "not be null");
            }
            return None;
        };
        let found = allowed.iter().copied().find(|a| *a == raw);
        if found.is_none() {
            self.fail(
                Some(raw),
                name,
                format_args!("satisfy enum value set: [{}]", allowed.join(", ")),
            );
        }
        found
    }

    /// Ok when nothing failed, else the AWS `ValidationError`.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.errors.len() {
            0 => Ok(()),
            1 => Err(ApiError::validation(format!(
                "1 validation error detected: {}",
                self.errors.join("; ")
            ))),
            n => Err(ApiError::validation(format!(
                "{n} validation errors detected: {}",
                self.errors.join("; ")
            ))),
        }
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
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        )
    }

    const TOKEN: Rule = Rule {
        name: "TokenCode",
        min: 6,
        max: 6,
        pattern: Some(DIGITS),
    };

    #[test]
    fn aws_texts() {
        let p = params(&[("TokenCode", "eifjccgncvncgfkjgjtjbfjilgtjrjbvgbvelhivvjlt")]);
        let mut v = Validator::new();
        assert!(v.optional(&p, TOKEN).is_none());
        let e = v.finish().unwrap_err();
        assert_eq!(e.code, "ValidationError");
        assert_eq!(
            e.message,
            "2 validation errors detected: Value 'eifjccgncvncgfkjgjtjbfjilgtjrjbvgbvelhivvjlt' at \
             'tokenCode' failed to satisfy constraint: Member must have length less than or equal \
             to 6; Value 'eifjccgncvncgfkjgjtjbfjilgtjrjbvgbvelhivvjlt' at 'tokenCode' failed to \
             satisfy constraint: Member must satisfy regular expression pattern: [\\d]*"
        );
        let mut v = Validator::new();
        assert_eq!(
            v.integer(
                &params(&[("DurationSeconds", "999999")]),
                "DurationSeconds",
                900,
                129600
            ),
            None
        );
        assert_eq!(
            v.finish().unwrap_err().message,
            "1 validation error detected: Value '999999' at 'durationSeconds' failed to satisfy \
             constraint: Member must have value less than or equal to 129600"
        );
        let mut v = Validator::new();
        v.required(
            &params(&[]),
            Rule {
                name: "UserName",
                min: 1,
                max: 64,
                pattern: Some(NAME),
            },
        );
        assert_eq!(
            v.finish().unwrap_err().message,
            "1 validation error detected: Value null at 'userName' failed to satisfy constraint: \
             Member must not be null"
        );
    }

    #[test]
    fn secrets_are_not_echoed() {
        let rule = Rule {
            name: "Base32StringSeed",
            min: 16,
            max: 256,
            pattern: Some(DIGITS),
        };
        let mut v = Validator::new();
        assert!(
            v.required_secret(&params(&[("Base32StringSeed", "JBSWY3DP")]), rule)
                .is_none()
        );
        let message = v.finish().unwrap_err().message;
        assert!(!message.contains("JBSWY3DP"), "{message}");
        assert!(
            message.contains("Value '***' at 'base32StringSeed'"),
            "{message}"
        );
    }

    #[test]
    fn valid_values_pass() {
        let mut v = Validator::new();
        assert_eq!(
            v.optional(&params(&[("TokenCode", "123456")]), TOKEN)
                .as_deref(),
            Some("123456")
        );
        assert_eq!(
            v.integer(&params(&[("D", "900")]), "D", 900, 1000),
            Some(900)
        );
        assert_eq!(
            v.one_of(
                &params(&[("S", "Active")]),
                "S",
                &["Active", "Inactive"],
                true
            ),
            Some("Active")
        );
        assert!(v.finish().is_ok());
    }
}
