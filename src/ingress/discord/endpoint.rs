//! The HTTP interactions endpoint (axum): every request's Ed25519 signature is checked before anything runs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ed25519_dalek::{Signature, VerifyingKey};
use serenity::all::{
    CreateAutocompleteResponse, CreateInteractionResponse, CreateInteractionResponseMessage,
    Interaction,
};
use tokio::sync::oneshot;

use super::{Ack, Bot};

/// Requests signed longer ago than this are refused (replays).
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// Longest the endpoint waits for the handler's first answer before deferring itself.
const ANSWER_WITHIN: Duration = Duration::from_millis(2500);

/// Interaction ids remembered against replays; past this many, the oldest is forgotten (it is
/// long outside the signature window by then at any rate Discord sends).
const REMEMBERED: usize = 100_000;

#[derive(Clone)]
struct EndpointState {
    bot: Arc<Bot>,
    verifier: Verifier,
    seen: Arc<Mutex<Seen>>,
}

/// The application's public key, checked strictly: a weak (small-order) key is refused at
/// start-up, and only canonical signatures verify (`verify_strict`), so no request can be
/// forged with a degenerate key or signature.
#[derive(Clone)]
pub struct Verifier {
    key: VerifyingKey,
}

impl Verifier {
    /// True when `sig_hex` (128 hex digits) signs `timestamp` followed by `body`.
    fn verify(&self, sig_hex: &str, timestamp: &str, body: &[u8]) -> bool {
        let Some(sig) = hex_bytes::<64>(sig_hex) else {
            return false;
        };
        let msg = [timestamp.as_bytes(), body].concat();
        self.key
            .verify_strict(&msg, &Signature::from_bytes(&sig))
            .is_ok()
    }
}

fn hex_bytes<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let hex = hex.trim();
    if hex.len() != 2 * N || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Parses the application's public key (64 hex digits, from the developer portal).
pub fn verifier(public_key_hex: &str) -> Result<Verifier, String> {
    let bytes =
        hex_bytes::<32>(public_key_hex).ok_or("the Discord public key must be 64 hex digits")?;
    let key = VerifyingKey::from_bytes(&bytes)
        .map_err(|_| "the Discord public key is not a valid Ed25519 key")?;
    if key.is_weak() {
        return Err(
            "the Discord public key is a weak (small-order) Ed25519 key, which anyone can sign for; it cannot be the application's"
                .into(),
        );
    }
    Ok(Verifier { key })
}

/// Interaction ids already handled, within the signature window: a replayed request (the same
/// signed body again) is refused instead of run twice.
#[derive(Default)]
struct Seen {
    at: HashMap<String, i64>,
    order: VecDeque<(i64, String)>,
}

impl Seen {
    /// Records `id` at `now`; false when it was already seen within the window.
    fn first_time(&mut self, id: &str, now: i64) -> bool {
        let window = MAX_AGE.as_secs() as i64 * 2;
        while let Some((t, old)) = self.order.front() {
            if now - *t <= window && self.order.len() < REMEMBERED {
                break;
            }
            if self.at.get(old) == Some(t) {
                self.at.remove(old);
            }
            self.order.pop_front();
        }
        if self.at.contains_key(id) {
            return false;
        }
        self.at.insert(id.to_owned(), now);
        self.order.push_back((now, id.to_owned()));
        true
    }
}

/// What the endpoint answers when the handler is too slow: each interaction type has its
/// own way to say "later" (a command: a deferred message; a button: a deferred update of its
/// message, not a public "thinking…"; autocomplete: no suggestions, it cannot be deferred).
fn fallback_for(i: &Interaction) -> CreateInteractionResponse {
    match i {
        Interaction::Component(_) => CreateInteractionResponse::Acknowledge,
        Interaction::Autocomplete(_) => {
            CreateInteractionResponse::Autocomplete(CreateAutocompleteResponse::new())
        }
        Interaction::Ping(_) => CreateInteractionResponse::Pong,
        _ => CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new()),
    }
}

/// The router: `POST /interactions`.
pub fn router(bot: Arc<Bot>, verifier: Verifier) -> Router {
    Router::new()
        .route("/interactions", post(interactions))
        .with_state(EndpointState {
            bot,
            verifier,
            seen: Arc::new(Mutex::new(Seen::default())),
        })
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
    if verifier.verify(sig, ts, body) {
        Ok(())
    } else {
        Err("bad signature")
    }
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
    let id = interaction.id().to_string();
    let first = st
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .first_time(&id, chrono::Utc::now().timestamp());
    if !first {
        tracing::warn!(interaction = %id, "interactions endpoint refused a replay");
        return (StatusCode::CONFLICT, "interaction already handled").into_response();
    }
    let fallback = fallback_for(&interaction);
    let (tx, rx) = oneshot::channel();
    tokio::spawn(st.bot.clone().handle(interaction, Ack::Reply(tx)));
    // The handler answers well within its ack budget; if it ever does not, answer here so
    // Discord's 3 seconds are kept. The handler then finds its reply late and delivers its
    // answer as an edit or follow-up instead (see `Acked::Late`).
    let resp = match tokio::time::timeout(ANSWER_WITHIN, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => return StatusCode::NO_CONTENT.into_response(),
        Err(_) => {
            tracing::warn!(interaction = %id, "the handler did not answer in time: the endpoint answered for it");
            fallback
        }
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
    fn a_weak_public_key_is_refused_at_start_up() {
        // The identity point, and another small-order point (order 4): anyone can sign for them.
        let identity = format!("01{}", "00".repeat(31));
        let order_four = format!("{}00", "00".repeat(31));
        for weak in [identity, order_four] {
            let e = verifier(&weak)
                .err()
                .unwrap_or_else(|| panic!("{weak} accepted"));
            assert!(e.contains("weak") || e.contains("not a valid"), "{e}");
        }
    }

    #[test]
    fn a_replayed_interaction_id_is_seen_once_within_the_window() {
        let mut seen = Seen::default();
        assert!(seen.first_time("1300", 1000));
        assert!(!seen.first_time("1300", 1002));
        assert!(seen.first_time("1301", 1002));
        // Long after the signature window the id is forgotten (its timestamp is refused anyway).
        assert!(seen.first_time("1300", 1000 + 2 * MAX_AGE.as_secs() as i64 + 1));
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
