//! Condition operators (policy.md §2.3): compiled from the `Condition` block at parse time,
//! evaluated against a [`Context`].
//!
//! Rules, each from §2.2–§2.3 unless marked as a decision:
//! * Operators, and keys within one operator, are ANDed; the values of one key are ORed;
//!   for a negated operator (`StringNotEquals`, `ArnNotLike`, …) the values are ANDed, i.e.
//!   a request value matches when it matches *none* of them.
//! * Key absent: false, negated operators true, `…IfExists` true, `ForAllValues:` true,
//!   `ForAnyValue:` false. `Null` tests presence.
//! * A single-valued operator against a multivalued context key does not match, negated or
//!   not; `ForAllValues:`/`ForAnyValue:` against a single-valued key treat it as a
//!   one-element set; set operators apply a negated base operator to each request value.
//! * Decision: a request value that does not read as the operator's type (a non-number for
//!   `Numeric*`, a non-date for `Date*`, a non-address for `IpAddress`, a non-ARN for
//!   `Arn*`) matches nothing, for negated operators too (PMapper's simulator note for ARNs,
//!   extended to every typed operator).
//! * Decision: a policy value that does not read as the operator's type (`NumericEquals`
//!   `"abc"`, an invalid CIDR) is accepted at parse time and never matches. Invalid dates
//!   are rejected at parse time (`The policy failed legacy parsing`, §4.9).
//! * Decision on §2.4's contradiction: `Bool` accepts policy variables (the operator page
//!   and the §2.3 table say so); `Numeric*`, `Date*`, `BinaryEquals`, `IpAddress` and
//!   `Null` take their values literally.
//! * Decision on `Bool`: policy value `true` (any case) matches a request value `true` (any
//!   case); `false` matches any request value other than `true` (PMapper's simulator note);
//!   any other policy value never matches.
//! * Decision on §8.3: `ForAllValues:Null` and `ForAnyValue:Null` behave exactly like
//!   `Null` (iam-simulate's reading); there is no `NullIfExists`.

use crate::context::{Context, ContextValue};
use crate::pattern::{ArnPattern, ArnVariables, Template, Variable, is_arn};
use crate::scalar::{Decimal, Instant, Network, parse_date, parse_ip};

/// Comparison for `Numeric*` and `Date*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds<T: Ord>(self, request: &T, policy: &T) -> bool {
        match self {
            Cmp::Eq => request == policy,
            Cmp::Lt => request < policy,
            Cmp::Le => request <= policy,
            Cmp::Gt => request > policy,
            Cmp::Ge => request >= policy,
        }
    }
}

/// How a condition treats the request values of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Single,
    ForAllValues,
    ForAnyValue,
}

/// The operator family, with its compiled policy values.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Values {
    StringEquals(Vec<Template>),
    StringEqualsIgnoreCase(Vec<Template>),
    StringLike(Vec<Template>),
    Numeric(Cmp, Vec<Option<Decimal>>),
    Date(Cmp, Vec<Instant>),
    Bool(Vec<Template>),
    Binary(Vec<String>),
    Ip(Vec<Option<Network>>),
    Arn(Vec<ArnPattern>),
    Null(Vec<Option<bool>>),
}

/// A parsed operator name: `[ForAllValues:|ForAnyValue:]Base[IfExists]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Operator {
    base: Base,
    negated: bool,
    set: SetOp,
    if_exists: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Binary,
    Ip,
    Arn,
    Null,
}

