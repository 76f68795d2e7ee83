//! The HTTP interactions endpoint (axum): every request's Ed25519 signature is checked before anything runs.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serenity::all::{CreateInteractionResponse, CreateInteractionResponseMessage, Interaction};
use serenity::interactions_endpoint::Verifier;
use tokio::sync::oneshot;

use super::{Ack, Bot};

/// Requests signed longer ago than this are refused (replays).
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// Longest the endpoint waits for the handler's first answer before deferring itself.
const ANSWER_WITHIN: Duration = Duration::from_millis(2500);

#[derive(Clone)]
struct EndpointState {
    bot: Arc<Bot>,
    verifier: Verifier,
}

/// Parses the application's public key (64 hex digits, from the developer portal).
pub fn verifier(public_key_hex: &str) -> Result<Verifier, String> {
    let hex = public_key_hex.trim();
    let bytes = hex.as_bytes();
    if bytes.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("the Discord public key must be 64 hex digits".into());
    }
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Verifier::try_new(key).map_err(|_| "the Discord public key is not a valid Ed25519 key".into())
}

/// The router: `POST /interactions`.
pub fn router(bot: Arc<Bot>, verifier: Verifier) -> Router {
    Router::new()
        .route("/interactions", post(interactions))
        .with_state(EndpointState { bot, verifier })
}

fn unauthorized(why: &'static str) -> Response {
    tracing::warn!("interactions endpoint refused a request: {why}");
    (StatusCode::UNAUTHORIZED, why).into_response()
}

/// Checks headers, age and signature; `now` is seconds since the epoch.
fn check(
    verifier: &Verifier,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<(), &'static str> {
    let sig = headers
        .get("x-signature-ed25519")
        .and_then(|v| v.to_str().ok())
        .ok_or("missing signature")?;
    let ts = headers
        .get("x-signature-timestamp")
        .and_then(|v| v.to_str().ok())
        .ok_or("missing timestamp")?;
    let at: i64 = ts.parse().map_err(|_| "bad timestamp")?;
    if (now - at).unsigned_abs() > MAX_AGE.as_secs() {
        return Err("timestamp too old");
    }
    verifier.verify(sig, ts, body).map_err(|()| "bad signature")
}

async fn interactions(
    State(st): State<EndpointState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(why) = check(
        &st.verifier,
        &headers,
        &body,
        chrono::Utc::now().timestamp(),
    ) {
        return unauthorized(why);
    }
    let interaction: Interaction = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!("interactions endpoint: unreadable interaction: {e}");
            return (StatusCode::BAD_REQUEST, "unreadable interaction").into_response();
        }
    };
    let (tx, rx) = oneshot::channel();
    tokio::spawn(st.bot.clone().handle(interaction, Ack::Reply(tx)));
    // The handler answers well within its ack budget; if it ever does not, defer here so
    // Discord's 3 seconds are kept (the handler's later answer then fails loudly in the log).
    let resp = match tokio::time::timeout(ANSWER_WITHIN, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => return StatusCode::NO_CONTENT.into_response(),
        Err(_) => CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new()),
    };
    match serde_json::to_vec(&resp) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => {
            tracing::error!("interaction response not serialisable: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_public_key_is_refused_not_panicked_on() {
        assert!(verifier("abc").is_err());
        assert!(verifier(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn missing_headers_and_old_timestamps_are_refused_before_the_signature() {
        let v = verifier("67c6bd767ca099e79efac9fcce4d2022a63bf7dea780e7f3d813f694c1597089")
            .or_else(|_| verifier(&"11".repeat(32)))
            .unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(check(&v, &h, b"{}", 1000), Err("missing signature"));
        h.insert("x-signature-ed25519", "00".parse().unwrap());
        assert_eq!(check(&v, &h, b"{}", 1000), Err("missing timestamp"));
        h.insert("x-signature-timestamp", "100".parse().unwrap());
        assert_eq!(check(&v, &h, b"{}", 1000), Err("timestamp too old"));
        h.insert("x-signature-timestamp", "1000".parse().unwrap());
        assert_eq!(check(&v, &h, b"{}", 1000), Err("bad signature"));
    }
}
