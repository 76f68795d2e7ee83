//! A protocol-level Discord simulator: REST (axum) and gateway (tokio-tungstenite) on 127.0.0.1 that
//! records every request the bot makes and rejects what Discord would reject.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use serenity::model::event::{Event, GatewayEvent};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message as WsMessage;

pub const APP_ID: u64 = 1_100_000_000_000_000_001;
pub const BOT_USER_ID: u64 = 1_100_000_000_000_000_002;
pub const GUILD_ID: u64 = 1_100_000_000_000_000_003;
pub const CHANNEL_ID: u64 = 1_100_000_000_000_000_004;
const KILL: &str = "\u{0}kill";
/// Discord keeps at most this many pins per channel.
const MAX_PINS: usize = 50;
/// An interaction must get its first answer within this.
const INITIAL_RESPONSE: Duration = Duration::from_secs(3);
/// An interaction token (edits, follow-ups) lasts this long.
const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// A channel or thread as the simulator keeps it.
#[derive(Debug, Clone)]
pub struct SimChannel {
    pub id: u64,
    /// 0 text channel, 11 public thread, 12 private thread.
    pub kind: u64,
    pub parent: Option<u64>,
    pub name: String,
    pub archived: bool,
    pub locked: bool,
    pub auto_archive: u64,
    pub pins: Vec<u64>,
}

impl SimChannel {
    /// A channel as just created: open, unlocked, nothing pinned.
    fn new(id: u64, kind: u64, parent: Option<u64>, name: &str, auto_archive: u64) -> Self {
        Self {
            id,
            kind,
            parent,
            name: name.to_owned(),
            archived: false,
            locked: false,
            auto_archive,
            pins: Vec::new(),
        }
    }

    fn is_thread(&self) -> bool {
        matches!(self.kind, 10..=12)
    }
}

/// A message as it stands now (after every edit).
#[derive(Debug, Clone)]
pub struct SimMessage {
    pub id: u64,
    pub channel: u64,
    pub ephemeral: bool,
    /// Content, embeds and components as last set.
    pub body: Value,
    pub files: Vec<String>,
    /// Every version, oldest first (the creation, then each edit).
    pub history: Vec<Value>,
}

/// What the simulator remembers of an interaction it dispatched.
#[derive(Debug, Clone)]
struct Dispatched {
    token: String,
    at: Instant,
    kind: u64,
    channel: u64,
    /// For a component interaction: the message the component is on.
    message: Option<u64>,
}

/// One request the bot made, as the simulator saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub json: Value,
    /// (file name, bytes) of multipart uploads.
    pub files: Vec<(String, Vec<u8>)>,
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    violations: Vec<String>,
    dispatched: Vec<Dispatched>,
    /// Interaction token → the message `@original` refers to.
    originals: BTreeMap<String, u64>,
    /// Tokens whose first answer (callback) was given: Discord takes one.
    acknowledged: HashSet<String>,
    /// Tokens past their 15 minutes (tests expire them on purpose).
    expired: HashSet<String>,
    /// Interactions sent to the bot's HTTP endpoint whose reply Discord has not read yet:
    /// their webhook routes answer 404 10015 until then, as Discord's do.
    reply_unread: HashSet<String>,
    /// Webhook calls that came before the reply was read.
    early_webhook_calls: usize,
    channels: BTreeMap<u64, SimChannel>,
    messages: BTreeMap<u64, SimMessage>,
    threads_made: u64,
    gateway: Option<mpsc::UnboundedSender<String>>,
    seq: u64,
    message_id: u64,
    /// IDENTIFY (op 2) and RESUME (op 6) frames received, in order.
    handshakes: Vec<u64>,
    /// Permissions the bot lacks, per channel (a thread inherits its parent's).
    denied: HashSet<(u64, Permission)>,
    /// Deprecated routes the bot called (Discord still serves them; reported, not refused).
    deprecated: Vec<String>,
    /// Routes to answer with 429: method, path part, how many more times, retry after.
    limits: Vec<(String, String, usize, Duration)>,
    /// Deferred (type 5) interactions whose loading message has not been edited yet: Discord
    /// turns the first follow-up into that edit, ephemeral flag or not.
    loading: HashSet<String>,
}

/// The bot permissions the simulator can withhold, as Discord names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    CreatePublicThreads,
    SendMessagesInThreads,
    PinMessages,
    ManageThreads,
}

pub struct Sim {
    pub rest: SocketAddr,
    /// The same REST API over TLS as `discord.com` (see `tests/fixtures/tls`).
    pub rest_tls: SocketAddr,
    pub gateway: SocketAddr,
    token: String,
    inner: Mutex<Inner>,
    changed: Notify,
}

/// What a command interaction finally showed the user.
#[derive(Debug, Clone)]
pub struct Final {
    /// Time from dispatch to the first callback.
    pub ack_after: Duration,
    /// 4 (answered) or 5 (deferred, then the original response was edited).
    pub ack_type: u64,
    pub ephemeral: bool,
    pub content: String,
    pub embeds: Vec<Value>,
    pub files: Vec<(String, Vec<u8>)>,
}

