//! The service's metrics, served at `GET /metrics` in the Prometheus text format
//! (docs/operations.md lists every name and label).
//!
//! Counting is on the request path, so it is plain atomics: one array of counters per
//! registered action (indexed like [`registry::ACTIONS`]), one slot per AWS error code
//! (codes are interned once into a fixed table), and histograms whose buckets are atomics
//! too. No lock is taken to count; a scrape reads the atomics and hands them to
//! prometheus-client's encoder.
//!
//! Labels are actions, AWS error codes, MFA methods and fixed words only — never a user
//! name, an access key id, an address or anything secret.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokengate_token::session::MfaMethod;

use crate::action::ActionSpec;
use crate::registry;
use crate::throttle::ThrottledBy;

/// The most distinct outcomes (AWS error codes, plus `ok`) counted apart; more share the
/// last slot, `other`.
const MAX_OUTCOMES: usize = 64;
/// Outcome slot 0.
const OK: &str = "ok";
/// The last outcome slot, for codes past the table.
const OTHER: &str = "other";

/// Request latency buckets, in microseconds (0.25 ms … 2.5 s).
const LATENCY_US: &[u64] = &[
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000,
];
/// Group-commit batch sizes (writes per transaction).
const BATCH_WRITES: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
/// Group-commit latency buckets, in microseconds (50 µs … 1 s).
const COMMIT_US: &[u64] = &[
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 1_000_000,
];

/// The interned outcome codes: slot 0 is `ok`; others are filled as codes first occur.
static OUTCOMES: [OnceLock<&'static str>; MAX_OUTCOMES] = [const { OnceLock::new() }; MAX_OUTCOMES];

/// Store errors seen by the service (any request, any path), process-wide: counted where a
/// store error becomes an API error ([`crate::error`]).
static STORE_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Counts one store error.
pub fn store_error() {
    STORE_ERRORS.fetch_add(1, Ordering::Relaxed);
}

/// The slot of `code`, interning it on first sight.
fn outcome_slot(code: &'static str) -> usize {
    if code == OK {
        return 0;
    }
    let _ = OUTCOMES[0].set(OK);
    for (i, slot) in OUTCOMES.iter().enumerate().take(MAX_OUTCOMES - 1).skip(1) {
        match slot.get() {
            Some(c) if *c == code => return i,
            Some(_) => continue,
            None => {
                // Another thread may win this slot with another code: look again.
                let _ = slot.set(code);
                if slot.get() == Some(&code) {
                    return i;
                }
            }
        }
    }
    MAX_OUTCOMES - 1
}

fn outcome_name(i: usize) -> &'static str {
    if i == MAX_OUTCOMES - 1 {
        return OTHER;
    }
    OUTCOMES.get(i).and_then(|s| s.get().copied()).unwrap_or(OK)
}

/// A histogram of integer observations (`per_unit` of them make 1 of the exported value),
/// all atomics.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [u64],
    /// `bounds.len() + 1` counts, the last for values above every bound.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
    /// Observations per exported unit (1e6 for microseconds exported as seconds).
    per_unit: f64,
}

impl Histogram {
    fn new(bounds: &'static [u64], per_unit: f64) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            per_unit,
        }
    }

    fn observe(&self, v: u64) {
        let i = self.bounds.partition_point(|&b| b < v);
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.fetch_add(v, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn encode(&self, mut e: prometheus_client::encoding::MetricEncoder) -> std::fmt::Result {
        // prometheus-client takes each bucket's own count and sums them as it writes.
        let mut count = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            count += n;
            // prometheus-client writes the bound `f64::MAX` as `+Inf` (the OpenMetrics
            // spelling); `f64::INFINITY` would come out as `inf`, which parsers refuse.
            let bound = self
                .bounds
                .get(i)
                .map_or(f64::MAX, |&b| b as f64 / self.per_unit);
            buckets.push((bound, n));
        }
        let sum = self.sum.load(Ordering::Relaxed) as f64 / self.per_unit;
        e.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }
}

/// One registered action's counters.
#[derive(Debug)]
struct ActionCounters {
    api: &'static str,
    name: &'static str,
    outcomes: Box<[AtomicU64]>,
    latency: Histogram,
}

impl ActionCounters {
    fn new(api: &'static str, name: &'static str) -> Self {
        Self {
            api,
            name,
            outcomes: (0..MAX_OUTCOMES).map(|_| AtomicU64::new(0)).collect(),
            latency: Histogram::new(LATENCY_US, 1e6),
        }
    }
}

