//! The Discord adapter: gateway and HTTP-endpoint ingresses sharing one interaction handler over the core pipeline.

mod approval;
pub mod cards;
pub mod commands;
pub mod endpoint;
pub mod render;
mod threads;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serenity::all::{
    ApplicationId, ButtonStyle, ChannelType, Command as GlobalCommand, CommandDataOptionValue,
    CommandInteraction, Context, CreateActionRow, CreateAllowedMentions, CreateAttachment,
    CreateAutocompleteResponse, CreateButton, CreateEmbed, CreateEmbedFooter,
    CreateInteractionResponse, CreateInteractionResponseFollowup, CreateInteractionResponseMessage,
    CreateMessage, EditInteractionResponse, EditMessage, EventHandler, GatewayIntents, GuildId,
    Http, HttpBuilder, Interaction, InteractionId, Member, PartialChannel, Ready, User,
};
use serenity::builder::Builder;
use tokio::sync::{oneshot, watch};

use crate::core::args::{OptionValue, RawArgs};
use crate::core::catalog::Autocomplete;
use crate::core::error::{PipelineError, UserError};
use crate::core::types::Secret;
use crate::core::types::{ChannelId, UserId};
use crate::pipeline::{Core, Invocation, Reply, ReplyKind};
pub(crate) use threads::Incident;

/// How the Discord side is reached and where commands are registered.
#[derive(Clone)]
pub struct DiscordConfig {
    pub token: Secret,
    /// Register guild commands here (instant); global commands when absent.
    pub guild: Option<GuildId>,
    /// Replaces `https://discord.com` (tests, API proxies). Needs the rate limiter off
    /// (serenity ignores the proxy while its rate limiter is on).
    pub api_base: Option<String>,
    /// Longest a command may take before the interaction is deferred instead of answered.
    pub ack_budget: Duration,
    /// Needed by the HTTP endpoint ingress (the gateway learns it from READY).
    pub application_id: Option<ApplicationId>,
    /// The application's Ed25519 public key (hex) and the address of the HTTP interactions
    /// endpoint; the endpoint runs only when both are set.
    pub public_key: Option<String>,
    pub interactions_addr: Option<SocketAddr>,
    /// The servers the bot takes commands in (`DISCORD_ALLOWED_GUILDS`, else the registration
    /// guild); empty: every server it was invited to.
    pub allowed_guilds: Vec<GuildId>,
    /// Direct messages to the bot run commands only when set (`DISCORD_ALLOW_DMS=true`).
    pub allow_dms: bool,
    /// The HTTP client for `https://discord.com` (tests resolve it to a simulator over TLS, so
    /// serenity's rate limiter runs, which a proxy base turns off); `None`: serenity's own.
    pub http_client: Option<reqwest::Client>,
}

impl fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordConfig")
            .field("token", &self.token)
            .field("guild", &self.guild)
            .field("api_base", &self.api_base)
            .field("application_id", &self.application_id)
            .field("interactions_addr", &self.interactions_addr)
            .finish()
    }
}