impl Sim {
    /// Starts REST and gateway listeners; `token` is the only one accepted.
    pub async fn start(token: &str) -> Arc<Sim> {
        let rest_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gw_l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut inner = Inner::default();
        inner.channels.insert(
            CHANNEL_ID,
            SimChannel::new(CHANNEL_ID, 0, None, "ops", 1440),
        );
        let sim = Arc::new(Sim {
            rest: rest_l.local_addr().unwrap(),
            rest_tls: tls_l.local_addr().unwrap(),
            gateway: gw_l.local_addr().unwrap(),
            token: token.to_owned(),
            inner: Mutex::new(inner),
            changed: Notify::new(),
        });
        // Discord takes up to 25 MiB a request; axum's default body limit is 2 MB.
        let app = Router::new()
            .fallback(rest)
            .layer(axum::extract::DefaultBodyLimit::max(32 * 1024 * 1024))
            .with_state(sim.clone());
        tokio::spawn(serve_tls(tls_l, app.clone()));
        tokio::spawn(async move { axum::serve(rest_l, app).await.unwrap() });
        let s = sim.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = gw_l.accept().await {
                let s = s.clone();
                tokio::spawn(async move { s.gateway_session(stream).await });
            }
        });
        sim
    }

    /// An HTTP client that reaches this simulator as `https://discord.com`: with it serenity's
    /// own rate limiter (which ignores proxies) runs in tests.
    pub fn discord_client(&self) -> reqwest::Client {
        let ca = std::fs::read(tls_fixture("ca.pem")).unwrap();
        reqwest::Client::builder()
            .resolve("discord.com", self.rest_tls)
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap()
    }

    /// Answers the next `times` requests whose method is `method` and whose path contains
    /// `path_part` with 429 and Discord's rate-limit headers, asking to wait `retry_after`.
    pub fn rate_limit(&self, method: &str, path_part: &str, times: usize, retry_after: Duration) {
        self.lock()
            .limits
            .push((method.to_owned(), path_part.to_owned(), times, retry_after));
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.rest)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Every refusal the simulator made because the bot broke a Discord rule.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// The suite-wide rule: no request of a test broke a Discord limit or rule.
    pub fn assert_no_violations(&self) {
        let v = self.violations();
        assert!(
            v.is_empty(),
            "the bot sent what Discord would reject: {v:#?}"
        );
    }

    /// Takes the violations recorded so far (for tests of the simulator itself).
    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().violations)
    }

    fn violation(&self, what: String) {
        eprintln!("discord-sim: REJECTED: {what}");
        self.lock().violations.push(what);
    }

    /// Withholds `perm` from the bot in `channel` (and its threads): Discord answers 403 with
    /// code 50013, which is not the bot's fault, so it is not a violation.
    pub fn deny(&self, channel: u64, perm: Permission) {
        self.lock().denied.insert((channel, perm));
    }

    /// Deprecated routes called so far.
    pub fn deprecated_routes(&self) -> Vec<String> {
        self.lock().deprecated.clone()
    }

    fn lacks(&self, channel: &SimChannel, perm: Permission) -> bool {
        let inner = self.lock();
        inner.denied.contains(&(channel.id, perm))
            || channel
                .parent
                .is_some_and(|p| inner.denied.contains(&(p, perm)))
    }

    /// Drops the bot's gateway connection abruptly, as a network cut would.
    pub fn kill_gateway(&self) {
        if let Some(tx) = self.lock().gateway.take() {
            let _ = tx.send(KILL.into());
        }
    }

    /// A channel or thread as it stands now.
    pub fn channel(&self, id: u64) -> Option<SimChannel> {
        self.lock().channels.get(&id).cloned()
    }

    /// An interaction goes to the bot's HTTP endpoint: until `reply_read`, its webhook routes
    /// are unknown (Discord has not processed the HTTP reply yet).
    pub fn sent_over_http(&self, token: &str) {
        self.lock().reply_unread.insert(token.to_owned());
    }

    /// Discord has read the endpoint's reply to this interaction.
    pub fn reply_read(&self, token: &str) {
        self.lock().reply_unread.remove(token);
    }

    /// Webhook calls refused because they came before the reply was read.
    pub fn early_webhook_calls(&self) -> usize {
        self.lock().early_webhook_calls
    }

    /// Adds a text channel (`parent: None`) or a public thread in `parent`, as a person would
    /// in Discord's client; returns its id.
    pub fn add_channel(&self, name: &str, parent: Option<u64>) -> u64 {
        let mut inner = self.lock();
        let id = 1_120_000_000_000_000_000 + inner.channels.len() as u64;
        let kind = if parent.is_some() { 11 } else { 0 };
        inner
            .channels
            .insert(id, SimChannel::new(id, kind, parent, name, 1440));
        id
    }

    /// Every thread created so far, in creation order.
    pub fn threads(&self) -> Vec<SimChannel> {
        self.lock()
            .channels
            .values()
            .filter(|c| c.is_thread())
            .cloned()
            .collect()
    }

    /// A message as it stands now (after every edit), with its history.
    pub fn message(&self, id: u64) -> Option<SimMessage> {
        self.lock().messages.get(&id).cloned()
    }

    /// Messages of a channel in the order they were created.
    pub fn messages_in(&self, channel: u64) -> Vec<SimMessage> {
        self.lock()
            .messages
            .values()
            .filter(|m| m.channel == channel)
            .cloned()
            .collect()
    }

    /// The message `@original` of an interaction token refers to.
    pub fn original(&self, token: &str) -> Option<u64> {
        self.lock().originals.get(token).copied()
    }

    /// Ends an interaction token's life, as 15 minutes would: Discord then answers 401 (50027).
    pub fn expire_token(&self, token: &str) {
        self.lock().expired.insert(token.to_owned());
    }

    /// A button click (MESSAGE_COMPONENT) on a message the bot posted, by `user_id` in the
    /// message's channel; read back with serenity's types like every dispatch.
    pub fn click(
        &self,
        id: u64,
        token: &str,
        user_id: u64,
        roles: &[u64],
        message: u64,
        custom_id: &str,
    ) {
        let d = self.click_payload(id, token, user_id, roles, message, custom_id);
        self.dispatch_interaction(d);
    }

    /// The component interaction a click on `message` makes (to dispatch, or to sign and post
    /// to the bot's HTTP endpoint).
    pub fn click_payload(
        &self,
        id: u64,
        token: &str,
        user_id: u64,
        roles: &[u64],
        message: u64,
        custom_id: &str,
    ) -> Value {
        let m = self
            .message(message)
            .expect("a click on a message the simulator knows");
        let obj = message_object(
            m.id,
            m.channel,
            &m.body,
            &[],
            if m.ephemeral { 64 } else { 0 },
            20,
        );
        let mut d = interaction(3, id, token, user_id, roles, "", json!([]));
        d["data"] = json!({"custom_id": custom_id, "component_type": 2});
        d["message"] = obj;
        d["channel_id"] = json!(m.channel.to_string());
        d
    }

    /// IDENTIFY (2) and RESUME (6) opcodes received so far.
    pub fn handshakes(&self) -> Vec<u64> {
        self.lock().handshakes.clone()
    }

    /// Waits until `pred` holds over the recorded requests.
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&[Recorded]) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if let Some(t) = pred(&self.lock().requests) {
                return Some(t);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }

    /// Waits until `pred` holds; unlike [`Sim::wait_for`] it holds no lock, so it may look at
    /// channels and messages through the simulator's accessors.
    pub async fn until<T>(
        &self,
        timeout: Duration,
        mut pred: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if let Some(t) = pred() {
                return Some(t);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }

    /// The last successful command registration (guild or global), with its route.
    pub async fn registration(&self, after: usize, timeout: Duration) -> Option<Recorded> {
        self.wait_for(timeout, |rs| {
            rs.iter()
                .skip(after)
                .rfind(|r| r.method == "PUT" && r.path.ends_with("/commands") && r.status == 200)
                .cloned()
        })
        .await
    }

    /// Sends INTERACTION_CREATE over the gateway. The payload is first read back with serenity's
    /// own types: a payload serenity would turn into `Event::Unknown` fails the test here, loudly.
    /// Like Discord, it carries the partial `channel` object of its `channel_id` (a thread's
    /// names its `parent_id`).
    pub fn dispatch_interaction(&self, mut d: Value) {
        let token = d["token"].as_str().unwrap().to_owned();
        let mut inner = self.lock();
        let channel: u64 = d["channel_id"]
            .as_str()
            .and_then(|c| c.parse().ok())
            .unwrap_or(CHANNEL_ID);
        if let Some(c) = inner.channels.get(&channel) {
            d["channel"] = json!({
                "id": c.id.to_string(),
                "type": c.kind,
                "name": c.name,
                "parent_id": c.parent.map(|p| p.to_string()),
                "permissions": "2147483647",
            });
        }
        inner.seq += 1;
        let frame = json!({"op": 0, "t": "INTERACTION_CREATE", "s": inner.seq, "d": d});
        check_event(&frame);
        let tx = inner
            .gateway
            .clone()
            .expect("the bot is not connected to the gateway");
        inner.dispatched.push(Dispatched {
            token,
            at: Instant::now(),
            kind: d["type"].as_u64().unwrap_or(0),
            channel,
            message: d["message"]["id"].as_str().and_then(|m| m.parse().ok()),
        });
        tx.send(frame.to_string()).unwrap();
    }

    /// Records an interaction as dispatched `ago` without a bot on the gateway, for tests of
    /// the simulator's own rules.
    pub fn pretend_dispatched(&self, token: &str, kind: u64, ago: Duration) {
        self.lock().dispatched.push(Dispatched {
            token: token.to_owned(),
            at: Instant::now().checked_sub(ago).expect("a past instant"),
            kind,
            channel: CHANNEL_ID,
            message: None,
        });
    }

    /// Waits for the user-visible end of an interaction: an immediate answer (type 4), or a
    /// deferral (type 5) followed by the edit of the original response.
    pub async fn final_answer(&self, token: &str, timeout: Duration) -> Option<Final> {
        let sent = self
            .lock()
            .dispatched
            .iter()
            .find(|d| d.token == token)
            .map(|d| d.at)?;
        self.wait_for(timeout, |rs| {
            let cb = rs.iter().find(|r| {
                r.method == "POST"
                    && r.path.contains(&format!("/{token}/callback"))
                    && r.status < 300
            })?;
            let ack_type = cb.json["type"].as_u64()?;
            let flags = cb.json["data"]["flags"].as_u64().unwrap_or(0);
            let (body, files) = match ack_type {
                4 => (cb.json["data"].clone(), cb.files.clone()),
                5 => {
                    let edit = rs.iter().find(|r| {
                        r.method == "PATCH"
                            && r.path.contains(&format!("/{token}/messages/@original"))
                            && r.status < 300
                    })?;
                    (edit.json.clone(), edit.files.clone())
                }
                _ => return None,
            };
            Some(Final {
                ack_after: cb.at.duration_since(sent),
                ack_type,
                ephemeral: flags & 64 != 0,
                content: body["content"].as_str().unwrap_or("").to_owned(),
                embeds: body["embeds"].as_array().cloned().unwrap_or_default(),
                files,
            })
        })
        .await
    }

    /// Autocomplete answer (callback type 8) for an interaction token.
    pub async fn autocomplete_choices(
        &self,
        token: &str,
        timeout: Duration,
    ) -> Option<Vec<String>> {
        self.wait_for(timeout, |rs| {
            let cb = rs.iter().find(|r| {
                r.method == "POST"
                    && r.path.contains(&format!("/{token}/callback"))
                    && r.status < 300
            })?;
            assert_eq!(
                cb.json["type"], 8,
                "autocomplete must be answered with type 8"
            );
            Some(
                cb.json["data"]["choices"]
                    .as_array()?
                    .iter()
                    .map(|c| c["value"].as_str().unwrap_or("").to_owned())
                    .collect(),
            )
        })
        .await
    }

    async fn gateway_session(self: Arc<Self>, stream: tokio::net::TcpStream) {
        let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        let (mut sink, mut source) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let hello = json!({"op": 10, "d": {"heartbeat_interval": 41250}});
        check_gateway(&hello);
        if sink.send(WsMessage::Text(hello.to_string())).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                out = rx.recv() => {
                    let Some(out) = out else { return };
                    if out == KILL {
                        // No close frame: the TCP connection just goes away.
                        return;
                    }
                    if sink.send(WsMessage::Text(out)).await.is_err() { return; }
                }
                frame = source.next() => {
                    let Some(Ok(frame)) = frame else { return };
                    let text = match frame {
                        WsMessage::Text(t) => t,
                        WsMessage::Close(_) => return,
                        _ => continue,
                    };
                    let Ok(v) = serde_json::from_str::<Value>(&text) else {
                        self.violation(format!("gateway: not JSON: {text}"));
                        continue;
                    };
                    match v["op"].as_u64() {
                        Some(2) => {
                            let sent = v["d"]["token"].as_str().unwrap_or("");
                            if sent.trim_start_matches("Bot ") != self.token {
                                // Discord closes with 4004 "Authentication failed".
                                let _ = sink.send(WsMessage::Close(Some(
                                    tokio_tungstenite::tungstenite::protocol::CloseFrame {
                                        code: 4004.into(),
                                        reason: "Authentication failed.".into(),
                                    },
                                ))).await;
                                return;
                            }
                            let ready = {
                                let mut inner = self.lock();
                                inner.handshakes.push(2);
                                inner.seq += 1;
                                inner.gateway = Some(tx.clone());
                                ready_frame(inner.seq, self.gateway)
                            };
                            check_event(&ready);
                            if sink.send(WsMessage::Text(ready.to_string())).await.is_err() { return; }
                            // Then, as Discord does for each guild in READY, the guild itself.
                            let guild = {
                                let mut inner = self.lock();
                                inner.seq += 1;
                                guild_create_frame(inner.seq, &inner.channels)
                            };
                            check_event(&guild);
                            if sink.send(WsMessage::Text(guild.to_string())).await.is_err() { return; }
                        }
                        Some(6) => {
                            let resumed = {
                                let mut inner = self.lock();
                                inner.handshakes.push(6);
                                inner.seq += 1;
                                inner.gateway = Some(tx.clone());
                                json!({"op": 0, "t": "RESUMED", "s": inner.seq, "d": {}})
                            };
                            check_event(&resumed);
                            if sink.send(WsMessage::Text(resumed.to_string())).await.is_err() { return; }
                        }
                        Some(1) => {
                            let ack = json!({"op": 11});
                            check_gateway(&ack);
                            if sink.send(WsMessage::Text(ack.to_string())).await.is_err() { return; }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

impl Inner {
    fn next_message_id(&mut self) -> u64 {
        self.message_id += 1;
        1_200_000_000_000_000_000 + self.message_id
    }

    fn dispatched(&self, token: &str) -> Option<&Dispatched> {
        self.dispatched.iter().find(|d| d.token == token)
    }

    /// Stores a new message and returns its object as Discord would.
    fn create_message(
        &mut self,
        channel: u64,
        body: &Value,
        files: &[(String, Vec<u8>)],
        flags: u64,
        kind: u64,
    ) -> (u64, Value) {
        let id = self.next_message_id();
        self.messages.insert(
            id,
            SimMessage {
                id,
                channel,
                ephemeral: flags & 64 != 0,
                body: body.clone(),
                files: files.iter().map(|(n, _)| n.clone()).collect(),
                history: vec![body.clone()],
            },
        );
        (id, message_object(id, channel, body, files, flags, kind))
    }

    /// Applies an edit (the fields it sets replace the old ones) and returns the new object.
    fn edit_message(
        &mut self,
        id: u64,
        body: &Value,
        files: &[(String, Vec<u8>)],
    ) -> Option<Value> {
        let m = self.messages.get_mut(&id)?;
        for k in ["content", "embeds", "components"] {
            if !body[k].is_null() {
                m.body[k] = body[k].clone();
            }
        }
        if !files.is_empty() {
            m.files = files.iter().map(|(n, _)| n.clone()).collect();
        }
        m.history.push(body.clone());
        let flags = if m.ephemeral { 64 } else { 0 };
        Some(message_object(id, m.channel, &m.body, files, flags, 20))
    }
}

fn check_gateway(frame: &Value) {
    if let Err(e) = serde_json::from_value::<GatewayEvent>(frame.clone()) {
        panic!("discord-sim: serenity cannot read our own gateway frame ({e}): {frame}");
    }
}

/// A dispatch serenity would read as `Event::Unknown` is silently dropped by the bot; fail here.
pub fn check_event(frame: &Value) {
    match serde_json::from_value::<GatewayEvent>(frame.clone()) {
        Ok(GatewayEvent::Dispatch(_, Event::Unknown(u))) => {
            let detail = match u.kind.as_str() {
                "INTERACTION_CREATE" => {
                    serde_json::from_value::<serenity::all::Interaction>(frame["d"].clone())
                        .err()
                        .map(|e| e.to_string())
                }
                "GUILD_CREATE" => {
                    serde_json::from_value::<serenity::all::Guild>(frame["d"].clone())
                        .err()
                        .map(|e| e.to_string())
                }
                _ => None,
            }
            .unwrap_or_default();
            panic!(
                "discord-sim: our {} would be Event::Unknown to serenity: {detail}",
                u.kind
            )
        }
        Ok(GatewayEvent::Dispatch(..)) => {}
        Ok(other) => panic!("discord-sim: expected a dispatch, built {other:?}"),
        Err(e) => panic!("discord-sim: serenity cannot read our dispatch ({e}): {frame}"),
    }
}

fn user(id: u64, name: &str, bot: bool) -> Value {
    json!({"id": id.to_string(), "username": name, "discriminator": "0", "global_name": name,
           "avatar": null, "bot": bot, "public_flags": 0})
}

/// GUILD_CREATE for the team's guild: its text channels and threads, the bot as a member.
fn guild_create_frame(seq: u64, channels: &BTreeMap<u64, SimChannel>) -> Value {
    let (threads, plain): (Vec<&SimChannel>, Vec<&SimChannel>) =
        channels.values().partition(|c| c.is_thread());
    let with_guild = |c: &SimChannel| {
        let mut v = channel_object(c);
        v["guild_id"] = json!(GUILD_ID.to_string());
        v
    };
    let mut d = json!({
        "id": GUILD_ID.to_string(), "name": "platform team", "icon": null, "icon_hash": null,
        "splash": null, "discovery_splash": null, "owner_id": "900000000000000001",
        "afk_channel_id": null, "afk_timeout": 300, "widget_enabled": false,
        "widget_channel_id": null, "verification_level": 1, "default_message_notifications": 1,
        "explicit_content_filter": 0, "emojis": [], "features": [], "mfa_level": 0,
        "application_id": null, "system_channel_id": null, "system_channel_flags": 0,
        "rules_channel_id": null, "max_presences": null, "max_members": 500000,
    });
    let more = json!({
        "vanity_url_code": null, "description": null, "banner": null, "premium_tier": 0,
        "premium_subscription_count": 0, "preferred_locale": "en-US",
        "public_updates_channel_id": null, "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50, "nsfw_level": 0, "stickers": [],
        "premium_progress_bar_enabled": false, "safety_alerts_channel_id": null,
        "joined_at": "2026-01-01T00:00:00.000000+00:00", "large": false, "unavailable": false,
        "member_count": 1, "voice_states": [], "presences": [], "stage_instances": [],
        "guild_scheduled_events": [], "incidents_data": null,
    });
    for (k, v) in more.as_object().unwrap() {
        d[k] = v.clone();
    }
    d["roles"] = json!([{"id": GUILD_ID.to_string(), "name": "@everyone", "color": 0,
        "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
        "hoist": false, "icon": null, "unicode_emoji": null, "position": 0,
        "permissions": "2248473465835073", "managed": false, "mentionable": false, "flags": 0}]);
    d["members"] = json!([{"user": user(BOT_USER_ID, "container-ops", true), "roles": [],
        "joined_at": "2026-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false,
        "flags": 0, "pending": false}]);
    d["channels"] = json!(plain.into_iter().map(with_guild).collect::<Vec<_>>());
    d["threads"] = json!(threads.into_iter().map(with_guild).collect::<Vec<_>>());
    json!({"op": 0, "t": "GUILD_CREATE", "s": seq, "d": d})
}

fn ready_frame(seq: u64, gw: SocketAddr) -> Value {
    json!({"op": 0, "t": "READY", "s": seq, "d": {
        "v": 10,
        "user": {"id": BOT_USER_ID.to_string(), "username": "container-ops", "discriminator": "0",
                 "avatar": null, "bot": true, "verified": true, "mfa_enabled": false, "flags": 0},
        "guilds": [{"id": GUILD_ID.to_string(), "unavailable": true}],
        "session_id": "sim-session",
        "resume_gateway_url": format!("ws://{gw}"),
        "application": {"id": APP_ID.to_string(), "flags": 0}
    }})
}

/// An INTERACTION_CREATE payload with every field serenity requires.
pub fn interaction(
    kind: u8,
    id: u64,
    token: &str,
    user_id: u64,
    roles: &[u64],
    name: &str,
    options: Value,
) -> Value {
    json!({
        "id": id.to_string(),
        "application_id": APP_ID.to_string(),
        "type": kind,
        "data": {"id": "1300000000000000001", "name": name, "type": 1, "options": options},
        "guild_id": GUILD_ID.to_string(),
        "channel_id": CHANNEL_ID.to_string(),
        "member": {
            "user": user(user_id, "oncall", false),
            "roles": roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            "joined_at": "2026-01-01T00:00:00.000000+00:00",
            "deaf": false, "mute": false, "flags": 0, "pending": false,
            "permissions": "2147483647"
        },
        "token": token,
        "version": 1,
        "app_permissions": "2147483647",
        "locale": "en-US",
        "guild_locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": GUILD_ID.to_string()},
        "context": 0,
        "attachment_size_limit": 10_485_760
    })
}

fn discord_error(status: StatusCode, code: u64, message: &str, errors: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"code": code, "message": message, "errors": errors}).to_string(),
    )
        .into_response()
}

/// Reads a JSON body or a multipart body (`payload_json` + `files[n]`).
async fn read_body(req: Request) -> Result<(Value, Vec<(String, Vec<u8>)>), String> {
    let ct = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if ct.starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(req, &())
            .await
            .map_err(|e| e.to_string())?;
        let mut json = Value::Null;
        let mut files = Vec::new();
        while let Some(field) = mp.next_field().await.map_err(|e| e.to_string())? {
            let name = field.name().unwrap_or("").to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let bytes = field.bytes().await.map_err(|e| e.to_string())?;
            if name == "payload_json" {
                json = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            } else {
                files.push((file_name.unwrap_or(name), bytes.to_vec()));
            }
        }
        Ok((json, files))
    } else {
        let bytes = axum::body::to_bytes(req.into_body(), 64 * 1024 * 1024)
            .await
            .map_err(|e| e.to_string())?;
        if bytes.is_empty() {
            return Ok((Value::Null, Vec::new()));
        }
        Ok((
            serde_json::from_slice(&bytes).map_err(|e| e.to_string())?,
            Vec::new(),
        ))
    }
}

