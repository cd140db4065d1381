//! Every condition operator of policy.md §2.3: key present and matching, present and not
//! matching, absent, `IfExists`, set operators, negations, several values, type errors.
#![allow(clippy::unwrap_used)]

mod common;

use common::{condition_allows, context};
use tokengate_policy::{Context, ContextValue};

fn s(v: &str) -> ContextValue {
    ContextValue::from(v)
}

fn list(v: &[&str]) -> ContextValue {
    ContextValue::list(v.iter().copied())
}

/// (condition block, context, expected) rows, each checked with a message naming the row.
fn check(rows: &[(&str, Context, bool)]) {
    for (i, (condition, ctx, expected)) in rows.iter().enumerate() {
        assert_eq!(
            condition_allows(condition, ctx),
            *expected,
            "row {i}: {condition} {ctx:?}"
        );
    }
}

fn none() -> Context {
    Context::new()
}

fn k(value: ContextValue) -> Context {
    context(&[("test:Key", value)])
}

#[test]
fn string_operators() {
    check(&[
        (r#"{"StringEquals":{"test:Key":"abc"}}"#, k(s("abc")), true),
        (r#"{"StringEquals":{"test:Key":"abc"}}"#, k(s("ABC")), false),
        (r#"{"StringEquals":{"test:Key":"abc"}}"#, none(), false),
        (r#"{"StringEquals":{"test:Key":"a*"}}"#, k(s("abc")), false),
        (
            r#"{"StringEquals":{"test:Key":["x","abc"]}}"#,
            k(s("abc")),
            true,
        ),
        (
            r#"{"StringEqualsIfExists":{"test:Key":"abc"}}"#,
            none(),
            true,
        ),
        (
            r#"{"StringEqualsIfExists":{"test:Key":"abc"}}"#,
            k(s("x")),
            false,
        ),
        (
            r#"{"StringNotEquals":{"test:Key":"abc"}}"#,
            k(s("abc")),
            false,
        ),
        (r#"{"StringNotEquals":{"test:Key":"abc"}}"#, k(s("x")), true),
        (r#"{"StringNotEquals":{"test:Key":"abc"}}"#, none(), true),
        (
            r#"{"StringNotEquals":{"test:Key":["x","y"]}}"#,
            k(s("y")),
            false,
        ),
        (
            r#"{"StringNotEquals":{"test:Key":["x","y"]}}"#,
            k(s("z")),
            true,
        ),
        (
            r#"{"StringNotEqualsIfExists":{"test:Key":"abc"}}"#,
            none(),
            true,
        ),
        (
            r#"{"StringEqualsIgnoreCase":{"test:Key":"AbC"}}"#,
            k(s("aBc")),
            true,
        ),
        (
            r#"{"StringEqualsIgnoreCase":{"test:Key":"ÄBC"}}"#,
            k(s("äbc")),
            true,
        ),
        (
            r#"{"StringEqualsIgnoreCase":{"test:Key":"abc"}}"#,
            k(s("abd")),
            false,
        ),
        (
            r#"{"StringEqualsIgnoreCase":{"test:Key":"abc"}}"#,
            none(),
            false,
        ),
        (
            r#"{"StringNotEqualsIgnoreCase":{"test:Key":"abc"}}"#,
            k(s("ABC")),
            false,
        ),
        (
            r#"{"StringNotEqualsIgnoreCase":{"test:Key":"abc"}}"#,
            none(),
            true,
        ),
        (r#"{"StringLike":{"test:Key":"a*c"}}"#, k(s("abbc")), true),
        (r#"{"StringLike":{"test:Key":"a?c"}}"#, k(s("abbc")), false),
        (r#"{"StringLike":{"test:Key":"A*"}}"#, k(s("abc")), false),
        (r#"{"StringLike":{"test:Key":"a*"}}"#, none(), false),
        (r#"{"StringLikeIfExists":{"test:Key":"a*"}}"#, none(), true),
        (r#"{"StringNotLike":{"test:Key":"a*"}}"#, k(s("abc")), false),
        (r#"{"StringNotLike":{"test:Key":"a*"}}"#, k(s("bcd")), true),
        (
            r#"{"StringNotLike":{"test:Key":["a*","b*"]}}"#,
            k(s("bcd")),
            false,
        ),
        (r#"{"StringNotLike":{"test:Key":"a*"}}"#, none(), true),
    ]);
}

#[test]
fn key_names_are_case_insensitive_values_are_not() {
    let ctx = context(&[("AWS:PrincipalTag/TEAM", s("Red"))]);
    assert!(condition_allows(
        r#"{"StringEquals":{"aws:principaltag/team":"Red"}}"#,
        &ctx
    ));
    assert!(!condition_allows(
        r#"{"StringEquals":{"aws:principaltag/team":"red"}}"#,
        &ctx
    ));
}

#[test]
fn numeric_operators() {
    check(&[
        (r#"{"NumericEquals":{"test:Key":"10"}}"#, k(s("10.0")), true),
        (r#"{"NumericEquals":{"test:Key":10}}"#, k(s("10")), true),
        (r#"{"NumericEquals":{"test:Key":"10"}}"#, k(s("11")), false),
        (r#"{"NumericEquals":{"test:Key":"10"}}"#, none(), false),
        (r#"{"NumericEquals":{"test:Key":"10"}}"#, k(s("ten")), false),
        (
            r#"{"NumericEquals":{"test:Key":["1","2"]}}"#,
            k(s("2")),
            true,
        ),
        (
            r#"{"NumericNotEquals":{"test:Key":"10"}}"#,
            k(s("11")),
            true,
        ),
        (
            r#"{"NumericNotEquals":{"test:Key":"10"}}"#,
            k(s("10")),
            false,
        ),
        (r#"{"NumericNotEquals":{"test:Key":"10"}}"#, none(), true),
        (
            r#"{"NumericNotEquals":{"test:Key":"10"}}"#,
            k(s("ten")),
            false,
        ),
        (
            r#"{"NumericNotEquals":{"test:Key":["1","2"]}}"#,
            k(s("2")),
            false,
        ),
        (
            r#"{"NumericLessThan":{"test:Key":"3600"}}"#,
            k(s("3599.5")),
            true,
        ),
        (
            r#"{"NumericLessThan":{"test:Key":"3600"}}"#,
            k(s("3600")),
            false,
        ),
        (
            r#"{"NumericLessThanEquals":{"test:Key":"3600"}}"#,
            k(s("3600")),
            true,
        ),
        (
            r#"{"NumericGreaterThan":{"test:Key":"-1"}}"#,
            k(s("0")),
            true,
        ),
        (
            r#"{"NumericGreaterThan":{"test:Key":"0.1"}}"#,
            k(s("0.1")),
            false,
        ),
        (
            r#"{"NumericGreaterThanEquals":{"test:Key":"0.1"}}"#,
            k(s("0.10")),
            true,
        ),
        (
            r#"{"NumericLessThanIfExists":{"test:Key":"1"}}"#,
            none(),
            true,
        ),
        (
            r#"{"NumericLessThanIfExists":{"test:Key":"1"}}"#,
            k(s("2")),
            false,
        ),
        (
            r#"{"NumericEquals":{"test:Key":"abc"}}"#,
            k(s("abc")),
            false,
        ),
    ]);
}

#[test]
fn date_operators() {
    let t = |v: &str| k(s(v));
    check(&[
        (
            r#"{"DateEquals":{"test:Key":"2020-01-01T00:00:00Z"}}"#,
            t("1577836800"),
            true,
        ),
        (
            r#"{"DateEquals":{"test:Key":"2020-01-01"}}"#,
            t("2020-01-01T00:00:00Z"),
            true,
        ),
        (
            r#"{"DateEquals":{"test:Key":"2020-01-01"}}"#,
            t("2020-01-02"),
            false,
        ),
        (r#"{"DateEquals":{"test:Key":"2020-01-01"}}"#, none(), false),
        (
            r#"{"DateNotEquals":{"test:Key":"2020-01-01"}}"#,
            t("2020-01-02"),
            true,
        ),
        (
            r#"{"DateNotEquals":{"test:Key":"2020-01-01"}}"#,
            none(),
            true,
        ),
        (
            r#"{"DateLessThan":{"test:Key":"2020-01-01T00:00:00Z"}}"#,
            t("2019-12-31T23:59:59Z"),
            true,
        ),
        (
            r#"{"DateLessThan":{"test:Key":"2020-01-01T00:00:00Z"}}"#,
            t("2020-01-01T00:00:00Z"),
            false,
        ),
        (
            r#"{"DateLessThanEquals":{"test:Key":"2020-01-01T00:00:00Z"}}"#,
            t("1577836800"),
            true,
        ),
        (
            r#"{"DateGreaterThan":{"test:Key":"2020-01-01T00:00:00Z"}}"#,
            t("2020-01-01T01:00:00+02:00"),
            false,
        ),
        (
            r#"{"DateGreaterThan":{"test:Key":"2020-01-01T00:00:00Z"}}"#,
            t("2020-01-01T01:00:00Z"),
            true,
        ),
        (
            r#"{"DateGreaterThanEquals":{"test:Key":"1577836800"}}"#,
            t("2020-01-01"),
            true,
        ),
        (
            r#"{"DateLessThanIfExists":{"test:Key":"2020-01-01"}}"#,
            none(),
            true,
        ),
        (
            r#"{"DateLessThan":{"test:Key":"2020-01-01"}}"#,
            t("yesterday"),
            false,
        ),
        (
            r#"{"DateNotEquals":{"test:Key":"2020-01-01"}}"#,
            t("yesterday"),
            false,
        ),
    ]);
}

#[test]
fn bool_operator() {
    check(&[
        (r#"{"Bool":{"test:Key":"true"}}"#, k(s("true")), true),
        (r#"{"Bool":{"test:Key":true}}"#, k(s("True")), true),
        (
            r#"{"Bool":{"test:Key":"TRUE"}}"#,
            k(ContextValue::from(true)),
            true,
        ),
        (r#"{"Bool":{"test:Key":"true"}}"#, k(s("false")), false),
        (r#"{"Bool":{"test:Key":"true"}}"#, none(), false),
        (r#"{"Bool":{"test:Key":"false"}}"#, k(s("false")), true),
        (r#"{"Bool":{"test:Key":"false"}}"#, k(s("asdf")), true),
        (r#"{"Bool":{"test:Key":"false"}}"#, none(), false),
        (r#"{"Bool":{"test:Key":"maybe"}}"#, k(s("maybe")), false),
        (r#"{"BoolIfExists":{"test:Key":"true"}}"#, none(), true),
        (
            r#"{"BoolIfExists":{"test:Key":"true"}}"#,
            k(s("false")),
            false,
        ),
    ]);
}

#[test]
fn binary_operator() {
    check(&[
        (
            r#"{"BinaryEquals":{"test:Key":"QmluYXJ5"}}"#,
            k(s("QmluYXJ5")),
            true,
        ),
        (
            r#"{"BinaryEquals":{"test:Key":"QmluYXJ5"}}"#,
            k(s("qmluyxj5")),
            false,
        ),
        (r#"{"BinaryEquals":{"test:Key":"QmluYXJ5"}}"#, none(), false),
        (
            r#"{"BinaryEqualsIfExists":{"test:Key":"QmluYXJ5"}}"#,
            none(),
            true,
        ),
    ]);
}

#[test]
fn ip_operators() {
    let ip = |v: &str| context(&[("aws:SourceIp", s(v))]);
    check(&[
        (
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            ip("203.0.113.9"),
            true,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            ip("203.0.112.9"),
            false,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.9"}}"#,
            ip("203.0.113.9"),
            true,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.9"}}"#,
            ip("203.0.113.8"),
            false,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32"]}}"#,
            ip("2001:db8::5"),
            true,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            none(),
            false,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            ip("not-an-ip"),
            false,
        ),
        (
            r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            ip("198.51.100.1"),
            true,
        ),
        (
            r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            ip("203.0.113.1"),
            false,
        ),
        (
            r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            none(),
            true,
        ),
        (
            r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            ip("not-an-ip"),
            false,
        ),
        (
            r#"{"IpAddressIfExists":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            none(),
            true,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"bogus"}}"#,
            ip("203.0.113.1"),
            false,
        ),
    ]);
}

#[test]
fn arn_operators() {
    let arn = |v: &str| k(s(v));
    let like = r#"{"ArnLike":{"test:Key":"arn:aws:iam::*:role/app-*"}}"#;
    check(&[
        (like, arn("arn:aws:iam::123456789012:role/app-web"), true),
        (like, arn("arn:aws:iam::123456789012:role/db"), false),
        (like, none(), false),
        (like, arn("app-web"), false),
        (
            r#"{"ArnEquals":{"test:Key":"arn:aws:iam::*:role/app-*"}}"#,
            arn("arn:aws:iam::1:role/app-x"),
            true,
        ),
        (
            r#"{"ArnNotLike":{"test:Key":"arn:aws:iam::*:role/app-*"}}"#,
            arn("arn:aws:iam::1:role/db"),
            true,
        ),
        (
            r#"{"ArnNotLike":{"test:Key":"arn:aws:iam::*:role/app-*"}}"#,
            arn("arn:aws:iam::1:role/app-x"),
            false,
        ),
        (
            r#"{"ArnNotLike":{"test:Key":"arn:aws:iam::*:role/app-*"}}"#,
            none(),
            true,
        ),
        (
            r#"{"ArnNotLike":{"test:Key":"arn:aws:iam::*:role/app-*"}}"#,
            arn("test2"),
            false,
        ),
        (
            r#"{"ArnNotEquals":{"test:Key":"arn:aws:iam::*:role/app-*"}}"#,
            arn("arn:aws:iam::1:role/x"),
            true,
        ),
        (
            r#"{"ArnLikeIfExists":{"test:Key":"arn:aws:iam::*:role/*"}}"#,
            none(),
            true,
        ),
    ]);
    // Per-segment matching: StringLike crosses segments, ArnLike does not (§2.3).
    let value = arn("arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/d");
    let pattern = "arn:aws:someservice:*:111122223333:finance/*";
    assert!(condition_allows(
        &format!(r#"{{"StringLike":{{"test:Key":"{pattern}"}}}}"#),
        &value
    ));
    assert!(!condition_allows(
        &format!(r#"{{"ArnLike":{{"test:Key":"{pattern}"}}}}"#),
        &value
    ));
}

#[test]
fn null_operator_and_set_forms() {
    check(&[
        (r#"{"Null":{"test:Key":"true"}}"#, none(), true),
        (r#"{"Null":{"test:Key":"true"}}"#, k(s("x")), false),
        (r#"{"Null":{"test:Key":"false"}}"#, k(s("x")), true),
        (r#"{"Null":{"test:Key":"false"}}"#, none(), false),
        (r#"{"Null":{"test:Key":"false"}}"#, k(list(&[])), false),
        (r#"{"Null":{"test:Key":"false"}}"#, k(list(&["a"])), true),
        // §8.3 decision: set operators on Null behave like Null.
        (r#"{"ForAnyValue:Null":{"test:Key":"true"}}"#, none(), true),
        (
            r#"{"ForAllValues:Null":{"test:Key":"false"}}"#,
            none(),
            false,
        ),
        (
            r#"{"ForAllValues:Null":{"test:Key":"false"}}"#,
            k(list(&["a"])),
            true,
        ),
    ]);
}

#[test]
fn set_operators() {
    let tags = |v: &[&str]| context(&[("aws:TagKeys", list(v))]);
    let all = r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["team","env"]}}"#;
    let any = r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["team","env"]}}"#;
    let single = r#"{"StringEquals":{"aws:TagKeys":["team","env"]}}"#;
    check(&[
        (all, tags(&["team"]), true),
        (all, tags(&["team", "env"]), true),
        (all, tags(&["team", "cost"]), false),
        (all, tags(&[]), true),
        (all, none(), true),
        (all, context(&[("aws:TagKeys", s("team"))]), true),
        (all, context(&[("aws:TagKeys", s("cost"))]), false),
        (any, tags(&["cost", "env"]), true),
        (any, tags(&["cost"]), false),
        (any, tags(&[]), false),
        (any, none(), false),
        (any, context(&[("aws:TagKeys", s("env"))]), true),
        // A single-valued operator does not match a multivalued key, negated or not.
        (single, tags(&["team"]), false),
        (
            r#"{"StringNotEquals":{"aws:TagKeys":"x"}}"#,
            tags(&["team"]),
            false,
        ),
        // Negated base operators apply per request value.
        (
            r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":["secret","admin"]}}"#,
            tags(&["team", "env"]),
            true,
        ),
        (
            r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":["secret","admin"]}}"#,
            tags(&["team", "admin"]),
            false,
        ),
        (
            r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"secret"}}"#,
            tags(&["secret", "x"]),
            true,
        ),
        (
            r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":"secret"}}"#,
            tags(&["secret"]),
            false,
        ),
        (
            r#"{"ForAnyValue:StringLike":{"aws:TagKeys":"te*"}}"#,
            tags(&["x", "team"]),
            true,
        ),
        (
            r#"{"ForAnyValue:StringEqualsIfExists":{"aws:TagKeys":"x"}}"#,
            none(),
            true,
        ),
        (
            r#"{"ForAllValues:NumericLessThan":{"test:Key":"10"}}"#,
            k(list(&["1", "9"])),
            true,
        ),
        (
            r#"{"ForAllValues:NumericLessThan":{"test:Key":"10"}}"#,
            k(list(&["1", "19"])),
            false,
        ),
    ]);
}

#[test]
fn several_operators_and_keys_are_anded() {
    let condition = r#"{"StringEquals":{"test:A":"a","test:B":"b"},"Bool":{"test:C":"true"}}"#;
    let full = context(&[
        ("test:A", s("a")),
        ("test:B", s("b")),
        ("test:C", s("true")),
    ]);
    assert!(condition_allows(condition, &full));
    let partial = context(&[("test:A", s("a")), ("test:C", s("true"))]);
    assert!(!condition_allows(condition, &partial));
    let wrong = context(&[
        ("test:A", s("a")),
        ("test:B", s("b")),
        ("test:C", s("false")),
    ]);
    assert!(!condition_allows(condition, &wrong));
}

#[test]
fn unknown_operator_with_empty_map_fails_closed() {
    // Accepted at parse time (§2.3), but an Allow with it never applies…
    assert!(!condition_allows(r#"{"StringFuzzy":{}}"#, &none()));
    // …and a Deny with it applies.
    let p = [
        common::identity(&common::stmt("Allow", "*", "*", "")),
        common::identity(&common::stmt("Deny", "*", "*", r#"{"StringFuzzy":{}}"#)),
    ];
    let e = common::run(
        &common::only(&p),
        common::user(),
        "iam:GetUser",
        "*",
        &none(),
    );
    assert_eq!(e.decision, tokengate_policy::Decision::ExplicitDeny);
}