impl DiscordConfig {
    /// Reads `DISCORD_TOKEN` (required), `DISCORD_GUILD_ID`, `DISCORD_API_BASE`,
    /// `DISCORD_APPLICATION_ID`, `DISCORD_PUBLIC_KEY` and `DISCORD_INTERACTIONS_ADDR`.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let token = env("DISCORD_TOKEN")
            .filter(|t| !t.trim().is_empty())
            .ok_or("DISCORD_TOKEN is not set: put the bot token in the environment")?;
        let snowflake = |key: &str| -> Result<Option<u64>, String> {
            match env(key).filter(|g| !g.is_empty()) {
                Some(g) => g
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n != 0)
                    .map(Some)
                    .ok_or_else(|| format!("{key} `{g}` is not a snowflake")),
                None => Ok(None),
            }
        };
        let interactions_addr = match env("DISCORD_INTERACTIONS_ADDR").filter(|a| !a.is_empty()) {
            Some(a) => Some(
                a.parse()
                    .map_err(|_| format!("DISCORD_INTERACTIONS_ADDR `{a}` is not host:port"))?,
            ),
            None => None,
        };
        let guild = snowflake("DISCORD_GUILD_ID")?.map(GuildId::new);
        let mut allowed_guilds = Vec::new();
        for g in env("DISCORD_ALLOWED_GUILDS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
        {
            let id = g
                .parse::<u64>()
                .ok()
                .filter(|n| *n != 0)
                .ok_or_else(|| format!("DISCORD_ALLOWED_GUILDS: `{g}` is not a snowflake"))?;
            allowed_guilds.push(GuildId::new(id));
        }
        if allowed_guilds.is_empty() {
            allowed_guilds.extend(guild);
        }
        let allow_dms = match env("DISCORD_ALLOW_DMS").as_deref().map(str::trim) {
            None | Some("") | Some("false") | Some("0") | Some("no") => false,
            Some("true") | Some("1") | Some("yes") => true,
            Some(v) => return Err(format!("DISCORD_ALLOW_DMS `{v}` is not true or false")),
        };
        let application_id = snowflake("DISCORD_APPLICATION_ID")?.map(ApplicationId::new);
        let public_key = env("DISCORD_PUBLIC_KEY").filter(|k| !k.is_empty());
        // The endpoint answers the first response itself, but every edit and follow-up goes
        // to /webhooks/{application id}/…: without the id each of them would fail.
        if public_key.is_some() || interactions_addr.is_some() {
            let missing: Vec<&str> = [
                ("DISCORD_PUBLIC_KEY", public_key.is_none()),
                ("DISCORD_INTERACTIONS_ADDR", interactions_addr.is_none()),
                ("DISCORD_APPLICATION_ID", application_id.is_none()),
            ]
            .into_iter()
            .filter_map(|(k, missing)| missing.then_some(k))
            .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "the HTTP interactions endpoint needs DISCORD_PUBLIC_KEY, DISCORD_INTERACTIONS_ADDR and DISCORD_APPLICATION_ID; missing: {}",
                    missing.join(", ")
                ));
            }
        }
        Ok(Self {
            token: Secret::new(token.trim()),
            guild,
            allowed_guilds,
            allow_dms,
            api_base: env("DISCORD_API_BASE").filter(|b| !b.is_empty()),
            ack_budget: Duration::from_millis(1500),
            application_id,
            public_key,
            interactions_addr,
            http_client: None,
        })
    }

    /// The REST client for this configuration. Build it once: each client has its own rate
    /// limiter. Nothing it sends may ping anyone unless a message names them.
    pub fn http(&self) -> Http {
        let mut b = HttpBuilder::new(self.token.expose())
            .default_allowed_mentions(CreateAllowedMentions::new());
        if let Some(client) = &self.http_client {
            b = b.client(client.clone());
        }
        if let Some(base) = &self.api_base {
            b = b
                .proxy(base.trim_end_matches('/'))
                .ratelimiter_disabled(true);
        }
        if let Some(id) = self.application_id {
            b = b.application_id(id);
        }
        b.build()
    }
}

/// How the first answer to an interaction is delivered: over REST (gateway ingress) or as
/// the body of the HTTP request Discord made (endpoint ingress).
pub enum Ack {
    Rest,
    Reply(oneshot::Sender<CreateInteractionResponse>),
}

/// Which interaction a REST answer is for.
#[derive(Clone, Copy)]
struct Key<'a> {
    id: InteractionId,
    token: &'a str,
}

/// Background tasks (card timers) end when the bot that started them stops: every sender of
/// the channel is gone then.
#[derive(Clone)]
struct Alive {
    rx: watch::Receiver<()>,
    _own: Option<Arc<watch::Sender<()>>>,
}

impl Alive {
    fn owned() -> Self {
        let (tx, rx) = watch::channel(());
        Self {
            rx,
            _own: Some(Arc::new(tx)),
        }
    }

    /// Resolves when the bot has stopped.
    async fn stopped(mut rx: watch::Receiver<()>) {
        while rx.changed().await.is_ok() {}
    }
}

/// The one handler both ingresses share.
pub struct Bot {
    pub core: Arc<Core>,
    pub http: Arc<Http>,
    pub config: DiscordConfig,
    alive: Alive,
}