/// Discord counts lengths in UTF-16 code units (an emoji outside the BMP counts two).
fn len(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.encode_utf16().count())
}

/// Discord's message rules (create, edit, interaction response data).
pub fn message_problems(m: &Value, files: &[(String, Vec<u8>)], creating: bool) -> Vec<String> {
    let mut p = Vec::new();
    if len(&m["content"]) > 2000 {
        p.push(format!("content: {} > 2000", len(&m["content"])));
    }
    let embeds = m["embeds"].as_array().cloned().unwrap_or_default();
    if embeds.len() > 10 {
        p.push(format!("embeds: {} > 10", embeds.len()));
    }
    let mut total = 0;
    for (i, e) in embeds.iter().enumerate() {
        let checks = [
            ("title", len(&e["title"]), 256),
            ("description", len(&e["description"]), 4096),
            ("footer.text", len(&e["footer"]["text"]), 2048),
            ("author.name", len(&e["author"]["name"]), 256),
        ];
        for (what, n, max) in checks {
            total += n;
            if n > max {
                p.push(format!("embeds[{i}].{what}: {n} > {max}"));
            }
        }
        let fields = e["fields"].as_array().cloned().unwrap_or_default();
        if fields.len() > 25 {
            p.push(format!("embeds[{i}].fields: {} > 25", fields.len()));
        }
        for (j, f) in fields.iter().enumerate() {
            let (n, v) = (len(&f["name"]), len(&f["value"]));
            total += n + v;
            if n == 0 || n > 256 {
                p.push(format!("embeds[{i}].fields[{j}].name: {n}"));
            }
            if v == 0 || v > 1024 {
                p.push(format!("embeds[{i}].fields[{j}].value: {v}"));
            }
        }
    }
    if total > 6000 {
        p.push(format!("embeds total: {total} > 6000"));
    }
    let rows = m["components"].as_array().cloned().unwrap_or_default();
    if rows.len() > 5 {
        p.push(format!("components: {} rows > 5", rows.len()));
    }
    for (i, row) in rows.iter().enumerate() {
        let items = row["components"].as_array().cloned().unwrap_or_default();
        if items.len() > 5 {
            p.push(format!("components[{i}]: {} buttons > 5", items.len()));
        }
        for b in items {
            let n = len(&b["custom_id"]);
            if b.get("custom_id").is_some() && !(1..=100).contains(&n) {
                p.push(format!("components[{i}].custom_id: {n} not in 1..=100"));
            }
        }
    }
    if files.len() > 10 {
        p.push(format!("files: {} > 10", files.len()));
    }
    let mut bytes = 0;
    for (name, f) in files {
        bytes += f.len();
        if f.len() > 10 * 1024 * 1024 {
            p.push(format!("file {name}: {} bytes > 10 MiB", f.len()));
        }
    }
    if bytes > 25 * 1024 * 1024 {
        p.push(format!("files total {bytes} bytes > 25 MiB"));
    }
    // The bot's own rule, checked on everything it sends: nothing pings unless named.
    match m.get("allowed_mentions") {
        None => p.push("no allowed_mentions: its text could ping @everyone, roles or users".into()),
        Some(a) if a["parse"].as_array().is_none_or(|x| !x.is_empty()) => {
            p.push(format!("allowed_mentions {a} lets mentions through"))
        }
        Some(_) => {}
    }
    if creating
        && len(&m["content"]) == 0
        && embeds.is_empty()
        && files.is_empty()
        && rows.is_empty()
    {
        p.push("empty message (50006)".into());
    }
    p
}

