//! The audit trail family: CloudTrail `LookupEvents` (portal.md §4.4, botocore-ct
//! `LookupEventsRequest`) over the events [`crate::audit`] recorded.
//!
//! The chokepoint has decoded the JSON 1.1 body into query-style parameters
//! (`LookupAttributes.member.1.AttributeKey`, `StartTime`, …) and answers the JSON this
//! handler returns as it is.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};
use tokengate_store::{AuditAttribute, AuditQuery};

use crate::auth::Caller;
use crate::common::db;
use crate::error::ApiError;
use crate::params::Params;
use crate::state::AppState;

/// `MaxResults`: 1–50, default 50 (botocore-ct).
pub const MAX_RESULTS: usize = 50;
/// `AttributeValue`: 1–2000 characters (botocore-ct).
const MAX_ATTRIBUTE_VALUE: usize = 2000;
/// `NextToken`s longer than this are not ours.
const MAX_NEXT_TOKEN: usize = 256;

fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

/// `LookupEvents`: newest first, one optional attribute, a time range, pages by
/// `NextToken`.
pub async fn lookup_events(
    state: &Arc<AppState>,
    _caller: &Caller,
    params: &Params,
) -> Result<String, ApiError> {
    let mut query = parse(params)?;
    let filter = filter_digest(params);
    if let Some(token) = params.get("NextToken") {
        query.before_seq = Some(decode_token(token, &filter)?);
    }
    // What this service recorded before the call is visible to it (CloudTrail itself
    // takes minutes; a local service need not).
    state.audit.flush().await;
    let page = db(state, move |store| store.audit_events(&query)).await??;
    let events: Vec<Value> = page
        .events
        .iter()
        .map(|(_, e)| {
            let resources: Vec<Value> = match (&e.resource_type, &e.resource_name) {
                (Some(kind), Some(name)) => {
                    vec![json!({"ResourceType": kind, "ResourceName": name})]
                }
                _ => Vec::new(),
            };
            let mut event = json!({
                "EventId": e.event_id,
                "EventName": e.event_name,
                "ReadOnly": if e.read_only { "true" } else { "false" },
                "EventTime": e.event_time,
                "EventSource": e.event_source,
                "Resources": resources,
                "CloudTrailEvent": crate::audit::expand_record(&e.record),
            });
            if let Some(map) = event.as_object_mut() {
                if let Some(key) = &e.access_key_id {
                    map.insert("AccessKeyId".into(), json!(key));
                }
                if let Some(user) = &e.username {
                    map.insert("Username".into(), json!(user));
                }
            }
            event
        })
        .collect();
    let mut answer = json!({ "Events": events });
    if page.more
        && let (Some((seq, _)), Some(map)) = (page.events.last(), answer.as_object_mut())
    {
        map.insert("NextToken".into(), json!(encode_token(*seq, &filter)));
    }
    Ok(answer.to_string())
}

fn parse(params: &Params) -> Result<AuditQuery, ApiError> {
    let attr = |n: usize, field: &str| params.get(&format!("LookupAttributes.member.{n}.{field}"));
    if attr(2, "AttributeKey").is_some() || attr(2, "AttributeValue").is_some() {
        return Err(invalid(
            "InvalidLookupAttributesException",
            "You can only specify one lookup attribute.",
        ));
    }
    let attribute = match (attr(1, "AttributeKey"), attr(1, "AttributeValue")) {
        (None, None) => None,
        (Some(key), Some(value)) => Some(attribute(key, value)?),
        _ => {
            return Err(invalid(
                "InvalidLookupAttributesException",
                "A lookup attribute needs both AttributeKey and AttributeValue.",
            ));
        }
    };
    let time = |name: &str| -> Result<Option<i64>, ApiError> {
        params
            .get(name)
            .map(|v| {
                // Epoch seconds, possibly with a fraction (botocore sends integers).
                v.parse::<f64>()
                    .ok()
                    .filter(|t| t.is_finite() && t.abs() < 1e15)
                    .map(|t| t.floor() as i64)
                    .ok_or_else(|| {
                        invalid(
                            "InvalidTimeRangeException",
                            format!("{name} must be a timestamp, not {v:?}."),
                        )
                    })
            })
            .transpose()
    };
    let (start, end) = (time("StartTime")?, time("EndTime")?);
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(invalid(
            "InvalidTimeRangeException",
            "Start time must be before or equal to the end time.",
        ));
    }
    let limit = match params.get("MaxResults") {
        None => MAX_RESULTS,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_RESULTS).contains(n))
            .ok_or_else(|| {
                invalid(
                    "InvalidMaxResultsException",
                    format!("MaxResults must be between 1 and {MAX_RESULTS}."),
                )
            })?,
    };
    if let Some(category) = params.get("EventCategory")
        && category != "insight"
    {
        return Err(invalid(
            "InvalidEventCategoryException",
            format!("Invalid event category: {category}."),
        ));
    }
    if params.get("EventCategory").is_some() {
        // Insight events are never recorded here: the answer is an empty list, but its
        // filter must still be honoured, so no query runs. Modelled as an impossible id.
        return Ok(AuditQuery {
            attribute: Some(AuditAttribute::EventId(String::new())),
            limit,
            ..AuditQuery::default()
        });
    }
    Ok(AuditQuery {
        attribute,
        start,
        end,
        before_seq: None,
        limit,
    })
}