impl Bot {
    /// A handler whose background tasks live as long as it does.
    pub fn new(core: Arc<Core>, http: Arc<Http>, config: DiscordConfig) -> Self {
        Self {
            core,
            http,
            config,
            alive: Alive::owned(),
        }
    }

    /// Publishes the catalog as slash commands (in the configured guild, or globally), minus
    /// the commands no permission grant reaches unless their file says `show_when_ungranted`.
    pub async fn register(&self) -> serenity::Result<usize> {
        let defs = commands::published(
            &self.core.catalog,
            &self.core.policy,
            &self.core.settings.groups,
            commands::Places {
                dms: self.config.allow_dms,
            },
        );
        let n = defs.len();
        let problems = commands::limit_problems(&defs);
        if !problems.is_empty() {
            // Discord would refuse all of them (50035): say why instead of sending them.
            for p in &problems {
                tracing::error!("slash command not registrable: {p}");
            }
            return Err(serenity::Error::Other(
                "the catalog breaks Discord's limits (see the log, or run `container-ops check-config`)",
            ));
        }
        match self.config.guild {
            Some(g) => {
                g.set_commands(&*self.http, defs).await?;
            }
            None => {
                GlobalCommand::set_global_commands(&*self.http, defs).await?;
            }
        }
        tracing::info!(commands = n, guild = ?self.config.guild, "slash commands registered");
        Ok(n)
    }

    /// Answers one interaction to its end; never panics and never leaves it unanswered.
    pub async fn handle(self: Arc<Self>, interaction: Interaction, ack: Ack) {
        let guild = match &interaction {
            Interaction::Command(c) | Interaction::Autocomplete(c) => Some(c.guild_id),
            Interaction::Component(c) => Some(c.guild_id),
            _ => None,
        };
        if let Some(guild) = guild
            && let Some(why) = self.refused_place(guild)
        {
            tracing::warn!(guild = ?guild, "interaction refused: {why}");
            let resp = match &interaction {
                Interaction::Autocomplete(_) => {
                    CreateInteractionResponse::Autocomplete(CreateAutocompleteResponse::new())
                }
                _ => CreateInteractionResponse::Message(
                    CreateInteractionResponseMessage::new()
                        .content(format!("**Denied.** {why}"))
                        .ephemeral(true),
                ),
            };
            let key = match &interaction {
                Interaction::Command(c) | Interaction::Autocomplete(c) => Some(key(c)),
                Interaction::Component(c) => Some(Key {
                    id: c.id,
                    token: &c.token,
                }),
                _ => None,
            };
            send_ack(&self.http, key, ack, resp).await;
            return;
        }
        match interaction {
            Interaction::Command(c) => self.command(c, ack).await,
            Interaction::Component(c) => approval::click(self, c, ack).await,
            Interaction::Autocomplete(c) => self.autocomplete(c, ack).await,
            Interaction::Ping(_) => {
                send_ack(&self.http, None, ack, CreateInteractionResponse::Pong).await;
            }
            other => {
                tracing::debug!(kind = ?other.kind(), "interaction type not handled");
            }
        }
    }

    /// Why an interaction from this place is not taken, if it is not: a direct message (unless
    /// allowed), or a server other than the team's.
    fn refused_place(&self, guild: Option<GuildId>) -> Option<String> {
        match guild {
            None if self.config.allow_dms => None,
            None => {
                Some("this bot takes commands in its team's server, not in direct messages".into())
            }
            Some(g)
                if !self.config.allowed_guilds.is_empty()
                    && !self.config.allowed_guilds.contains(&g) =>
            {
                Some(format!(
                    "this bot takes commands only in its team's server, not in server {g}"
                ))
            }
            Some(_) => None,
        }
    }