fn command_problems(cmds: &Value) -> Vec<String> {
    let mut p = Vec::new();
    let Some(cmds) = cmds.as_array() else {
        return vec!["body is not an array of commands".into()];
    };
    if cmds.len() > 100 {
        p.push(format!("{} commands > 100", cmds.len()));
    }
    let name_ok = |s: &str| {
        (1..=32).contains(&s.chars().count())
            && s.chars()
                .all(|c| c.is_lowercase() || c.is_numeric() || c == '-' || c == '_')
    };
    let mut names = std::collections::BTreeSet::new();
    for c in cmds {
        let name = c["name"].as_str().unwrap_or("");
        if !name_ok(name) {
            p.push(format!("command name `{name}`"));
        }
        if !names.insert(name.to_owned()) {
            p.push(format!("duplicate command `{name}`"));
        }
        if !(1..=100).contains(&len(&c["description"])) {
            p.push(format!(
                "/{name}: description length {}",
                len(&c["description"])
            ));
        }
        let opts = c["options"].as_array().cloned().unwrap_or_default();
        if opts.len() > 25 {
            p.push(format!("/{name}: {} options > 25", opts.len()));
        }
        let mut seen_optional = false;
        for o in &opts {
            let on = o["name"].as_str().unwrap_or("");
            if !name_ok(on) {
                p.push(format!("/{name}: option name `{on}`"));
            }
            if !(1..=100).contains(&len(&o["description"])) {
                p.push(format!(
                    "/{name} {on}: description length {}",
                    len(&o["description"])
                ));
            }
            let required = o["required"].as_bool().unwrap_or(false);
            if required && seen_optional {
                p.push(format!(
                    "/{name}: required option `{on}` after an optional one"
                ));
            }
            seen_optional |= !required;
            let choices = o["choices"].as_array().map_or(0, Vec::len);
            if choices > 25 {
                p.push(format!("/{name} {on}: {choices} choices > 25"));
            }
            if choices > 0 && o["autocomplete"].as_bool().unwrap_or(false) {
                p.push(format!("/{name} {on}: choices and autocomplete together"));
            }
            if !matches!(o["type"].as_u64(), Some(1..=11)) {
                p.push(format!("/{name} {on}: option type {}", o["type"]));
            }
        }
    }
    p
}