/// How a second factor went, for [`Metrics::mfa`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaResult {
    /// Accepted.
    Success,
    /// Refused (wrong code, replay, lockout, bad assertion).
    Failure,
}

fn method_index(m: MfaMethod) -> usize {
    match m {
        MfaMethod::Totp => 0,
        MfaMethod::Fido2 => 1,
        MfaMethod::U2f => 2,
    }
}

const METHODS: [&str; 3] = ["totp", "fido2", "u2f"];

/// Every metric of the service.
#[derive(Debug)]
pub struct Metrics {
    /// One per entry of `registry::ACTIONS`, then one for requests naming no known action.
    actions: Vec<ActionCounters>,
    mfa: [[AtomicU64; 2]; 3],
    lockouts: [AtomicU64; 3],
    replays: [AtomicU64; 3],
    clone_flags: AtomicU64,
    auth_failures: AtomicU64,
    throttled: [AtomicU64; 2],
    batch_writes: Histogram,
    commit_latency: Histogram,
    commit_failures: AtomicU64,
    connections_open: AtomicI64,
    connections_accepted: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Zeroed metrics, with a slot per registered action.
    pub fn new() -> Self {
        let mut actions: Vec<ActionCounters> = registry::ACTIONS
            .iter()
            .map(|a| ActionCounters::new(a.api.service(), a.name))
            .collect();
        actions.push(ActionCounters::new("unknown", "unknown"));
        Self {
            actions,
            mfa: Default::default(),
            lockouts: Default::default(),
            replays: Default::default(),
            clone_flags: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            throttled: Default::default(),
            batch_writes: Histogram::new(BATCH_WRITES, 1.0),
            commit_latency: Histogram::new(COMMIT_US, 1e6),
            commit_failures: AtomicU64::new(0),
            connections_open: AtomicI64::new(0),
            connections_accepted: AtomicU64::new(0),
        }
    }

    /// The slot of `spec` (its index in the registry), or the `unknown` slot.
    fn action_slot(&self, spec: Option<&'static ActionSpec>) -> Option<&ActionCounters> {
        let index = spec
            .and_then(|spec| registry::ACTIONS.iter().position(|a| std::ptr::eq(a, spec)))
            .unwrap_or(registry::ACTIONS.len());
        self.actions.get(index)
    }

