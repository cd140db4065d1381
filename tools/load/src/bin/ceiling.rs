//! `tokengate-ceiling`: the bare HTTP stack tokengate is measured against — axum 0.8 over
//! hyper and tokio, as tokengate serves, answering every POST with a fixed 1 KB XML body
//! and nothing else (no parsing, no authentication). `tools/bench-request-path` drives it
//! with the same load generator as tokengate, so the ratio of the two says what
//! tokengate's own work costs.
//!
//! Usage: `tokengate-ceiling 127.0.0.1:PORT`.

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;

/// A 1 KB answer shaped like an STS reply.
fn body() -> String {
    let mut xml = String::from(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <GetCallerIdentityResult><Arn>arn:aws:iam::000000000000:user/bench</Arn>\
         <UserId>AIDABENCHBENCHBENCH1</UserId><Account>000000000000</Account>\
         </GetCallerIdentityResult><ResponseMetadata><RequestId>",
    );
    while xml.len() < 1024 - 64 {
        xml.push('0');
    }
    xml.push_str("</RequestId></ResponseMetadata></GetCallerIdentityResponse>");
    xml
}

fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .context("usage: tokengate-ceiling ADDR")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let xml: &'static str = Box::leak(body().into_boxed_str());
        let app = Router::new().fallback(move |_body: Bytes| async move {
            ([(header::CONTENT_TYPE, "text/xml")], xml).into_response()
        });
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}