/// A message object as Discord returns it, checked to be readable by serenity.
fn message_object(
    id: u64,
    channel: u64,
    m: &Value,
    files: &[(String, Vec<u8>)],
    flags: u64,
    kind: u64,
) -> Value {
    let attachments: Vec<Value> = files
        .iter()
        .enumerate()
        .map(|(i, (name, b))| {
            json!({"id": (1_400_000_000_000_000_000u64 + i as u64).to_string(), "filename": name,
                   "size": b.len(), "url": format!("https://cdn.invalid/{name}"),
                   "proxy_url": format!("https://cdn.invalid/{name}")})
        })
        .collect();
    let msg = json!({
        "id": id.to_string(),
        "channel_id": channel.to_string(),
        "author": user(BOT_USER_ID, "container-ops", true),
        "content": m["content"].as_str().unwrap_or(""),
        "timestamp": "2026-11-30T04:00:00.000000+00:00",
        "edited_timestamp": null,
        "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
        "attachments": attachments,
        "embeds": m["embeds"].as_array().cloned().unwrap_or_default(),
        "pinned": false, "type": kind, "flags": flags,
        "components": m["components"].as_array().cloned().unwrap_or_default(),
    });
    if let Err(e) = serde_json::from_value::<serenity::all::Message>(msg.clone()) {
        panic!("discord-sim: serenity cannot read our message object ({e}): {msg}");
    }
    msg
}