    /// Counts a request for `spec` (`None`: no known action) answered with `outcome` (an
    /// AWS error code, or `None` for success) after `elapsed`.
    pub fn request(
        &self,
        spec: Option<&'static ActionSpec>,
        outcome: Option<&'static str>,
        elapsed: Duration,
    ) {
        let Some(slot) = self.action_slot(spec) else {
            return;
        };
        let i = outcome_slot(outcome.unwrap_or(OK));
        if let Some(c) = slot.outcomes.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        slot.latency
            .observe(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    /// Counts a second factor checked with `method`.
    pub fn mfa(&self, method: MfaMethod, result: MfaResult) {
        let r = usize::from(result == MfaResult::Failure);
        self.mfa[method_index(method)][r].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a device locked out after repeated failures.
    pub fn lockout(&self, method: MfaMethod) {
        self.lockouts[method_index(method)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a replay refused (a TOTP step used again, a challenge or counter reused).
    pub fn replay(&self, method: MfaMethod) {
        self.replays[method_index(method)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a security key flagged as possibly cloned.
    pub fn clone_flag(&self) {
        self.clone_flags.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed authentication (what the throttle counts).
    pub fn auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request refused by the throttle.
    pub fn throttled(&self, by: ThrottledBy) {
        let i = usize::from(by == ThrottledBy::AccessKey);
        self.throttled[i].fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was accepted; returns a guard that counts its close when dropped.
    pub fn connection(self: &Arc<Self>) -> ConnectionGuard {
        self.connections_accepted.fetch_add(1, Ordering::Relaxed);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(Arc::clone(self))
    }

    /// Requests counted for `action` with `outcome` so far (tests).
    pub fn requests(&self, action: &str, outcome: &str) -> u64 {
        self.actions
            .iter()
            .filter(|a| a.name == action)
            .flat_map(|a| {
                a.outcomes
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| outcome_name(*i) == outcome)
                    .map(|(_, c)| c.load(Ordering::Relaxed))
            })
            .sum()
    }

    /// The Prometheus text exposition of every metric, with `cache` the verified-token
    /// cache's `(hits, misses)`.
    pub fn render(self: &Arc<Self>, cache: (u64, u64)) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Snapshot {
            metrics: Arc::clone(self),
            cache,
        }));
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

impl tokengate_store::observe::CommitObserver for Metrics {
    fn batch(&self, writes: usize, commit: Duration, ok: bool) {
        self.batch_writes
            .observe(u64::try_from(writes).unwrap_or(u64::MAX));
        self.commit_latency
            .observe(u64::try_from(commit.as_micros()).unwrap_or(u64::MAX));
        if !ok {
            self.commit_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Counts an open connection; dropping it counts the close.
#[derive(Debug)]
pub struct ConnectionGuard(Arc<Metrics>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one scrape encodes.
#[derive(Debug)]
struct Snapshot {
    metrics: Arc<Metrics>,
    cache: (u64, u64),
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(&[(&str, &str)], u64)],
) -> std::fmt::Result {
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in series {
        if labels.is_empty() {
            m.encode_counter::<NoLabelSet, _, u64>(v, None)?;
        } else {
            let labels: Vec<(&str, &str)> = labels.to_vec();
            m.encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(v, None)?;
        }
    }
    Ok(())
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let m = &self.metrics;
        // Requests by action and outcome: only the series that occurred.
        {
            let mut d = encoder.encode_descriptor(
                "tokengate_requests",
                "Query-API requests by API, action and outcome (AWS error code, or ok).",
                None,
                MetricType::Counter,
            )?;
            for a in &m.actions {
                for (i, c) in a.outcomes.iter().enumerate() {
                    let v = load(c);
                    if v > 0 {
                        let labels = [
                            ("api", a.api),
                            ("action", a.name),
                            ("outcome", outcome_name(i)),
                        ];
                        d.encode_family(&labels)?
                            .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
                    }
                }
            }
        }
        {
            let mut d = encoder.encode_descriptor(
                "tokengate_request_duration_seconds",
                "Time from the request's head to its answer, by API and action.",
                None,
                MetricType::Histogram,
            )?;
            for a in m.actions.iter().filter(|a| a.latency.count() > 0) {
                let labels = [("api", a.api), ("action", a.name)];
                a.latency.encode(d.encode_family(&labels)?)?;
            }
        }
        let by_method = |table: &[AtomicU64; 3]| -> Vec<u64> { table.iter().map(load).collect() };
        {
            let mut d = encoder.encode_descriptor(
                "tokengate_mfa_verifications",
                "Second factors checked, by method and result.",
                None,
                MetricType::Counter,
            )?;
            for (mi, method) in METHODS.iter().enumerate() {
                for (ri, result) in ["success", "failure"].iter().enumerate() {
                    let v = load(&m.mfa[mi][ri]);
                    d.encode_family(&[("method", *method), ("result", *result)])?
                        .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
                }
            }
        }
        let lockouts = by_method(&m.lockouts);
        let replays = by_method(&m.replays);
        let per_method = |values: &[u64]| -> Vec<(Vec<(&str, &str)>, u64)> {
            METHODS
                .iter()
                .zip(values)
                .map(|(method, v)| (vec![("method", *method)], *v))
                .collect()
        };
        for (name, help, values) in [
            (
                "tokengate_mfa_lockouts",
                "MFA devices locked out after repeated failures, by method.",
                per_method(&lockouts),
            ),
            (
                "tokengate_mfa_replays_refused",
                "Replays refused (a TOTP step, a challenge or a counter used again), by method.",
                per_method(&replays),
            ),
        ] {
            let series: Vec<(&[(&str, &str)], u64)> =
                values.iter().map(|(l, v)| (l.as_slice(), *v)).collect();
            counter(&mut encoder, name, help, &series)?;
        }
        counter(
            &mut encoder,
            "tokengate_security_key_clone_flags",
            "Security keys flagged as possibly cloned (their counter went back).",
            &[(&[], load(&m.clone_flags))],
        )?;
        counter(
            &mut encoder,
            "tokengate_authentication_failures",
            "Failed authentications counted by the throttle (signature, key, MFA, assertion).",
            &[(&[], load(&m.auth_failures))],
        )?;
        counter(
            &mut encoder,
            "tokengate_throttled",
            "Requests refused with Throttling, by the bucket that refused them.",
            &[
                (
                    &[("by", ThrottledBy::Address.label())],
                    load(&m.throttled[0]),
                ),
                (
                    &[("by", ThrottledBy::AccessKey.label())],
                    load(&m.throttled[1]),
                ),
            ],
        )?;
        {
            let d = encoder.encode_descriptor(
                "tokengate_group_commit_batch_writes",
                "Login-path writes per group-commit transaction (SQLite).",
                None,
                MetricType::Histogram,
            )?;
            m.batch_writes.encode(d)?;
        }
        {
            let d = encoder.encode_descriptor(
                "tokengate_group_commit_duration_seconds",
                "Time of one group-commit transaction, its fsync included (SQLite).",
                None,
                MetricType::Histogram,
            )?;
            m.commit_latency.encode(d)?;
        }
        counter(
            &mut encoder,
            "tokengate_group_commit_failures",
            "Group-commit transactions that failed (each write in them was refused).",
            &[(&[], load(&m.commit_failures))],
        )?;
        counter(
            &mut encoder,
            "tokengate_store_errors",
            "Store failures answered as ServiceUnavailable or InternalFailure.",
            &[(&[], load(&STORE_ERRORS))],
        )?;
        counter(
            &mut encoder,
            "tokengate_verified_token_cache_lookups",
            "Lookups of session tokens in the verified-token cache, by result.",
            &[
                (&[("result", "hit")], self.cache.0),
                (&[("result", "miss")], self.cache.1),
            ],
        )?;
        counter(
            &mut encoder,
            "tokengate_http_connections_accepted",
            "TCP connections accepted.",
            &[(&[], load(&m.connections_accepted))],
        )?;
        let open = m.connections_open.load(Ordering::Relaxed);
        encoder
            .encode_descriptor(
                "tokengate_http_connections_open",
                "TCP connections open now.",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&open)?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_and_labels_are_only_actions_codes_and_methods() {
        let m = Arc::new(Metrics::new());
        let spec = registry::lookup(crate::action::Api::Sts, "GetCallerIdentity");
        m.request(spec, None, Duration::from_micros(300));
        m.request(
            spec,
            Some("SignatureDoesNotMatch"),
            Duration::from_millis(3),
        );
        m.request(None, Some("MissingAction"), Duration::from_millis(1));
        m.mfa(MfaMethod::Totp, MfaResult::Failure);
        m.lockout(MfaMethod::Fido2);
        assert_eq!(m.requests("GetCallerIdentity", "ok"), 1);
        assert_eq!(m.requests("GetCallerIdentity", "SignatureDoesNotMatch"), 1);
        let text = m.render((3, 1));
        for line in [
            "tokengate_requests_total{api=\"sts\",action=\"GetCallerIdentity\",outcome=\"ok\"} 1",
            "tokengate_requests_total{api=\"sts\",action=\"GetCallerIdentity\",\
             outcome=\"SignatureDoesNotMatch\"} 1",
            "tokengate_requests_total{api=\"unknown\",action=\"unknown\",\
             outcome=\"MissingAction\"} 1",
            "tokengate_request_duration_seconds_bucket{le=\"0.0005\",api=\"sts\",\
             action=\"GetCallerIdentity\"} 1",
            "tokengate_mfa_verifications_total{method=\"totp\",result=\"failure\"} 1",
            "tokengate_request_duration_seconds_bucket{le=\"+Inf\",api=\"sts\",\
             action=\"GetCallerIdentity\"} 2",
            "tokengate_request_duration_seconds_bucket{le=\"0.0025\",api=\"sts\",\
             action=\"GetCallerIdentity\"} 1",
            "tokengate_request_duration_seconds_count{api=\"sts\",action=\"GetCallerIdentity\"} 2",
            "tokengate_mfa_lockouts_total{method=\"fido2\"} 1",
            "tokengate_verified_token_cache_lookups_total{result=\"hit\"} 3",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        for bad in ["inf\"", "NaN"] {
            assert!(!text.contains(bad), "{bad} in\n{text}");
        }
    }

    #[test]
    fn outcome_codes_are_interned_once() {
        let a = outcome_slot("AccessDenied");
        assert_eq!(outcome_slot("AccessDenied"), a);
        assert_eq!(outcome_name(a), "AccessDenied");
        assert_eq!(outcome_slot("ok"), 0);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(&[1, 10], 1.0);
        for v in [0, 1, 2, 10, 11, 1000] {
            h.observe(v);
        }
        let counts: Vec<u64> = h.counts.iter().map(load).collect();
        assert_eq!(counts, [2, 2, 2]);
        assert_eq!(h.count(), 6);
    }
}