impl Operator {
    /// Reads an operator name (case-sensitive); `None` for an unknown operator.
    pub(crate) fn parse(name: &str) -> Option<Operator> {
        let (set, rest) = if let Some(rest) = name.strip_prefix("ForAllValues:") {
            (SetOp::ForAllValues, rest)
        } else if let Some(rest) = name.strip_prefix("ForAnyValue:") {
            (SetOp::ForAnyValue, rest)
        } else {
            (SetOp::Single, name)
        };
        let (if_exists, rest) = match rest.strip_suffix("IfExists") {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        let (base, negated) = match rest {
            "StringEquals" => (Base::StringEquals, false),
            "StringNotEquals" => (Base::StringEquals, true),
            "StringEqualsIgnoreCase" => (Base::StringEqualsIgnoreCase, false),
            "StringNotEqualsIgnoreCase" => (Base::StringEqualsIgnoreCase, true),
            "StringLike" => (Base::StringLike, false),
            "StringNotLike" => (Base::StringLike, true),
            "NumericEquals" => (Base::Numeric(Cmp::Eq), false),
            "NumericNotEquals" => (Base::Numeric(Cmp::Eq), true),
            "NumericLessThan" => (Base::Numeric(Cmp::Lt), false),
            "NumericLessThanEquals" => (Base::Numeric(Cmp::Le), false),
            "NumericGreaterThan" => (Base::Numeric(Cmp::Gt), false),
            "NumericGreaterThanEquals" => (Base::Numeric(Cmp::Ge), false),
            "DateEquals" => (Base::Date(Cmp::Eq), false),
            "DateNotEquals" => (Base::Date(Cmp::Eq), true),
            "DateLessThan" => (Base::Date(Cmp::Lt), false),
            "DateLessThanEquals" => (Base::Date(Cmp::Le), false),
            "DateGreaterThan" => (Base::Date(Cmp::Gt), false),
            "DateGreaterThanEquals" => (Base::Date(Cmp::Ge), false),
            "Bool" => (Base::Bool, false),
            "BinaryEquals" => (Base::Binary, false),
            "IpAddress" => (Base::Ip, false),
            "NotIpAddress" => (Base::Ip, true),
            "ArnEquals" | "ArnLike" => (Base::Arn, false),
            "ArnNotEquals" | "ArnNotLike" => (Base::Arn, true),
            "Null" if !if_exists => (Base::Null, false),
            _ => return None,
        };
        Some(Operator {
            base,
            negated,
            set,
            if_exists,
        })
    }

    /// Whether this is a `Date*` operator, whose values must be valid dates.
    pub(crate) fn is_date(&self) -> bool {
        matches!(self.base, Base::Date(_))
    }
}

/// One `operator: {key: values}` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Condition {
    operator: Operator,
    /// The key as written, for `context_keys()` and `missing_context`.
    pub(crate) key: String,
    lower: String,
    values: Values,
}

impl Condition {
    /// Compiles one key's values. `variables` is true for Version 2012-10-17. Returns
    /// `None` when a `Date*` value is not a date (the caller reports legacy parsing).
    pub(crate) fn compile(
        operator: Operator,
        key: &str,
        values: &[String],
        variables: bool,
    ) -> Option<Condition> {
        let templates = |wildcards| {
            values
                .iter()
                .map(|v| Template::compile(v, wildcards, variables))
                .collect()
        };
        let values = match operator.base {
            Base::StringEquals => Values::StringEquals(templates(false)),
            Base::StringEqualsIgnoreCase => Values::StringEqualsIgnoreCase(templates(false)),
            Base::StringLike => Values::StringLike(templates(true)),
            Base::Bool => Values::Bool(templates(false)),
            Base::Numeric(cmp) => {
                Values::Numeric(cmp, values.iter().map(|v| Decimal::parse(v)).collect())
            }
            Base::Date(cmp) => {
                let dates: Option<Vec<Instant>> = values.iter().map(|v| parse_date(v)).collect();
                Values::Date(cmp, dates?)
            }
            Base::Binary => Values::Binary(values.to_vec()),
            Base::Ip => Values::Ip(values.iter().map(|v| Network::parse(v)).collect()),
            Base::Arn => {
                let arn_vars = if variables {
                    ArnVariables::Anywhere
                } else {
                    ArnVariables::None
                };
                Values::Arn(
                    values
                        .iter()
                        .map(|v| ArnPattern::compile(v, arn_vars))
                        .collect(),
                )
            }
            Base::Null => Values::Null(
                values
                    .iter()
                    .map(|v| match v.to_ascii_lowercase().as_str() {
                        "true" => Some(true),
                        "false" => Some(false),
                        _ => None,
                    })
                    .collect(),
            ),
        };
        Some(Condition {
            operator,
            key: key.to_owned(),
            lower: key.to_lowercase(),
            values,
        })
    }