    async fn command(self: Arc<Self>, c: CommandInteraction, ack: Ack) {
        let inv = match invocation(&c) {
            Ok(inv) => inv,
            Err(e) => {
                let msgs = render::error(&e.into());
                self.answer_now(&c, ack, msgs).await;
                return;
            }
        };
        let typed = self
            .core
            .redact(format!("/{} {}", inv.command, inv.args.display()).trim_end());
        let core = self.core.clone();
        let mut run = tokio::spawn(async move { core.run(inv).await });
        let mut ack = Some(ack);
        // Cheap answers (refusals, fast reads) go out directly; anything slower is deferred
        // well inside Discord's 3 seconds and the original response is edited when done.
        let (result, deferred) = match tokio::time::timeout(self.config.ack_budget, &mut run).await
        {
            Ok(result) => (joined(result), false),
            Err(_) => {
                let defer =
                    CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new());
                let Some(a) = ack.take() else { return };
                if !send_ack(&self.http, Some(key(&c)), a, defer)
                    .await
                    .answered()
                {
                    return;
                }
                (joined(run.await), true)
            }
        };
        let request = match &result {
            Ok(Reply {
                kind: ReplyKind::Pending(req),
                ..
            }) => Some(req.clone()),
            _ => None,
        };
        let ending = match &request {
            Some(r) => format!("pending: approval {} requested (card posted)", r.id),
            None => crate::ops::incidents::ending(result.as_ref().map(|r| &r.report)),
        };
        let incident = match &result {
            Ok(r) => match &r.kind {
                ReplyKind::IncidentOpened { .. } => Incident::Opened,
                ReplyKind::IncidentClosed { .. } => Incident::Closed,
                _ => Incident::None,
            },
            Err(_) => Incident::None,
        };
        let result = result.map(|r| r.report);
        if let Some(req) = request {
            approval::post_card(&self, &c, ack.take(), &req).await;
        } else if deferred {
            self.finish_deferred(&c, result).await;
        } else if let Some(a) = ack.take() {
            self.answer_now(&c, a, messages(result)).await;
        }
        threads::after_command(&self, &c, &typed, &ending, incident).await;
    }

    /// The answer to a deferred command, refusals and failures included, is an edit of the
    /// placeholder: Discord turns the first follow-up after a deferral into that edit anyway
    /// (ignoring its ephemeral flag), so deleting the placeholder and following up ephemerally
    /// would not do what it says.
    async fn finish_deferred(
        &self,
        c: &CommandInteraction,
        result: Result<crate::core::report::Report, PipelineError>,
    ) {
        self.edit_and_follow(c, messages(result)).await;
    }

    /// The result is known: answer in the first response when it has no files, else defer
    /// (with the right visibility) and edit.
    async fn answer_now(&self, c: &CommandInteraction, ack: Ack, msgs: Vec<render::Message>) {
        let first = &msgs[0];
        if first.files.is_empty() {
            let resp = CreateInteractionResponse::Message(response_message(first));
            match send_ack(&self.http, Some(key(c)), ack, resp).await {
                Acked::Sent => self.follow_ups(c, &msgs[1..]).await,
                // The endpoint deferred for us: the answer replaces its "thinking…".
                Acked::Late => self.edit_and_follow(c, msgs).await,
                Acked::Failed => {}
            }
        } else {
            let defer = CreateInteractionResponse::Defer(
                CreateInteractionResponseMessage::new().ephemeral(first.ephemeral),
            );
            if send_ack(&self.http, Some(key(c)), ack, defer)
                .await
                .answered()
            {
                self.edit_and_follow(c, msgs).await;
            }
        }
    }

    async fn edit_and_follow(&self, c: &CommandInteraction, msgs: Vec<render::Message>) {
        let edit = on_webhook("edit response", || {
            c.edit_response(&*self.http, edit_message(&msgs[0]))
        });
        if let Err(e) = edit.await {
            tracing::error!("editing the interaction response failed: {e:#}");
            return;
        }
        self.follow_ups(c, &msgs[1..]).await;
    }

    async fn follow_ups(&self, c: &CommandInteraction, msgs: &[render::Message]) {
        for m in msgs {
            let sent = on_webhook("follow-up", || {
                c.create_followup(&*self.http, followup_message(m))
            });
            if let Err(e) = sent.await {
                tracing::error!("follow-up message failed: {e:#}");
                return;
            }
        }
    }

    async fn autocomplete(&self, c: CommandInteraction, ack: Ack) {
        let choices = self.suggestions(&c).await;
        let mut resp = CreateAutocompleteResponse::new();
        for s in choices {
            resp = resp.add_string_choice(s.clone(), s);
        }
        send_ack(
            &self.http,
            Some(key(&c)),
            ack,
            CreateInteractionResponse::Autocomplete(resp),
        )
        .await;
    }

    /// Up to 25 suggestions starting with what was typed (case-insensitive); for a
    /// comma-separated list, the last item is completed and the earlier ones kept.
    async fn suggestions(&self, c: &CommandInteraction) -> Vec<String> {
        let Some(focused) = c.data.autocomplete() else {
            return Vec::new();
        };
        let Some(opt) = self
            .core
            .catalog
            .get(&c.data.name)
            .and_then(|cmd| cmd.option(focused.name))
        else {
            return Vec::new();
        };
        // More than 25 fixed choices are published as autocomplete: the choices are its source.
        let candidates: Vec<String> = match commands::autocomplete_source(opt) {
            _ if !opt.choices.is_empty() => opt.choices.clone(),
            Some(Autocomplete::Services) => match self.core.service_names().await {
                Ok(s) => s.into_iter().map(|s| s.to_string()).collect(),
                Err(e) => {
                    tracing::warn!("autocomplete: no service list: {e}");
                    Vec::new()
                }
            },
            Some(Autocomplete::Groups) => self
                .core
                .settings
                .groups
                .keys()
                .map(|g| g.to_string())
                .collect(),
            Some(Autocomplete::Commands) => {
                self.core.catalog.names().map(|n| n.to_string()).collect()
            }
            None => Vec::new(),
        };
        let typed = focused.value;
        let (kept, last) = match typed.rsplit_once(',') {
            Some((k, l)) if opt.multiple => (format!("{k},"), l.trim()),
            _ => (String::new(), typed.trim()),
        };
        let last = last.to_lowercase();
        candidates
            .into_iter()
            .filter(|s| s.to_lowercase().starts_with(&last))
            .map(|s| format!("{kept}{s}"))
            .filter(|s| s.chars().count() <= 100)
            .take(25)
            .collect()
    }
}

