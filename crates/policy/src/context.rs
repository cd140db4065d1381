//! The request context: condition keys and their values (policy.md §3).

use std::collections::BTreeMap;

use crate::scalar::{Decimal, Network, parse_date};

/// The value of one condition key. Values are kept as text, as IAM does: each condition
/// operator reads them its own way (a `Numeric*` operator reads a decimal, `Date*` a date,
/// `Bool` `true`/`false`), and a value that does not read as the operator's type does not
/// match (policy.md §2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextValue {
    /// A single-valued key (`aws:username`, `aws:SourceIp`, `aws:MultiFactorAuthPresent`).
    Single(String),
    /// A multivalued key (`aws:TagKeys`): only `ForAllValues:` / `ForAnyValue:` operators
    /// match it (§2.3, "Set operator is required for a multi-value key"). An empty list is
    /// "a null data set".
    Multi(Vec<String>),
}

impl ContextValue {
    /// Builds a value from a simulator `ContextEntry` (§4.7): `kind` is the
    /// `ContextKeyType` (`string`, `stringList`, `numeric`, `numericList`, `boolean`,
    /// `booleanList`, `ip`, `ipList`, `binary`, `binaryList`, `date`, `dateList`).
    /// Single types take exactly one value. Each value must read as its type.
    ///
    /// The error is an `InvalidInput` message for the caller to send.
    pub fn from_simulator(kind: &str, values: Vec<String>) -> Result<ContextValue, String> {
        let (base, list) = match kind.strip_suffix("List") {
            Some(base) => (base, true),
            None => (kind, false),
        };
        let valid: fn(&str) -> bool = match base {
            "string" | "binary" => |_| true,
            "numeric" => |v| Decimal::parse(v).is_some(),
            "boolean" => |v| v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"),
            "ip" => |v| Network::parse(v).is_some(),
            "date" => |v| parse_date(v).is_some(),
            _ => return Err(format!("Invalid ContextKeyType: {kind}")),
        };
        if let Some(bad) = values.iter().find(|v| !valid(v)) {
            return Err(format!("Invalid value {bad} for ContextKeyType {kind}"));
        }
        if list {
            return Ok(ContextValue::Multi(values));
        }
        let mut values = values.into_iter();
        match (values.next(), values.next()) {
            (Some(value), None) => Ok(ContextValue::Single(value)),
            _ => Err(format!("ContextKeyType {kind} takes exactly one value")),
        }
    }

    /// A multivalued key.
    pub fn list<I: IntoIterator<Item = S>, S: Into<String>>(values: I) -> ContextValue {
        ContextValue::Multi(values.into_iter().map(Into::into).collect())
    }
}

impl From<&str> for ContextValue {
    fn from(value: &str) -> ContextValue {
        ContextValue::Single(value.to_owned())
    }
}

impl From<String> for ContextValue {
    fn from(value: String) -> ContextValue {
        ContextValue::Single(value)
    }
}

impl From<bool> for ContextValue {
    fn from(value: bool) -> ContextValue {
        ContextValue::Single(if value { "true" } else { "false" }.to_owned())
    }
}

impl From<u64> for ContextValue {
    fn from(value: u64) -> ContextValue {
        ContextValue::Single(value.to_string())
    }
}

/// Condition keys present in a request. Key names are case-insensitive, tag-key parts
/// included (`aws:PrincipalTag/Team` = `AWS:principaltag/team`, §2.2). A key not inserted
/// is absent, which is not the same as an empty value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Lower-cased key → (key as inserted, value). A `BTreeMap` keeps iteration
    /// deterministic and needs no random hasher state.
    entries: BTreeMap<String, (String, ContextValue)>,
}

impl Context {
    /// A context with no keys, usable in constants.
    pub const EMPTY: Context = Context {
        entries: BTreeMap::new(),
    };

    /// An empty context.
    pub fn new() -> Self {
        Context::default()
    }

    /// Sets `key` (replacing any value under any spelling of the same key).
    pub fn insert(&mut self, key: &str, value: ContextValue) {
        self.entries
            .insert(key.to_lowercase(), (key.to_owned(), value));
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<ContextValue> {
        self.entries
            .remove(&key.to_lowercase())
            .map(|(_, value)| value)
    }

    /// The value of `key`, matched case-insensitively.
    pub fn get(&self, key: &str) -> Option<&ContextValue> {
        self.get_lower(&key.to_lowercase())
    }

    /// Keys (as first inserted) and values, ordered by lower-cased key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ContextValue)> {
        self.entries
            .values()
            .map(|(key, value)| (key.as_str(), value))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is present.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn get_lower(&self, lower: &str) -> Option<&ContextValue> {
        self.entries.get(lower).map(|(_, value)| value)
    }

    /// The value of a single-valued key, for policy variables (§2.4: "You can't use a
    /// multivalued condition key as a variable").
    pub(crate) fn single_lower(&self, lower: &str) -> Option<&str> {
        match self.get_lower(lower)? {
            ContextValue::Single(value) => Some(value),
            ContextValue::Multi(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_case_insensitive() {
        let mut context = Context::new();
        context.insert("aws:PrincipalTag/Team", "red".into());
        assert_eq!(
            context.get("AWS:principaltag/team"),
            Some(&ContextValue::from("red"))
        );
        context.insert("aws:principaltag/TEAM", "blue".into());
        assert_eq!(context.len(), 1);
        assert_eq!(
            context.get("aws:PrincipalTag/Team"),
            Some(&ContextValue::from("blue"))
        );
    }

    #[test]
    fn simulator_types() {
        let one = |s: &str| vec![s.to_owned()];
        assert_eq!(
            ContextValue::from_simulator("boolean", one("True")),
            Ok(ContextValue::Single("True".into()))
        );
        assert!(ContextValue::from_simulator("boolean", one("yes")).is_err());
        assert!(ContextValue::from_simulator("numeric", one("1.5")).is_ok());
        assert!(ContextValue::from_simulator("numeric", one("x")).is_err());
        assert!(ContextValue::from_simulator("ip", one("10.0.0.0/8")).is_ok());
        assert!(ContextValue::from_simulator("date", one("2019-04-25T11:00:00Z")).is_ok());
        assert!(ContextValue::from_simulator("date", one("tomorrow")).is_err());
        assert!(ContextValue::from_simulator("string", vec![]).is_err());
        assert!(ContextValue::from_simulator("string", vec!["a".into(), "b".into()]).is_err());
        assert_eq!(
            ContextValue::from_simulator("stringList", vec!["a".into(), "b".into()]),
            Ok(ContextValue::list(["a", "b"]))
        );
        assert!(ContextValue::from_simulator("float", one("1")).is_err());
    }
}