    /// Variables referenced by the policy values.
    pub(crate) fn variables(&self) -> Vec<&Variable> {
        match &self.values {
            Values::StringEquals(t)
            | Values::StringEqualsIgnoreCase(t)
            | Values::StringLike(t)
            | Values::Bool(t) => t.iter().flat_map(Template::variables).collect(),
            Values::Arn(a) => a.iter().flat_map(ArnPattern::variables).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the condition holds for `context`.
    pub(crate) fn holds(&self, context: &Context) -> bool {
        let value = context.get_lower(&self.lower);
        if let Values::Null(expected) = &self.values {
            let present = match value {
                None => false,
                Some(ContextValue::Multi(values)) => !values.is_empty(),
                Some(ContextValue::Single(_)) => true,
            };
            return expected.contains(&Some(!present));
        }
        let op = self.operator;
        let Some(value) = value else {
            return op.if_exists
                || match op.set {
                    SetOp::Single => op.negated,
                    SetOp::ForAllValues => true,
                    SetOp::ForAnyValue => false,
                };
        };
        match (op.set, value) {
            (_, ContextValue::Single(v)) => self.value_matches(v, context),
            (SetOp::Single, ContextValue::Multi(_)) => false,
            (SetOp::ForAllValues, ContextValue::Multi(vs)) => {
                vs.iter().all(|v| self.value_matches(v, context))
            }
            (SetOp::ForAnyValue, ContextValue::Multi(vs)) => {
                vs.iter().any(|v| self.value_matches(v, context))
            }
        }
    }

    /// One request value against the policy values, negation applied.
    fn value_matches(&self, request: &str, context: &Context) -> bool {
        let positive = match &self.values {
            Values::StringEquals(ts) => ts
                .iter()
                .any(|t| t.resolve(context).is_some_and(|p| p == request)),
            Values::StringEqualsIgnoreCase(ts) => ts.iter().any(|t| {
                t.resolve(context)
                    .is_some_and(|p| equal_ignore_case(&p, request))
            }),
            Values::StringLike(ts) => ts.iter().any(|t| t.matches(request, context, false)),
            Values::Bool(ts) => {
                let request_true = request.eq_ignore_ascii_case("true");
                ts.iter().any(|t| match t.resolve(context) {
                    Some(p) if p.eq_ignore_ascii_case("true") => request_true,
                    Some(p) if p.eq_ignore_ascii_case("false") => !request_true,
                    _ => false,
                })
            }
            Values::Numeric(cmp, policy) => {
                let Some(request) = Decimal::parse(request) else {
                    return false;
                };
                policy.iter().flatten().any(|p| cmp.holds(&request, p))
            }
            Values::Date(cmp, policy) => {
                let Some(request) = parse_date(request) else {
                    return false;
                };
                policy.iter().any(|p| cmp.holds(&request, p))
            }
            Values::Binary(policy) => policy.iter().any(|p| p == request),
            Values::Ip(policy) => {
                let Some(ip) = parse_ip(request) else {
                    return false;
                };
                policy.iter().flatten().any(|n| n.contains(ip))
            }
            Values::Arn(policy) => {
                if !is_arn(request) {
                    return false;
                }
                policy.iter().any(|p| p.matches(request, context))
            }
            Values::Null(_) => false,
        };
        positive != self.operator.negated
    }
}

fn equal_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.to_lowercase() == b.to_lowercase()
    }
}