fn joined(
    r: Result<Result<Reply, PipelineError>, tokio::task::JoinError>,
) -> Result<Reply, PipelineError> {
    r.unwrap_or_else(|e| {
        Err(PipelineError::internal(anyhow::anyhow!(
            "command task: {e}"
        )))
    })
}

fn messages(r: Result<crate::core::report::Report, PipelineError>) -> Vec<render::Message> {
    match r {
        Ok(report) => render::report(&report),
        Err(e) => render::error(&e),
    }
}

fn key(c: &CommandInteraction) -> Key<'_> {
    Key {
        id: c.id,
        token: &c.token,
    }
}

/// What became of a first answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Acked {
    Sent,
    /// The HTTP endpoint had already answered for the handler (a deferral of the right kind):
    /// the answer must now go as an edit of the original response or a follow-up.
    Late,
    /// Not delivered; nothing can follow.
    Failed,
}

impl Acked {
    /// Delivered, or stood in for: later calls on the interaction's webhook work.
    fn answered(self) -> bool {
        self != Acked::Failed
    }
}

/// Delivers the first answer.
async fn send_ack(
    http: &Http,
    key: Option<Key<'_>>,
    ack: Ack,
    resp: CreateInteractionResponse,
) -> Acked {
    match ack {
        Ack::Reply(tx) => match tx.send(resp) {
            Ok(()) => Acked::Sent,
            Err(_) => Acked::Late,
        },
        Ack::Rest => {
            let Some(k) = key else { return Acked::Failed };
            match resp.execute(http, (k.id, k.token)).await {
                Ok(()) => Acked::Sent,
                Err(e) => {
                    tracing::error!("interaction response failed: {e:#}");
                    Acked::Failed
                }
            }
        }
    }
}

