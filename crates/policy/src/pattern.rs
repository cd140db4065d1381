//! Wildcard patterns, policy variables and ARN patterns, compiled once at parse time
//! (policy.md §2.2, §2.4).
//!
//! A [`Template`] is a list of pieces: literal text, `*`, `?` and `${variable}`s. At match
//! time each variable is replaced by its context value, which is then *literal*: a `*` in an
//! `aws:username` does not act as a wildcard (§2.4, "a substituted value is literal").

use std::borrow::Cow;

use crate::context::Context;

/// One piece of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Star,
    One,
    Var(Variable),
}

/// A `${key}` or `${key, 'default'}` reference (§2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Variable {
    /// The key as written, for `context_keys()` and `missing_context`.
    pub(crate) key: String,
    lower: String,
    default: Option<String>,
}

impl Variable {
    /// Whether it has a `, 'default'` part.
    pub(crate) fn has_default(&self) -> bool {
        self.default.is_some()
    }
}

/// A matching token with variables already resolved.
#[derive(Debug, Clone, Copy)]
enum Tok<'a> {
    Star,
    One,
    Lit(&'a str),
}

/// Most patterns have few pieces; resolving them into a stack buffer keeps evaluation free
/// of allocation.
const INLINE_TOKENS: usize = 16;

/// Text with optional wildcards and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Compiles `text`. With `wildcards`, `*` and `?` are glob characters; with `variables`
    /// (Version 2012-10-17 only), `${…}` is a policy variable. `${*}`, `${?}` and `${$}`
    /// are the literal characters.
    pub(crate) fn compile(text: &str, wildcards: bool, variables: bool) -> Template {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if variables
                && rest.starts_with("${")
                && let Some(end) = rest.find('}')
            {
                let inner = rest.get(2..end).unwrap_or("");
                match parse_variable(inner) {
                    VarPart::Literal(s) => literal.push_str(s),
                    VarPart::Var(var) => {
                        flush(&mut literal, &mut pieces);
                        pieces.push(Piece::Var(var));
                    }
                    VarPart::NotAVariable => literal.push_str(rest.get(..=end).unwrap_or("")),
                }
                rest = rest.get(end + 1..).unwrap_or("");
                continue;
            }
            match c {
                '*' if wildcards => {
                    flush(&mut literal, &mut pieces);
                    if pieces.last() != Some(&Piece::Star) {
                        pieces.push(Piece::Star);
                    }
                }
                '?' if wildcards => {
                    flush(&mut literal, &mut pieces);
                    pieces.push(Piece::One);
                }
                _ => literal.push(c),
            }
            rest = rest.get(c.len_utf8()..).unwrap_or("");
        }
        flush(&mut literal, &mut pieces);
        Template { pieces }
    }

    /// The variables referenced, in order.
    pub(crate) fn variables(&self) -> impl Iterator<Item = &Variable> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(v) => Some(v),
            _ => None,
        })
    }

    /// Whether the last piece is a `*` (for the ARN "trailing star crosses colons" rule).
    pub(crate) fn ends_with_star(&self) -> bool {
        self.pieces.last() == Some(&Piece::Star)
    }

    /// Glob-matches `text`. `fold` compares ASCII letters case-insensitively. A variable
    /// with no value and no default makes the match fail (§2.4).
    pub(crate) fn matches(&self, text: &str, context: &Context, fold: bool) -> bool {
        let mut inline = [Tok::Star; INLINE_TOKENS];
        let mut spill = Vec::new();
        let toks: &[Tok<'_>] = if self.pieces.len() <= INLINE_TOKENS {
            for (slot, piece) in inline.iter_mut().zip(&self.pieces) {
                match resolve(piece, context) {
                    Some(tok) => *slot = tok,
                    None => return false,
                }
            }
            &inline[..self.pieces.len()]
        } else {
            for piece in &self.pieces {
                match resolve(piece, context) {
                    Some(tok) => spill.push(tok),
                    None => return false,
                }
            }
            &spill
        };
        glob(toks, text, fold)
    }

    /// The text with variables substituted and wildcards kept as the characters `*` and `?`
    /// (for operators without wildcards, which compile with `wildcards = false` anyway).
    /// `None` when a variable has no value and no default.
    pub(crate) fn resolve<'a>(&'a self, context: &'a Context) -> Option<Cow<'a, str>> {
        if let [Piece::Lit(s)] = self.pieces.as_slice() {
            return Some(Cow::Borrowed(s));
        }
        let mut out = String::new();
        for piece in &self.pieces {
            match resolve(piece, context)? {
                Tok::Star => out.push('*'),
                Tok::One => out.push('?'),
                Tok::Lit(s) => out.push_str(s),
            }
        }
        Some(Cow::Owned(out))
    }
}

