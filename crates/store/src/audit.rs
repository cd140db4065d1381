//! The rows of the audit trail (issue 12 point 5): CloudTrail-format events as the server
//! wrote them, with the columns LookupEvents filters on beside the full record.

/// One stored audit event. `record` is the full CloudTrail-format JSON; the other fields
/// are copies of what LookupEvents filters and answers on (portal.md §4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// `eventID`, a UUID.
    pub event_id: String,
    /// `eventTime`, seconds since the Unix epoch.
    pub event_time: i64,
    /// `eventName`, e.g. `GetSessionToken`.
    pub event_name: String,
    /// `eventSource`, e.g. `sts.amazonaws.com`.
    pub event_source: String,
    /// LookupEvents' `Username` (the user, role session or root), if known.
    pub username: Option<String>,
    /// The access key id the request was signed with, if known.
    pub access_key_id: Option<String>,
    /// `readOnly`.
    pub read_only: bool,
    /// The resource's CloudTrail type, e.g. `AWS::IAM::User`.
    pub resource_type: Option<String>,
    /// The resource's name (its ARN).
    pub resource_name: Option<String>,
    /// The event JSON.
    pub record: String,
}

/// The one attribute a LookupEvents query filters on (CloudTrail allows one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditAttribute {
    /// `EventId`.
    EventId(String),
    /// `EventName`.
    EventName(String),
    /// `ReadOnly`.
    ReadOnly(bool),
    /// `Username`.
    Username(String),
    /// `ResourceType`.
    ResourceType(String),
    /// `ResourceName`.
    ResourceName(String),
    /// `EventSource`.
    EventSource(String),
    /// `AccessKeyId`.
    AccessKeyId(String),
}

/// A page request over the audit trail, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditQuery {
    /// Only events with this attribute.
    pub attribute: Option<AuditAttribute>,
    /// Only events at or after this time (epoch seconds).
    pub start: Option<i64>,
    /// Only events at or before this time (epoch seconds).
    pub end: Option<i64>,
    /// Only events appended before the event at this position (a previous page's end).
    pub before_seq: Option<i64>,
    /// At most this many events.
    pub limit: usize,
}

/// One page of events, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditPage {
    /// The events with their positions.
    pub events: Vec<(i64, AuditEvent)>,
    /// Whether more events match after the last one.
    pub more: bool,
}