/// A channel object as Discord returns it, checked to be readable by serenity.
fn channel_object(c: &SimChannel) -> Value {
    let mut v = json!({
        "id": c.id.to_string(),
        "type": c.kind,
        "guild_id": GUILD_ID.to_string(),
        "name": c.name,
        "parent_id": c.parent.map(|p| p.to_string()),
        "nsfw": false,
        "rate_limit_per_user": 0,
        "flags": 0,
    });
    if c.is_thread() {
        v["owner_id"] = json!(BOT_USER_ID.to_string());
        v["message_count"] = json!(0);
        v["member_count"] = json!(1);
        v["thread_metadata"] = json!({
            "archived": c.archived,
            "auto_archive_duration": c.auto_archive,
            "archive_timestamp": "2026-11-30T04:00:00.000000+00:00",
            "locked": c.locked,
        });
    }
    if let Err(e) = serde_json::from_value::<serenity::all::GuildChannel>(v.clone()) {
        panic!("discord-sim: serenity cannot read our channel object ({e}): {v}");
    }
    v
}

async fn rest(State(sim): State<Arc<Sim>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let (json, files) = match read_body(req).await {
        Ok(b) => b,
        Err(e) => {
            sim.violation(format!("{method} {path}: unreadable body: {e}"));
            return discord_error(
                StatusCode::BAD_REQUEST,
                50109,
                "The request body contains invalid JSON.",
                json!({}),
            );
        }
    };
    let limited = {
        let mut inner = sim.lock();
        inner
            .limits
            .iter_mut()
            .find(|(m, p, n, _)| *n > 0 && *m == method.as_str() && path.contains(p.as_str()))
            .map(|l| {
                l.2 -= 1;
                l.3
            })
    };
    let spec = crate::discord_spec::spec();
    let (status, resp) = if let Some(wait) = limited {
        (StatusCode::TOO_MANY_REQUESTS, too_many_requests(wait))
    } else {
        let problems = spec.problems(method.as_str(), &path, &json);
        if problems.is_empty() {
            if let Some(route) = spec.deprecated(method.as_str(), &path) {
                sim.lock().deprecated.push(format!("{method} {route}"));
            }
            route(&sim, &method, &path, &auth, &json, &files)
        } else {
            // What Discord's own spec refuses, the simulator refuses as Discord would.
            invalid_form(&sim, "spec", problems)
        }
    };
    sim.lock().requests.push(Recorded {
        at: Instant::now(),
        method: method.to_string(),
        path,
        json,
        files,
        status: status.as_u16(),
    });
    sim.changed.notify_waiters();
    resp
}

/// Discord's 429 with its rate-limit headers, asking to wait `wait`.
fn too_many_requests(wait: Duration) -> Response {
    let secs = format!("{:.3}", wait.as_secs_f64());
    (
            StatusCode::TOO_MANY_REQUESTS,
            [
                ("content-type", "application/json".to_owned()),
                ("retry-after", secs.clone()),
                ("x-ratelimit-limit", "5".to_owned()),
                ("x-ratelimit-remaining", "0".to_owned()),
                ("x-ratelimit-reset-after", secs.clone()),
                ("x-ratelimit-bucket", "sim-bucket".to_owned()),
                ("x-ratelimit-scope", "user".to_owned()),
            ],
            json!({"message": "You are being rate limited.", "retry_after": wait.as_secs_f64(), "global": false})
                .to_string(),
        )
            .into_response()
}

/// Discord's 400 "Invalid Form Body" (50035); each problem is recorded as a violation,
/// prefixed with `what`.
fn invalid_form(sim: &Sim, what: &str, problems: Vec<String>) -> (StatusCode, Response) {
    for p in &problems {
        sim.violation(format!("{what}: {p}"));
    }
    (
        StatusCode::BAD_REQUEST,
        discord_error(
            StatusCode::BAD_REQUEST,
            50035,
            "Invalid Form Body",
            json!({"_errors": problems}),
        ),
    )
}

/// A request Discord refuses with `code`; recorded as a violation (the bot should never need it).
fn refuse(
    sim: &Sim,
    method: &Method,
    path: &str,
    status: StatusCode,
    code: u64,
    message: &str,
) -> (StatusCode, Response) {
    sim.violation(format!("{method} {path}: {status} {code} {message}"));
    (status, discord_error(status, code, message, json!({})))
}

/// Discord's answer when the bot lacks a permission.
fn missing_permission() -> (StatusCode, Response) {
    (
        StatusCode::FORBIDDEN,
        discord_error(
            StatusCode::FORBIDDEN,
            50013,
            "Missing Permissions",
            json!({}),
        ),
    )
}

fn known_channel(sim: &Sim, id: &str) -> Option<SimChannel> {
    sim.lock().channels.get(&id.parse::<u64>().ok()?).cloned()
}

/// A message of `channel` the bot may edit or pin: its own, not ephemeral (those have no
/// channel route), not deleted.
fn known_message(sim: &Sim, channel: u64, id: &str) -> Option<SimMessage> {
    sim.lock()
        .messages
        .get(&id.parse::<u64>().ok()?)
        .filter(|m| m.channel == channel && !m.ephemeral)
        .cloned()
}