/// Calls on an interaction's webhook (edit the original response, follow up), retried while
/// Discord does not know the interaction yet. Over the HTTP endpoint the first response goes
/// back as the HTTP reply, so a call made right after it can reach Discord first and get
/// 404 `Unknown Webhook` (10015) or `Unknown interaction` (10062): waited out for about 2 s.
async fn on_webhook<T, F, Fut>(what: &str, mut call: F) -> serenity::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = serenity::Result<T>>,
{
    let mut wait = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    loop {
        match call().await {
            Err(e) if not_known_yet(&e) && waited < Duration::from_secs(2) => {
                tracing::debug!(
                    "{what}: interaction not known to Discord yet, retrying in {wait:?}"
                );
                tokio::time::sleep(wait).await;
                waited += wait;
                wait *= 2;
            }
            other => return other,
        }
    }
}

fn not_known_yet(e: &serenity::Error) -> bool {
    match e {
        serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(r)) => {
            r.status_code.as_u16() == 404 && matches!(r.error.code, 10015 | 10062)
        }
        _ => false,
    }
}

/// The person and place of an interaction, as the core's types.
fn actor_and_channel(
    user: &User,
    channel: serenity::all::ChannelId,
    member: Option<&Member>,
) -> Result<(UserId, ChannelId, Vec<String>), UserError> {
    let actor = UserId::parse(&user.id.to_string())
        .map_err(|e| UserError::InvalidArgument(e.to_string()))?;
    let channel = ChannelId::parse(&channel.to_string())
        .map_err(|e| UserError::InvalidArgument(e.to_string()))?;
    let roles = member
        .map(|m| m.roles.iter().map(|r| r.to_string()).collect())
        .unwrap_or_default();
    Ok((actor, channel, roles))
}

/// Inside a thread the parent channel's grants apply, as Discord applies the parent's
/// permissions; the thread stays the invocation's place (incident timelines key on it).
fn grants_from(channel: Option<&PartialChannel>) -> Option<ChannelId> {
    let c = channel?;
    let thread = matches!(
        c.kind,
        ChannelType::PublicThread | ChannelType::PrivateThread | ChannelType::NewsThread
    );
    thread
        .then_some(c.parent_id)
        .flatten()
        .and_then(|p| ChannelId::parse(&p.to_string()).ok())
}

/// Builds the core's Invocation from a slash command: Discord user id, role ids, channel id,
/// and the options with the types Discord gave them.
pub fn invocation(c: &CommandInteraction) -> Result<Invocation, UserError> {
    let (actor, channel, roles) = actor_and_channel(&c.user, c.channel_id, c.member.as_deref())?;
    let mut options = Vec::new();
    for o in &c.data.options {
        let value = match &o.value {
            CommandDataOptionValue::String(s) => OptionValue::Text(s.clone()),
            CommandDataOptionValue::Integer(n) => OptionValue::Integer(*n),
            CommandDataOptionValue::Boolean(b) => OptionValue::Boolean(*b),
            CommandDataOptionValue::Number(n) => OptionValue::Text(n.to_string()),
            _ => {
                return Err(UserError::InvalidArgument(format!(
                    "option `{}` has a type this bot does not take",
                    o.name
                )));
            }
        };
        options.push((o.name.clone(), value));
    }
    let mut inv = Invocation::new(
        actor,
        channel,
        c.data.name.clone(),
        RawArgs::Options(options),
    );
    inv.platform_roles = roles;
    inv.grants_from = grants_from(c.channel.as_ref());
    inv.via = "discord".into();
    Ok(inv)
}

fn embed(e: &render::Embed) -> CreateEmbed {
    let mut b = CreateEmbed::new()
        .description(&e.description)
        .colour(e.colour);
    if let Some(t) = &e.title {
        b = b.title(t);
    }
    for (name, value) in &e.fields {
        b = b.field(name, value, false);
    }
    if let Some(f) = &e.footer {
        b = b.footer(CreateEmbedFooter::new(f));
    }
    b
}

fn files(m: &render::Message) -> Vec<CreateAttachment> {
    m.files
        .iter()
        .map(|a| CreateAttachment::bytes(a.body.as_bytes().to_vec(), a.name.clone()))
        .collect()
}