fn attribute(key: &str, value: &str) -> Result<AuditAttribute, ApiError> {
    if value.is_empty() || value.chars().count() > MAX_ATTRIBUTE_VALUE {
        return Err(invalid(
            "InvalidLookupAttributesException",
            format!("AttributeValue must be 1 to {MAX_ATTRIBUTE_VALUE} characters."),
        ));
    }
    let v = value.to_owned();
    Ok(match key {
        "EventId" => AuditAttribute::EventId(v),
        "EventName" => AuditAttribute::EventName(v),
        "ReadOnly" => match value {
            "true" => AuditAttribute::ReadOnly(true),
            "false" => AuditAttribute::ReadOnly(false),
            _ => {
                return Err(invalid(
                    "InvalidLookupAttributesException",
                    "The ReadOnly attribute value must be true or false.",
                ));
            }
        },
        "Username" => AuditAttribute::Username(v),
        "ResourceType" => AuditAttribute::ResourceType(v),
        "ResourceName" => AuditAttribute::ResourceName(v),
        "EventSource" => AuditAttribute::EventSource(v),
        "AccessKeyId" => AuditAttribute::AccessKeyId(v),
        _ => {
            return Err(invalid(
                "InvalidLookupAttributesException",
                format!("Invalid attribute key: {key}."),
            ));
        }
    })
}

/// A digest of the parameters a `NextToken` must come back with (portal.md §4.4: "must be
/// passed in with the same parameters that were specified in the original call").
/// `MaxResults` may change between pages (botocore's paginator keeps it; the CLI may not).
fn filter_digest(params: &Params) -> String {
    let mut text = String::new();
    for name in [
        "LookupAttributes.member.1.AttributeKey",
        "LookupAttributes.member.1.AttributeValue",
        "StartTime",
        "EndTime",
        "EventCategory",
    ] {
        text.push_str(params.get(name).unwrap_or("\u{0}"));
        text.push('\u{1}');
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    data_encoding::HEXLOWER.encode(digest.as_ref().get(..8).unwrap_or_default())
}

/// `NextToken`: the position of the page's last event and the filter digest. A position
/// is no secret (the caller may read every event anyway); the digest only catches a token
/// reused with other parameters.
fn encode_token(seq: i64, filter: &str) -> String {
    data_encoding::BASE64URL_NOPAD.encode(format!("{seq}.{filter}").as_bytes())
}

fn decode_token(token: &str, filter: &str) -> Result<i64, ApiError> {
    let bad = || invalid("InvalidNextTokenException", "Invalid NextToken.");
    if token.len() > MAX_NEXT_TOKEN {
        return Err(bad());
    }
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(token.as_bytes())
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (seq, digest) = text.split_once('.').ok_or_else(bad)?;
    if digest != filter {
        return Err(bad());
    }
    seq.parse().map_err(|_| bad())
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

    #[test]
    fn tokens_only_work_with_their_filter() {
        let a = filter_digest(&params(&[("StartTime", "1")]));
        let b = filter_digest(&params(&[("StartTime", "2")]));
        let token = encode_token(42, &a);
        assert_eq!(decode_token(&token, &a).unwrap(), 42);
        assert_eq!(
            decode_token(&token, &b).unwrap_err().code,
            "InvalidNextTokenException"
        );
        assert!(decode_token("???", &a).is_err());
    }

    #[test]
    fn request_checks() {
        let code = |pairs: &[(&str, &str)]| parse(&params(pairs)).unwrap_err().code;
        assert_eq!(code(&[("MaxResults", "51")]), "InvalidMaxResultsException");
        assert_eq!(code(&[("MaxResults", "0")]), "InvalidMaxResultsException");
        assert_eq!(
            code(&[("StartTime", "10"), ("EndTime", "5")]),
            "InvalidTimeRangeException"
        );
        assert_eq!(
            code(&[
                ("LookupAttributes.member.1.AttributeKey", "Nope"),
                ("LookupAttributes.member.1.AttributeValue", "x"),
            ]),
            "InvalidLookupAttributesException"
        );
        let q = parse(&params(&[
            ("LookupAttributes.member.1.AttributeKey", "Username"),
            ("LookupAttributes.member.1.AttributeValue", "alice"),
            ("StartTime", "1795392000.5"),
        ]))
        .unwrap();
        assert_eq!(q.attribute, Some(AuditAttribute::Username("alice".into())));
        assert_eq!((q.start, q.limit), (Some(1_795_392_000), MAX_RESULTS));
    }
}
