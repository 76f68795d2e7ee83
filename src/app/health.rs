//! The bot's own HTTP listener for operators: `/healthz`, `/readyz` and `/metrics`.
//!
//! Separate from the Discord interactions endpoint (its own address, no Discord signature):
//! a Compose healthcheck or a Prometheus scrape reaches it on the bot's network.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::core::approvals::request::ApprovalState;
use crate::pipeline::Core;

/// What the listener looks at.
pub struct Watched {
    pub core: Arc<Core>,
    /// The audit spill file, whose lines are the backlog.
    pub spill: PathBuf,
    /// Whether the Discord gateway is one of the ingresses (else only the endpoint serves).
    pub gateway: bool,
}

pub fn router(w: Arc<Watched>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(w)
}

/// Serves the listener on `addr` until the task is dropped.
pub async fn serve(addr: std::net::SocketAddr, w: Arc<Watched>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "health and metrics listening");
    axum::serve(listener, router(w)).await
}

async fn store_state(core: &Core) -> Result<(), String> {
    let Some(store) = core.store() else {
        return Err("no store configured".into());
    };
    match tokio::time::timeout(Duration::from_secs(3), store.audit_head()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 3 s".into()),
    }
}

async fn engine_state(core: &Core) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(3), core.service_names()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 3 s".into()),
    }
}

/// 200 when the store and the Engine answer and the gateway has connected (or only the
/// endpoint is in use), 503 otherwise; each part is named with its state.
async fn ready(State(w): State<Arc<Watched>>) -> Response {
    let (store, engine) = tokio::join!(store_state(&w.core), engine_state(&w.core));
    w.core.metrics().set_store_up(store.is_ok());
    let gateway: Result<(), String> = if !w.gateway || w.core.metrics().gateway_sessions() > 0 {
        Ok(())
    } else {
        Err("not connected yet".into())
    };
    let draining = w.core.is_draining();
    let word = |r: &Result<(), String>| match r {
        Ok(()) => serde_json::json!("up"),
        Err(e) => serde_json::json!(format!("down: {}", w.core.redact(e))),
    };
    let ok = store.is_ok() && engine.is_ok() && gateway.is_ok() && !draining;
    let body = serde_json::json!({
        "ready": ok,
        "store": word(&store),
        "engine": word(&engine),
        "gateway": if w.gateway { word(&gateway) } else { serde_json::json!("not used") },
        "draining": draining,
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(w): State<Arc<Watched>>) -> Response {
    let m = w.core.metrics();
    if let Some(store) = w.core.store() {
        for (state, name) in [
            (ApprovalState::Pending, "pending"),
            (ApprovalState::Executing, "executing"),
        ] {
            if let Ok(Ok(list)) =
                tokio::time::timeout(Duration::from_secs(2), store.list_approvals(&[state])).await
            {
                m.set_approvals(name, list.len());
            }
        }
    }
    let backlog = std::fs::read(&w.spill)
        .map(|b| b.split(|c| *c == b'\n').filter(|l| !l.is_empty()).count())
        .unwrap_or(0);
    m.set_spill_backlog(backlog);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
        .into_response()
}
