//! SigV4 cost per request: `parse_authorization` + `verify_signature` for the request boto3
//! sends for `sts.get_caller_identity()` (sts-iam.md §0), and the client-side `sign_request`.
//!
//! `cargo bench -p tokengate-token --bench sigv4`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use time::macros::datetime;
use tokengate_token::query::encode_form;
use tokengate_token::sigv4::{
    HttpRequest, SigningCredentials, parse_authorization, sign_request, verify_signature,
};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn bench_sigv4(c: &mut Criterion) {
    let at = datetime!(2026-11-22 07:43:45 UTC);
    let body = encode_form(&[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")]);
    let content_length = body.len().to_string();
    let signed: Vec<(&str, &str)> = vec![
        (
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
        ("Host", "127.0.0.1:8080"),
    ];
    let creds = SigningCredentials {
        access_key_id: "AKIAIOSFODNN7EXAMPLE",
        secret_access_key: SECRET,
        session_token: None,
    };
    let unsigned_req = HttpRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &signed,
        body: body.as_bytes(),
    };
    let added = sign_request(&unsigned_req, &creds, "us-east-1", "sts", at);

    // What arrives at the server: boto3's unsigned extras too.
    let mut headers = vec![
        ("Host", "127.0.0.1:8080"),
        ("Accept-Encoding", "identity"),
        (
            "User-Agent",
            "Boto3/1.44.5 md/Botocore#1.44.5 ua/2.1 os/linux lang/python#3.12.3",
        ),
        (
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
        (
            "amz-sdk-invocation-id",
            "2e5b1f7c-6a0e-4d3b-9a55-0c1b6f2d9e41",
        ),
        ("amz-sdk-request", "attempt=1"),
        ("Content-Length", content_length.as_str()),
    ];
    headers.extend(added.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let req = HttpRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: body.as_bytes(),
    };
    let now = at + time::Duration::seconds(2);
    let verified = parse_authorization(&req, now)
        .is_ok_and(|auth| verify_signature(&req, &auth, SECRET.as_bytes()).is_ok());
    assert!(verified, "the benchmarked request must verify");

    c.bench_function(
        "parse_authorization+verify_signature (boto3 GetCallerIdentity)",
        |b| {
            b.iter(|| {
                let req = black_box(&req);
                let auth = parse_authorization(req, now).ok()?;
                verify_signature(req, &auth, SECRET.as_bytes()).ok()
            })
        },
    );
    c.bench_function("parse_authorization only", |b| {
        b.iter(|| parse_authorization(black_box(&req), now).is_ok())
    });
    c.bench_function("sign_request (client side)", |b| {
        b.iter(|| sign_request(black_box(&unsigned_req), &creds, "us-east-1", "sts", at))
    });
}

criterion_group!(benches, bench_sigv4);
criterion_main!(benches);