fn flush(literal: &mut String, pieces: &mut Vec<Piece>) {
    if !literal.is_empty() {
        pieces.push(Piece::Lit(std::mem::take(literal)));
    }
}

enum VarPart<'a> {
    Literal(&'a str),
    Var(Variable),
    NotAVariable,
}

fn parse_variable(inner: &str) -> VarPart<'_> {
    match inner {
        "*" | "?" | "$" => return VarPart::Literal(inner),
        _ => {}
    }
    let (key, default) = match inner.split_once(", '") {
        Some((key, rest)) => match rest.strip_suffix('\'') {
            Some(default) => (key, Some(default.to_owned())),
            None => (inner, None),
        },
        None => (inner, None),
    };
    let key = key.trim();
    if key.is_empty() {
        return VarPart::NotAVariable;
    }
    VarPart::Var(Variable {
        key: key.to_owned(),
        lower: key.to_lowercase(),
        default,
    })
}

fn resolve<'a>(piece: &'a Piece, context: &'a Context) -> Option<Tok<'a>> {
    Some(match piece {
        Piece::Lit(s) => Tok::Lit(s),
        Piece::Star => Tok::Star,
        Piece::One => Tok::One,
        Piece::Var(v) => match context.single_lower(&v.lower) {
            Some(value) => Tok::Lit(value),
            None => Tok::Lit(v.default.as_deref()?),
        },
    })
}