fn route(
    sim: &Sim,
    method: &Method,
    path: &str,
    auth: &str,
    json: &Value,
    files: &[(String, Vec<u8>)],
) -> (StatusCode, Response) {
    let Some(p) = path.strip_prefix("/api/v10/") else {
        sim.violation(format!("{method} {path}: not an API v10 path"));
        return (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND.into_response());
    };
    let parts: Vec<&str> = p.split('/').collect();
    // Interaction callbacks and webhook routes are authorised by the interaction token;
    // everything else needs the bot token.
    let token_routes = matches!(parts.first(), Some(&"interactions") | Some(&"webhooks"));
    if !token_routes && auth != format!("Bot {}", sim.token) {
        return (
            StatusCode::UNAUTHORIZED,
            discord_error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized", json!({})),
        );
    }
    let invalid = |problems: Vec<String>| invalid_form(sim, &format!("{method} {path}"), problems);
    if let ["webhooks", _, token, ..] = parts.as_slice() {
        let mut inner = sim.lock();
        if inner.reply_unread.contains(*token) {
            // Not a misuse by the bot: the race Discord documents for HTTP replies.
            inner.early_webhook_calls += 1;
            return (
                StatusCode::NOT_FOUND,
                discord_error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook", json!({})),
            );
        }
    }
    let ok = |v: Value| (StatusCode::OK, axum::Json(v).into_response());
    let no_channel = || {
        refuse(
            sim,
            method,
            path,
            StatusCode::NOT_FOUND,
            10003,
            "Unknown Channel",
        )
    };
    let no_message = || {
        refuse(
            sim,
            method,
            path,
            StatusCode::NOT_FOUND,
            10008,
            "Unknown Message",
        )
    };
    // An interaction token past its 15 minutes.
    let gone = || {
        refuse(
            sim,
            method,
            path,
            StatusCode::UNAUTHORIZED,
            50027,
            "Invalid Webhook Token",
        )
    };
    let archived = || {
        refuse(
            sim,
            method,
            path,
            StatusCode::BAD_REQUEST,
            50083,
            "Thread is archived",
        )
    };
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["gateway"]) => ok(json!({"url": format!("ws://{}", sim.gateway)})),
        ("PUT", ["applications", app, "commands"])
        | ("PUT", ["applications", app, "guilds", _, "commands"]) => {
            if *app != APP_ID.to_string() {
                return invalid(vec![format!("unknown application {app}")]);
            }
            let problems = command_problems(json);
            if !problems.is_empty() {
                return invalid(problems);
            }
            let guild = parts.get(3).map(|g| g.to_string());
            let out: Vec<Value> = json
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut c = c.clone();
                    c["id"] = json!((1_300_000_000_000_000_100u64 + i as u64).to_string());
                    c["application_id"] = json!(APP_ID.to_string());
                    c["version"] = json!("1");
                    c["type"] = json!(1);
                    c["default_member_permissions"] = Value::Null;
                    if let Some(g) = &guild {
                        c["guild_id"] = json!(g);
                    }
                    c
                })
                .collect();
            if let Err(e) = serde_json::from_value::<Vec<serenity::all::Command>>(json!(out)) {
                panic!("discord-sim: serenity cannot read our command list: {e}");
            }
            ok(json!(out))
        }
        ("POST", ["interactions", _, token, "callback"]) => {
            let kind = json["type"].as_u64().unwrap_or(0);
            let data = &json["data"];
            if sim.lock().expired.contains(*token) {
                return gone();
            }
            let late = sim
                .lock()
                .dispatched(token)
                .is_some_and(|d| d.at.elapsed() > INITIAL_RESPONSE);
            if late {
                // Past Discord's 3 seconds the interaction is gone.
                return refuse(
                    sim,
                    method,
                    path,
                    StatusCode::NOT_FOUND,
                    10062,
                    "Unknown interaction",
                );
            }
            let mut inner = sim.lock();
            if !inner.acknowledged.insert(token.to_string()) {
                drop(inner);
                return refuse(
                    sim,
                    method,
                    path,
                    StatusCode::BAD_REQUEST,
                    40060,
                    "Interaction has already been acknowledged.",
                );
            }
            // Interactions the simulator did not dispatch (tests posting directly) are only
            // checked for their shape.
            let d = inner.dispatched(token).cloned();
            let interaction = d.as_ref().map(|d| d.kind);
            let mut problems = match kind {
                1 => Vec::new(),
                4 | 7 => message_problems(data, files, kind == 4),
                5 | 6 => Vec::new(),
                8 => {
                    let ch = data["choices"].as_array().cloned().unwrap_or_default();
                    let mut p = Vec::new();
                    if ch.len() > 25 {
                        p.push(format!("{} choices > 25", ch.len()));
                    }
                    for c in ch {
                        if !(1..=100).contains(&len(&c["name"])) || len(&c["value"]) > 100 {
                            p.push(format!("choice {c} out of bounds"));
                        }
                    }
                    p
                }
                other => vec![format!("interaction response type {other}")],
            };
            // Which answers fit which interaction (Discord's "interaction response types").
            let fits = matches!(
                (interaction, kind),
                (None, _) | (Some(2), 4 | 5) | (Some(3), 4..=7) | (Some(4), 8)
            );
            if !fits {
                problems.push(format!(
                    "response type {kind} is not valid for interaction type {interaction:?}"
                ));
            }
            if !problems.is_empty() {
                inner.acknowledged.remove(*token);
                drop(inner);
                return invalid(problems);
            }
            if let Some(d) = d {
                match kind {
                    4 | 5 => {
                        let flags = data["flags"].as_u64().unwrap_or(0);
                        let body = if kind == 4 {
                            data.clone()
                        } else {
                            json!({"content": ""})
                        };
                        let (id, _) = inner.create_message(d.channel, &body, files, flags, 20);
                        inner.originals.insert(token.to_string(), id);
                        if kind == 5 {
                            inner.loading.insert(token.to_string());
                        }
                    }
                    6 | 7 => {
                        let Some(m) = d.message else {
                            drop(inner);
                            return invalid(vec![
                                "a message update for an interaction without a message".into(),
                            ]);
                        };
                        inner.originals.insert(token.to_string(), m);
                        if kind == 7 {
                            inner.edit_message(m, data, files);
                        }
                    }
                    _ => {}
                }
            }
            (
                StatusCode::NO_CONTENT,
                StatusCode::NO_CONTENT.into_response(),
            )
        }
        ("DELETE", ["webhooks", app, token, "messages", "@original"]) => {
            if *app != APP_ID.to_string() {
                return invalid(vec![format!("unknown application {app}")]);
            }
            if sim.lock().expired.contains(*token) {
                return gone();
            }
            let mut inner = sim.lock();
            if let Some(id) = inner.originals.get(*token).copied() {
                inner.messages.remove(&id);
            }
            (
                StatusCode::NO_CONTENT,
                StatusCode::NO_CONTENT.into_response(),
            )
        }
        ("PATCH", ["webhooks", app, token, "messages", "@original"])
        | ("POST", ["webhooks", app, token]) => {
            if *app != APP_ID.to_string() {
                return invalid(vec![format!("unknown application {app}")]);
            }
            let creating = method == Method::POST;
            let problems = message_problems(json, files, creating);
            if !problems.is_empty() {
                return invalid(problems);
            }
            let past_window = sim
                .lock()
                .dispatched(token)
                .is_some_and(|d| d.at.elapsed() > TOKEN_LIFETIME);
            if past_window || sim.lock().expired.contains(*token) {
                return gone();
            }
            let mut inner = sim.lock();
            let d = inner.dispatched(token).cloned();
            let channel = d.as_ref().map_or(CHANNEL_ID, |d| d.channel);
            if d.is_some() && !inner.acknowledged.contains(*token) {
                drop(inner);
                return refuse(
                    sim,
                    method,
                    path,
                    StatusCode::NOT_FOUND,
                    10015,
                    "Unknown Webhook",
                );
            }
            let flags = json["flags"].as_u64().unwrap_or(0);
            // The first follow-up after a deferral edits the loading message (Discord's
            // documented behaviour), whatever its flags say.
            let edits_loading = inner.loading.remove(*token);
            if creating && !edits_loading {
                let (_, obj) = inner.create_message(channel, json, files, flags, 20);
                return ok(obj);
            }
            let original = inner.originals.get(*token).copied();
            match original {
                Some(id) => {
                    let edited = inner.edit_message(id, json, files);
                    drop(inner);
                    match edited {
                        Some(obj) => ok(obj),
                        None => no_message(),
                    }
                }
                None => {
                    // A token the simulator never saw (a test posting directly): keep it simple.
                    let (id, obj) = inner.create_message(channel, json, files, flags, 20);
                    inner.originals.insert(token.to_string(), id);
                    ok(obj)
                }
            }
        }
        ("POST", ["channels", channel, "threads"]) => {
            let Some(parent) = known_channel(sim, channel) else {
                return no_channel();
            };
            if sim.lacks(&parent, Permission::CreatePublicThreads) {
                return missing_permission();
            }
            if parent.kind != 0 && parent.kind != 5 {
                return refuse(
                    sim,
                    method,
                    path,
                    StatusCode::BAD_REQUEST,
                    50024,
                    "Cannot execute action on this channel type",
                );
            }
            let mut problems = Vec::new();
            let name_len = len(&json["name"]);
            if !json["name"].is_string() || !(1..=100).contains(&name_len) {
                problems.push(format!("name: length {name_len} not in 1..=100"));
            }
            let kind = match &json["type"] {
                Value::Null => 12, // Discord's default for a thread without a message: private
                v => v.as_u64().unwrap_or(0),
            };
            if !matches!(kind, 10..=12) {
                problems.push(format!("type {kind} is not a thread type"));
            }
            let archive = match &json["auto_archive_duration"] {
                Value::Null => 1440,
                v => v.as_u64().unwrap_or(0),
            };
            if ![60, 1440, 4320, 10080].contains(&archive) {
                problems.push(format!("auto_archive_duration {archive}"));
            }
            if !problems.is_empty() {
                return invalid(problems);
            }
            let mut inner = sim.lock();
            inner.threads_made += 1;
            let t = SimChannel::new(
                1_110_000_000_000_000_000 + inner.threads_made,
                kind,
                Some(parent.id),
                json["name"].as_str().unwrap_or(""),
                archive,
            );
            inner.channels.insert(t.id, t.clone());
            (
                StatusCode::CREATED,
                (StatusCode::CREATED, axum::Json(channel_object(&t))).into_response(),
            )
        }
        ("POST", ["channels", channel, "messages"]) => {
            let Some(c) = known_channel(sim, channel) else {
                return no_channel();
            };
            if c.archived {
                return archived();
            }
            if c.is_thread() && sim.lacks(&c, Permission::SendMessagesInThreads) {
                return missing_permission();
            }
            let problems = message_problems(json, files, true);
            if !problems.is_empty() {
                return invalid(problems);
            }
            let (_, obj) = sim.lock().create_message(c.id, json, files, 0, 0);
            ok(obj)
        }
        ("PATCH", ["channels", channel, "messages", message]) => {
            let Some(c) = known_channel(sim, channel) else {
                return no_channel();
            };
            let Some(m) = known_message(sim, c.id, message) else {
                return no_message();
            };
            if c.archived {
                return archived();
            }
            let problems = message_problems(json, files, false);
            if !problems.is_empty() {
                return invalid(problems);
            }
            let edited = sim.lock().edit_message(m.id, json, files);
            match edited {
                Some(obj) => ok(obj),
                None => (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND.into_response()),
            }
        }
        ("PUT", ["channels", channel, "pins", message]) => {
            let Some(c) = known_channel(sim, channel) else {
                return no_channel();
            };
            let Some(m) = known_message(sim, c.id, message) else {
                return no_message();
            };
            if sim.lacks(&c, Permission::PinMessages) {
                return missing_permission();
            }
            if c.pins.len() >= MAX_PINS {
                return refuse(
                    sim,
                    method,
                    path,
                    StatusCode::BAD_REQUEST,
                    30003,
                    "Maximum number of pins reached (50)",
                );
            }
            let mut inner = sim.lock();
            if let Some(ch) = inner.channels.get_mut(&c.id)
                && !ch.pins.contains(&m.id)
            {
                ch.pins.push(m.id);
            }
            (
                StatusCode::NO_CONTENT,
                StatusCode::NO_CONTENT.into_response(),
            )
        }
        ("PATCH", ["channels", channel]) => {
            let Some(c) = known_channel(sim, channel) else {
                return no_channel();
            };
            let locking = !json["archived"].is_null() || !json["locked"].is_null();
            if locking && sim.lacks(&c, Permission::ManageThreads) {
                return missing_permission();
            }
            let mut problems = Vec::new();
            for k in ["archived", "locked"] {
                if json[k].is_null() {
                    continue;
                }
                if !c.is_thread() {
                    problems.push(format!("{k}: only threads are archived or locked"));
                }
                if !json[k].is_boolean() {
                    problems.push(format!("{k}: not a boolean"));
                }
            }
            if !json["name"].is_null() && !(1..=100).contains(&len(&json["name"])) {
                problems.push("name: length not in 1..=100".into());
            }
            if !problems.is_empty() {
                return invalid(problems);
            }
            let mut inner = sim.lock();
            let Some(ch) = inner.channels.get_mut(&c.id) else {
                return (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND.into_response());
            };
            if let Some(a) = json["archived"].as_bool() {
                ch.archived = a;
            }
            if let Some(l) = json["locked"].as_bool() {
                ch.locked = l;
            }
            if let Some(n) = json["name"].as_str() {
                ch.name = n.to_owned();
            }
            let obj = channel_object(ch);
            ok(obj)
        }
        _ => {
            sim.violation(format!("{method} {path}: a route the bot should not need"));
            (
                StatusCode::NOT_FOUND,
                discord_error(StatusCode::NOT_FOUND, 0, "404: Not Found", json!({})),
            )
        }
    }
}

fn tls_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// Serves `app` over TLS as `discord.com`, with the test certificate.
async fn serve_tls(listener: TcpListener, app: Router) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(tls_fixture("discord.com.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(tls_fixture("discord.com.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    while let Ok((stream, _)) = listener.accept().await {
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
        });
    }
}