/// Buttons in rows of five (the renderer keeps them within five rows).
fn components(m: &render::Message) -> Vec<CreateActionRow> {
    m.buttons
        .chunks(render::limits::BUTTONS_PER_ROW)
        .map(|row| {
            CreateActionRow::Buttons(
                row.iter()
                    .map(|b| {
                        CreateButton::new(&b.custom_id)
                            .label(&b.label)
                            .style(match b.style {
                                render::ButtonStyle::Success => ButtonStyle::Success,
                                render::ButtonStyle::Danger => ButtonStyle::Danger,
                            })
                            .disabled(b.disabled)
                    })
                    .collect(),
            )
        })
        .collect()
}

/// Every serenity message builder takes the same parts under the same method names: one
/// place decides what a message carries, whichever route sends it.
macro_rules! message_parts {
    ($builder:expr, $m:expr) => {{
        let m: &render::Message = $m;
        // No @everyone, role or user pings from anything the bot posts, whatever its text.
        let mut b = $builder
            .embeds(m.embeds.iter().map(embed).collect())
            .allowed_mentions(CreateAllowedMentions::new());
        if let Some(c) = &m.content {
            b = b.content(c);
        }
        if !m.buttons.is_empty() {
            b = b.components(components(m));
        }
        b
    }};
}

/// The first answer to an interaction.
fn response_message(m: &render::Message) -> CreateInteractionResponseMessage {
    message_parts!(
        CreateInteractionResponseMessage::new()
            .ephemeral(m.ephemeral)
            .files(files(m)),
        m
    )
}

/// An edit of the first answer (after a deferral).
fn edit_message(m: &render::Message) -> EditInteractionResponse {
    let mut b = message_parts!(EditInteractionResponse::new(), m);
    for f in files(m) {
        b = b.new_attachment(f);
    }
    b
}

/// The same message as an edit through the channel route (when no interaction token is left).
fn edit_channel_message(m: &render::Message) -> EditMessage {
    message_parts!(EditMessage::new(), m)
}

/// The same message posted to a channel by the bot itself.
fn create_message(m: &render::Message) -> CreateMessage {
    message_parts!(CreateMessage::new().files(files(m)), m)
}

/// A further message of the same answer.
fn followup_message(m: &render::Message) -> CreateInteractionResponseFollowup {
    message_parts!(
        CreateInteractionResponseFollowup::new()
            .ephemeral(m.ephemeral)
            .files(files(m)),
        m
    )
}

struct GatewayHandler {
    core: Arc<Core>,
    config: DiscordConfig,
    alive: Alive,
}

impl GatewayHandler {
    /// The shared handler over the client's own REST client, which knows the application id from READY.
    fn bot(&self, ctx: &Context) -> Arc<Bot> {
        Arc::new(Bot {
            core: self.core.clone(),
            http: ctx.http.clone(),
            config: self.config.clone(),
            alive: self.alive.clone(),
        })
    }
}

#[serenity::async_trait]
impl EventHandler for GatewayHandler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        tracing::info!(user = %ready.user.name, "connected to the Discord gateway");
        self.core.metrics().gateway_connected();
        if let Err(e) = self.bot(&ctx).register().await {
            tracing::error!("registering slash commands failed: {e:#}");
        }
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        // Each interaction on its own task so a slow command never delays the next ack.
        tokio::spawn(self.bot(&ctx).handle(interaction, Ack::Rest));
    }
}

/// Connects to the gateway, registers the catalog and answers interactions until stopped.
/// Open approval cards are picked up again (their expiry re-scheduled), and `/incident`
/// gets Discord threads.
pub async fn serve(core: Arc<Core>, config: DiscordConfig) -> anyhow::Result<()> {
    // Card timers end with this function: when it returns or is dropped, the sender goes.
    let (_alive_tx, alive_rx) = watch::channel(());
    let (mut client, bot) = assemble(core, config.clone(), alive_rx).await?;
    tokio::spawn(approval::resume(bot.clone()));
    if let (Some(key), Some(addr)) = (&config.public_key, config.interactions_addr) {
        let verifier = endpoint::verifier(key).map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(%addr, "HTTP interactions endpoint listening");
        let bot = bot.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, endpoint::router(bot, verifier)).await {
                tracing::error!("interactions endpoint stopped: {e:#}");
            }
        });
    }
    client.start().await?;
    Ok(())
}