/// Iterative glob with backtracking to the last `*`; linear in practice, O(n·m) worst case.
/// Positions only ever move by whole characters, so `?` is one character.
fn glob(toks: &[Tok<'_>], text: &str, fold: bool) -> bool {
    let bytes = text.as_bytes();
    let (mut p, mut t) = (0usize, 0usize);
    let mut backtrack: Option<(usize, usize)> = None;
    loop {
        if let Some(tok) = toks.get(p) {
            match *tok {
                Tok::Star => {
                    p += 1;
                    backtrack = Some((p, t));
                    continue;
                }
                Tok::One => {
                    if let Some(c) = text.get(t..).and_then(|s| s.chars().next()) {
                        t += c.len_utf8();
                        p += 1;
                        continue;
                    }
                }
                Tok::Lit(lit) => {
                    let candidate = bytes.get(t..t + lit.len());
                    let equal = candidate.is_some_and(|c| {
                        if fold {
                            c.eq_ignore_ascii_case(lit.as_bytes())
                        } else {
                            c == lit.as_bytes()
                        }
                    });
                    if equal && text.is_char_boundary(t + lit.len()) {
                        t += lit.len();
                        p += 1;
                        continue;
                    }
                }
            }
        } else if t == bytes.len() {
            return true;
        }
        match backtrack {
            Some((bp, bt)) => match text.get(bt..).and_then(|s| s.chars().next()) {
                Some(c) => {
                    let next = bt + c.len_utf8();
                    backtrack = Some((bp, next));
                    p = bp;
                    t = next;
                }
                None => return false,
            },
            None => return false,
        }
    }
}

/// Splits an ARN (pattern) into at most six colon-separated segments, the sixth keeping any
/// further colons. With `variables`, colons inside `${…}` do not split.
fn split_arn(text: &str, variables: bool) -> Vec<&str> {
    let mut segments = Vec::with_capacity(6);
    let mut start = 0;
    let mut depth = false;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() && segments.len() < 5 {
        match bytes[i] {
            b'$' if variables && bytes.get(i + 1) == Some(&b'{') => depth = true,
            b'}' => depth = false,
            b':' if !depth => {
                segments.push(text.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    segments.push(text.get(start..).unwrap_or(""));
    segments
}

/// A compiled `Resource` / `NotResource` entry or `Arn*` condition value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArnPattern {
    /// `*`: matches anything.
    Any,
    /// Matched segment by segment (§2.2, §2.3 "each of the six colon-delimited components").
    Segments(Vec<Template>),
}

/// Where variables may appear in an ARN pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArnVariables {
    /// Version 2008-10-17: `${…}` is literal text.
    None,
    /// `Resource` element: only in the resource part, after the fifth colon (§2.4).
    ResourcePart,
    /// `Arn*` condition operators: anywhere.
    Anywhere,
}

impl ArnPattern {
    pub(crate) fn compile(text: &str, variables: ArnVariables) -> ArnPattern {
        if text == "*" {
            return ArnPattern::Any;
        }
        let split_vars = variables != ArnVariables::None;
        let segments = split_arn(text, split_vars)
            .into_iter()
            .enumerate()
            .map(|(i, segment)| {
                let vars = match variables {
                    ArnVariables::None => false,
                    ArnVariables::ResourcePart => i == 5,
                    ArnVariables::Anywhere => true,
                };
                Template::compile(segment, true, vars)
            })
            .collect();
        ArnPattern::Segments(segments)
    }

    pub(crate) fn variables(&self) -> impl Iterator<Item = &Variable> {
        let segments: &[Template] = match self {
            ArnPattern::Any => &[],
            ArnPattern::Segments(s) => s,
        };
        segments.iter().flat_map(Template::variables)
    }

    /// Case-sensitive match. Each of the first five segments matches one segment of `text`;
    /// the sixth matches the whole rest (so `*` there crosses `/` and `:`). When the pattern
    /// has fewer than six segments and its last one ends with `*`, that last segment matches
    /// the whole rest of `text`, colons included (the "a trailing `*` can expand beyond colon
    /// boundaries" rule of §2.2, applied to the last segment only).
    pub(crate) fn matches(&self, text: &str, context: &Context) -> bool {
        let segments = match self {
            ArnPattern::Any => return true,
            ArnPattern::Segments(s) => s,
        };
        let mut rest = text;
        let last = segments.len().saturating_sub(1);
        for (i, segment) in segments.iter().enumerate() {
            if i == last && (i == 5 || segment.ends_with_star()) {
                return segment.matches(rest, context, false);
            }
            let (part, next) = match rest.split_once(':') {
                Some((part, next)) => (part, Some(next)),
                None => (rest, None),
            };
            if !segment.matches(part, context, false) {
                return false;
            }
            match next {
                Some(next) if i != last => rest = next,
                None if i == last => return true,
                _ => return false,
            }
        }
        false
    }
}

/// Whether `text` has the shape of an ARN: `arn:` and at least six segments.
pub(crate) fn is_arn(text: &str) -> bool {
    text.starts_with("arn:") && text.matches(':').count() >= 5
}

/// A compiled `Action` / `NotAction` entry (§2.2): case-insensitive, `*` and `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ActionPattern {
    Any,
    /// An entry with a comma or white space (`"s3:GetObject,PutObject"`, `"s3:   Get"`)
    /// matches nothing.
    Never,
    Glob(Template),
}

impl ActionPattern {
    pub(crate) fn compile(text: &str) -> ActionPattern {
        if text == "*" {
            ActionPattern::Any
        } else if text.contains(|c: char| c == ',' || c.is_whitespace()) {
            ActionPattern::Never
        } else {
            ActionPattern::Glob(Template::compile(text, true, false))
        }
    }

    pub(crate) fn matches(&self, action: &str) -> bool {
        match self {
            ActionPattern::Any => true,
            ActionPattern::Never => false,
            ActionPattern::Glob(t) => t.matches(action, &Context::EMPTY, true),
        }
    }
}

/// Whether an `Action` entry (`pattern`) matches `action`, as the evaluator decides it:
/// case-insensitive, `*` and `?` wildcards, entries with commas or white space match nothing.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    ActionPattern::compile(pattern).matches(action)
}

/// Whether a `Resource` entry (`pattern`, Version 2012-10-17 variables off) matches
/// `resource`, as the evaluator decides it: case-sensitive, per ARN segment.
pub fn resource_matches(pattern: &str, resource: &str) -> bool {
    ArnPattern::compile(pattern, ArnVariables::None).matches(resource, &Context::EMPTY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ContextValue;

    fn glob_str(pattern: &str, text: &str) -> bool {
        Template::compile(pattern, true, false).matches(text, &Context::EMPTY, false)
    }

    #[test]
    fn glob_basics() {
        assert!(glob_str("*", ""));
        assert!(glob_str("a*c", "abbbc"));
        assert!(glob_str("a?c", "abc"));
        assert!(!glob_str("a?c", "ac"));
        assert!(glob_str("a?c", "aéc"));
        assert!(!glob_str("*??", "€"));
        assert!(glob_str("*a*b*", "xxaxxbxx"));
        assert!(!glob_str("*a*b", "xxaxxbxxc"));
        assert!(!glob_str("abc", "ABC"));
    }

    #[test]
    fn actions_are_case_insensitive_and_reject_odd_entries() {
        assert!(action_matches("iam:ListAccessKeys", "IAM:listaccesskeys"));
        assert!(action_matches("iam:*AccessKey*", "iam:CreateAccessKey"));
        assert!(action_matches("iam:Get?ser", "iam:GetUser"));
        assert!(action_matches("*", "anything:At-all"));
        assert!(!action_matches("s3:GetObject,PutObject", "s3:GetObject"));
        assert!(!action_matches("s3:   GetBucket", "s3:GetBucket"));
        assert!(!action_matches("s3:GetBucket ", "s3:GetBucket"));
        assert!(!action_matches("s3:", "s3:GetBucket"));
    }

    #[test]
    fn resources_match_per_segment_and_case_sensitively() {
        let user = "arn:aws:iam::123456789012:user/division/Alice";
        assert!(resource_matches("*", user));
        assert!(resource_matches("arn:aws:iam::123456789012:user/*", user));
        assert!(resource_matches("arn:aws:iam::*:user/*/Alice", user));
        assert!(resource_matches("arn:aws:iam::????????????:user/*", user));
        assert!(!resource_matches(
            "arn:aws:iam::123456789012:user/*/alice",
            user
        ));
        assert!(!resource_matches("arn:aws:iam::*:role/*", user));
        // `*` inside a segment does not cross into the next one…
        assert!(!resource_matches("arn:aws:*:123456789012:user/*", user));
        // …except as the last character of a short pattern's last segment.
        assert!(resource_matches("arn:aws:iam:*", user));
        assert!(resource_matches("arn:aws:iam::12*", user));
        assert!(!resource_matches("arn:aws:sts:*", user));
        // The resource segment keeps its colons.
        assert!(resource_matches(
            "arn:aws:logs:*:*:log-group:*",
            "arn:aws:logs:r:1:log-group:g:x"
        ));
        // A request for resource `*` matches only the pattern `*`.
        assert!(!resource_matches("arn:aws:iam::*:user/*", "*"));
        assert!(resource_matches("*", "*"));
    }

    #[test]
    fn variables_are_literal_once_substituted() {
        let mut context = Context::new();
        context.insert("aws:username", ContextValue::from("Bob*"));
        let t = Template::compile("test${aws:username}", true, true);
        assert!(!t.matches("testBobTwo", &context, false));
        assert!(t.matches("testBob*", &context, false));
        let t = Template::compile("a${*}b${?}c${$}", true, true);
        assert!(t.matches("a*b?c$", &Context::EMPTY, false));
        assert!(!t.matches("axbycz", &Context::EMPTY, false));
        let t = Template::compile("x-${aws:PrincipalTag/team, 'company-wide'}", true, true);
        assert!(t.matches("x-company-wide", &Context::EMPTY, false));
        context.insert("AWS:PrincipalTag/Team", ContextValue::from("red"));
        assert!(t.matches("x-red", &context, false));
        let t = Template::compile("${aws:userid}", true, true);
        assert!(!t.matches("", &Context::EMPTY, false));
        let t = Template::compile("${aws:username}", true, false);
        assert!(t.matches("${aws:username}", &Context::EMPTY, false));
    }
}