/// The gateway client and the handler the endpoint, timers and threads use, on one REST
/// client: Discord's rate limits are per bot, so one limiter must see every request.
pub async fn assemble(
    core: Arc<Core>,
    config: DiscordConfig,
    alive_rx: watch::Receiver<()>,
) -> anyhow::Result<(serenity::Client, Arc<Bot>)> {
    let alive = Alive {
        rx: alive_rx,
        _own: None,
    };
    let handler = GatewayHandler {
        core: core.clone(),
        config: config.clone(),
        alive: alive.clone(),
    };
    let client = serenity::all::ClientBuilder::new_with_http(config.http(), GatewayIntents::GUILDS)
        .event_handler(handler)
        .await?;
    let http = client.http.clone();
    core.set_threads(Arc::new(threads::DiscordThreads::new(http.clone())));
    let bot = Arc::new(Bot {
        core,
        http,
        config,
        alive,
    });
    Ok((client, bot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowed_servers_are_the_registration_guild_unless_named_and_dms_are_off() {
        let env = |extra: &'static [(&'static str, &'static str)]| {
            move |k: &str| match k {
                "DISCORD_TOKEN" => Some("t".to_owned()),
                "DISCORD_GUILD_ID" => Some("123".to_owned()),
                _ => extra
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned()),
            }
        };
        let cfg = DiscordConfig::from_env(&env(&[])).unwrap();
        assert_eq!(cfg.allowed_guilds, [GuildId::new(123)]);
        assert!(!cfg.allow_dms);
        let cfg = DiscordConfig::from_env(&env(&[
            ("DISCORD_ALLOWED_GUILDS", "5, 6"),
            ("DISCORD_ALLOW_DMS", "true"),
        ]))
        .unwrap();
        assert_eq!(cfg.allowed_guilds, [GuildId::new(5), GuildId::new(6)]);
        assert!(cfg.allow_dms);
        let e = DiscordConfig::from_env(&env(&[("DISCORD_ALLOWED_GUILDS", "ops")])).unwrap_err();
        assert!(e.contains("DISCORD_ALLOWED_GUILDS"), "{e}");
    }

    #[test]
    fn the_interactions_endpoint_needs_the_application_id_and_says_so() {
        let env = |k: &str| match k {
            "DISCORD_TOKEN" => Some("t".to_owned()),
            "DISCORD_PUBLIC_KEY" => Some("ab".repeat(32)),
            "DISCORD_INTERACTIONS_ADDR" => Some("127.0.0.1:8080".to_owned()),
            _ => None,
        };
        let e = DiscordConfig::from_env(&env).unwrap_err();
        assert!(e.contains("missing: DISCORD_APPLICATION_ID"), "{e}");
        let with_id = |k: &str| match k {
            "DISCORD_APPLICATION_ID" => Some("42".to_owned()),
            other => env(other),
        };
        assert!(DiscordConfig::from_env(&with_id).is_ok());
        let half = |k: &str| match k {
            "DISCORD_INTERACTIONS_ADDR" => None,
            other => with_id(other),
        };
        let e = DiscordConfig::from_env(&half).unwrap_err();
        assert!(e.contains("missing: DISCORD_INTERACTIONS_ADDR"), "{e}");
    }

    #[test]
    fn the_token_never_prints_and_a_missing_token_says_what_to_set() {
        let env = |k: &str| match k {
            "DISCORD_TOKEN" => Some("very-secret-token".to_owned()),
            "DISCORD_GUILD_ID" => Some("123".to_owned()),
            _ => None,
        };
        let cfg = DiscordConfig::from_env(&env).unwrap();
        assert!(!format!("{cfg:?}").contains("very-secret-token"));
        assert_eq!(cfg.guild, Some(GuildId::new(123)));
        let e = DiscordConfig::from_env(&|_: &str| None).unwrap_err();
        assert!(e.contains("DISCORD_TOKEN"), "{e}");
        let bad = |k: &str| match k {
            "DISCORD_TOKEN" => Some("t".to_owned()),
            "DISCORD_GUILD_ID" => Some("guild".to_owned()),
            _ => None,
        };
        assert!(
            DiscordConfig::from_env(&bad)
                .unwrap_err()
                .contains("DISCORD_GUILD_ID")
        );
    }
}
