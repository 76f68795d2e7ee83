//! The one pipeline: invocation → catalog → policy → args → rate limit → approval gate → operation → report.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::BoxFuture;
use tracing::{Instrument, info_span};

use crate::core::approvals::{ApprovalRequest, Approvals, NewRequest, ReviewDecision, Runner};
use crate::core::args::{self, ArgContext, RawArgs};
use crate::core::audit::{AuditRecord, AuditSink};
use crate::core::catalog::{Catalog, Command, Target};
use crate::core::engine::{ContainerInfo, Engine, EngineError};
use crate::core::error::{PipelineError, UserError};
use crate::core::policy::Policy;
use crate::core::ratelimit::RateLimits;
use crate::core::redact::Redactor;
use crate::core::report::Report;
use crate::core::report::{Block, Severity, code};
use crate::core::settings::Settings;
use crate::core::store::AuditDecision;
use crate::core::store::Store;
use crate::core::threads::Thread;
use crate::core::types::{ChannelId, CommandName, GroupName, RoleId, ServiceName, UserId};
use crate::ops::containers::{self, Targets, help};
use crate::ops::{Request, destructive, diagnose, incidents, review};

/// One command as typed by a person, before anything is checked.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub actor: UserId,
    /// The chat platform's role ids the person carries (Discord roles); empty on the console.
    pub platform_roles: Vec<String>,
    pub channel: ChannelId,
    /// The channel whose grants apply when they are not `channel`'s own: a thread's parent
    /// channel, because a thread has its parent's permissions (as in Discord itself).
    pub grants_from: Option<ChannelId>,
    /// As typed, with or without the leading slash.
    pub command: String,
    pub args: RawArgs,
    pub correlation_id: String,
    /// How it came in, for the audit: `discord`, `console:<os user>`…
    pub via: String,
}

impl Invocation {
    pub fn new(
        actor: UserId,
        channel: ChannelId,
        command: impl Into<String>,
        args: impl Into<RawArgs>,
    ) -> Self {
        Self {
            actor,
            platform_roles: Vec::new(),
            channel,
            grants_from: None,
            command: command.into(),
            args: args.into(),
            correlation_id: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            via: "console".into(),
        }
    }

    /// The channel the permission grants are matched against.
    pub fn grant_channel(&self) -> &ChannelId {
        self.grants_from.as_ref().unwrap_or(&self.channel)
    }

    /// Splits a console line such as `/logs api-1 tail:50` into command and arguments.
    pub fn from_line(actor: UserId, channel: ChannelId, line: &str) -> Self {
        let line = line.trim();
        let (cmd, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        Self::new(actor, channel, cmd, rest.trim())
    }
}

type Connect =
    Box<dyn Fn() -> BoxFuture<'static, Result<Arc<dyn Engine>, EngineError>> + Send + Sync>;

/// The engine, connected on first use so start-up needs no network; a failed connect is retried next time.
pub struct LazyEngine {
    cell: tokio::sync::OnceCell<Arc<dyn Engine>>,
    connect: Connect,
}

impl LazyEngine {
    pub fn new(
        connect: impl Fn() -> BoxFuture<'static, Result<Arc<dyn Engine>, EngineError>>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self {
            cell: tokio::sync::OnceCell::new(),
            connect: Box::new(connect),
        }
    }

    /// An engine that is already there (tests, adapters that connected themselves).
    pub fn ready(engine: Arc<dyn Engine>) -> Self {
        Self {
            cell: tokio::sync::OnceCell::new_with(Some(engine)),
            connect: Box::new(|| {
                Box::pin(async { Err(EngineError::Unavailable("no connector".into())) })
            }),
        }
    }

    pub async fn get(&self) -> Result<Arc<dyn Engine>, EngineError> {
        self.cell
            .get_or_try_init(|| (self.connect)())
            .await
            .cloned()
    }
}

/// Everything the pipeline needs, built once at start-up from validated files.
pub struct Core {
    pub settings: Settings,
    pub catalog: Catalog,
    pub policy: Policy,
    limits: RateLimits,
    engine: LazyEngine,
    audit: Arc<dyn AuditSink>,
    redactor: Redactor,
    /// Without a store, destructive commands stop at the gate with nothing to approve.
    store: Option<Arc<dyn Store>>,
    approvals: Option<Approvals>,
    /// The dependency clients, built on the first diagnosis command so start-up stays fast.
    probes: tokio::sync::OnceCell<Arc<crate::ops::diagnose::probes::Probes>>,
    /// Chat threads for incidents, set by an adapter that has them (Discord); none on the console.
    threads: std::sync::OnceLock<Arc<dyn crate::core::threads::Threads>>,
    metrics: Arc<crate::core::metrics::Metrics>,
    /// Invocations between their start and their audit entry.
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// Set on shutdown: new invocations are refused, running ones finish.
    draining: Arc<std::sync::atomic::AtomicBool>,
}

/// Counts one invocation in flight until dropped.
struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl InFlight {
    fn start(n: &Arc<std::sync::atomic::AtomicUsize>) -> Self {
        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(n.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// What a run ended in: the answer, and what kind of thing happened, so that each chat
/// surface can render it its own way without reading the store or the arguments again.
/// A refusal (denied, limited, invalid, unavailable) is the run's `Err`, with its reason.
#[derive(Debug, Clone)]
pub struct Reply {
    pub kind: ReplyKind,
    pub report: Report,
}

#[derive(Debug, Clone)]
pub enum ReplyKind {
    /// The operation ran (or the question was answered).
    Answer,
    /// Nothing ran: an approval request was made.
    Pending(Box<ApprovalRequest>),
    /// An incident was opened with its thread.
    IncidentOpened { incident: i64, thread: Thread },
    /// An incident was closed from inside its thread, which the surface may now archive.
    IncidentClosed { incident: i64, thread_id: String },
}

impl Reply {
    pub fn answer(report: Report) -> Self {
        Self {
            kind: ReplyKind::Answer,
            report,
        }
    }
}

/// What the pipeline learned on the way, for the audit record.
#[derive(Default)]
struct Trail {
    roles: BTreeSet<RoleId>,
    target: Vec<String>,
}

impl Core {
    pub fn new(
        settings: Settings,
        catalog: Catalog,
        policy: Policy,
        engine: LazyEngine,
        audit: Arc<dyn AuditSink>,
    ) -> Self {
        let l = &settings.limits;
        let limits = RateLimits::new(
            &l.per_user,
            &l.per_user_command,
            &l.per_service_operation,
            catalog
                .iter()
                .filter_map(|c| c.rate_limit.map(|r| (c.name.clone(), r))),
        );
        let mut redactor = Redactor::new().with_secret_names(&settings.redaction.secret_names);
        if let Some(s) = &settings.store_url {
            redactor.learn_secret(s.expose());
        }
        Self {
            settings,
            catalog,
            policy,
            limits,
            engine,
            audit,
            redactor,
            store: None,
            approvals: None,
            probes: tokio::sync::OnceCell::new(),
            threads: std::sync::OnceLock::new(),
            metrics: Arc::default(),
            in_flight: Arc::default(),
            draining: Arc::default(),
        }
    }

    pub fn metrics(&self) -> &Arc<crate::core::metrics::Metrics> {
        &self.metrics
    }

    /// Stops taking new invocations (they are refused with "restarting"); running ones go on.
    pub fn drain(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Invocations that started and have not been audited yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until nothing is in flight, or `deadline` passes; true when nothing is.
    pub async fn settled(&self, deadline: Duration) -> bool {
        let until = Instant::now() + deadline;
        while self.in_flight() > 0 {
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Keeps approval requests (and reads the audit) in `store`; pair it with a
    /// [`crate::core::audit::StoreAudit`] on the same store so one log holds everything.
    pub fn with_store(mut self, store: Arc<dyn Store>) -> Self {
        self.approvals = Some(Approvals::new(store.clone()));
        self.store = Some(store);
        self
    }

    pub fn approvals(&self) -> Option<&Approvals> {
        self.approvals.as_ref()
    }

    /// The store behind approvals and audit, for adapters that keep incident timelines.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.store.as_ref()
    }

    /// Lets `/incident` create chat threads; false when a thread port is already set.
    pub fn set_threads(&self, threads: Arc<dyn crate::core::threads::Threads>) -> bool {
        self.threads.set(threads).is_ok()
    }

    pub fn threads(&self) -> Option<&Arc<dyn crate::core::threads::Threads>> {
        self.threads.get()
    }

    /// Redacts text an adapter stores or posts outside a report (e.g. an incident timeline).
    pub fn redact(&self, text: &str) -> String {
        self.redactor.redact(text)
    }

    /// Runs one invocation to its end and records that end in the audit.
    pub async fn run(&self, inv: Invocation) -> Result<Reply, PipelineError> {
        let span = info_span!("pipeline", correlation_id = %inv.correlation_id, actor = %inv.actor, channel = %inv.channel, command = %inv.command);
        async {
            let started = Instant::now();
            let _counted = InFlight::start(&self.in_flight);
            let mut trail = Trail::default();
            let mut redactor = self.redactor.clone();
            let result = if self.is_draining() {
                Err(UserError::Unavailable(
                    "the bot is restarting and takes no new commands; try again in a moment"
                        .into(),
                )
                .into())
            } else {
                self.stages(&inv, &mut trail, &mut redactor).await
            };
            let (decision, outcome) = match &result {
                Ok(r) if matches!(r.kind, ReplyKind::Pending(_)) => {
                    (AuditDecision::Pending, r.report.title.clone())
                }
                Ok(r) => (AuditDecision::Ran, r.report.title.clone()),
                Err(PipelineError::User(u)) => (u.decision(), u.to_string()),
                Err(e @ PipelineError::Internal(_)) => (AuditDecision::Failed, e.to_string()),
            };
            let record =
                audit_record(&inv, &trail, decision, &outcome, started.elapsed(), &redactor);
            // Known command names only: typed text must not become a label (or leak a secret).
            let name = self
                .catalog
                .get(inv.command.trim_start_matches('/'))
                .map_or("unknown", |c| c.name.as_str());
            let audit_started = Instant::now();
            let recorded = self.audit.record(record).await;
            self.metrics.stage("audit", audit_started.elapsed());
            self.metrics
                .command(name, decision.as_str(), started.elapsed());
            let result = match recorded {
                Ok(None) => result,
                Ok(Some(notice)) => with_notice(result, notice),
                // Nothing is answered unrecorded: the store and the spill file both failed.
                Err(e) => Err(PipelineError::internal(e.context(
                    "the audit record of this command could not be kept anywhere, so its reply is withheld",
                ))),
            };
            match result {
                Ok(mut r) => {
                    r.report.redact(&redactor);
                    Ok(r)
                }
                Err(PipelineError::User(u)) => Err(PipelineError::User(u.redacted(&redactor))),
                Err(e) => Err(e),
            }
        }
        .instrument(span)
        .await
    }

    async fn stages(
        &self,
        inv: &Invocation,
        trail: &mut Trail,
        redactor: &mut Redactor,
    ) -> Result<Reply, PipelineError> {
        trail.roles = self.policy.roles_of(&inv.actor, &inv.platform_roles);
        let cmd = info_span!("catalog").in_scope(|| self.lookup(&inv.command))?;
        info_span!("policy").in_scope(|| {
            if self
                .policy
                .may_run(&trail.roles, cmd.name.as_str(), inv.grant_channel())
            {
                Ok(())
            } else {
                Err(self.denied(inv, &trail.roles, cmd, None))
            }
        })?;

        // Shape, types and required options are checked before Docker is asked anything; only
        // commands that name services (or act on all of them) then need the live service list.
        // Group commands know their services from the settings.
        let parse = |known: Option<&BTreeSet<ServiceName>>| {
            info_span!("args").in_scope(|| {
                args::parse(
                    cmd,
                    inv.args.clone(),
                    &ArgContext {
                        max_arg_len: self.settings.limits.max_arg_len,
                        known_services: known,
                        groups: &self.settings.groups,
                    },
                )
            })
        };
        let mut args = parse(None)?;
        let mut request = Request::parse(cmd, &args)?;
        request.redact_free_text(redactor);
        let mut containers = None;
        let mut known = None;
        if needs_service_list(cmd, &request) {
            let cs = self.containers().await?;
            let k = service_set(&cs);
            args = parse(Some(&k))?;
            containers = Some(cs);
            known = Some(k);
        }

        let (services, explicit) =
            target_services(cmd, &request, &args, known.as_ref(), &self.settings.groups);
        trail.target = if services.is_empty() {
            vec!["project".into()]
        } else {
            services.iter().map(|s| s.to_string()).collect()
        };

        info_span!("policy_services").in_scope(|| {
            let refused: Vec<&ServiceName> = services
                .iter()
                .filter(|s| {
                    !self
                        .policy
                        .may_run_on(&trail.roles, cmd.name.as_str(), inv.grant_channel(), s)
                })
                .collect();
            if refused.is_empty() {
                Ok(())
            } else {
                Err(self.denied(inv, &trail.roles, cmd, Some(&refused)))
            }
        })?;

        info_span!("rate_limit").in_scope(|| {
            let mutations: Vec<(ServiceName, &'static str)> = if cmd.operation.is_mutation() {
                services
                    .iter()
                    .map(|s| (s.clone(), cmd.operation.as_str()))
                    .collect()
            } else {
                Vec::new()
            };
            self.limits.check(&inv.actor, &cmd.name, &mutations)
        })?;

        match &request {
            Request::Gated(gated) => {
                // A span guard is not Send; the gate awaits, so its futures carry the span instead.
                let gate = info_span!("approval_gate");
                self.request_approval(
                    inv, trail, cmd, gated, &args, &services, containers, redactor,
                )
                .instrument(gate)
                .await
            }
            Request::Help { command } => Ok(Reply::answer(help(
                &self.catalog,
                &self.policy,
                &trail.roles,
                inv.grant_channel(),
                command.as_deref(),
            ))),
            Request::Review(r) => self.review(r, &trail.roles, &inv.actor).await,
            Request::Incident(action) => {
                let who = crate::ops::incidents::Who {
                    actor: &inv.actor,
                    channel: &inv.channel,
                };
                let outcome = crate::ops::incidents::run(
                    self.threads().map(|t| t.as_ref()),
                    self.store().map(|s| s.as_ref()),
                    action,
                    &who,
                )
                .await?;
                Ok(match outcome {
                    incidents::Outcome::Opened {
                        report,
                        incident,
                        thread,
                    } => Reply {
                        kind: ReplyKind::IncidentOpened { incident, thread },
                        report,
                    },
                    incidents::Outcome::Closed {
                        report,
                        incident,
                        thread_id,
                    } => Reply {
                        kind: ReplyKind::IncidentClosed {
                            incident,
                            thread_id,
                        },
                        report,
                    },
                })
            }
            Request::Diagnosis(d) => {
                let op = self
                    .diagnose(d)
                    .instrument(info_span!("operation", op = %cmd.operation));
                self.within_deadline(cmd, self.settings.limits.operation_timeout, op)
                    .await
                    .map(Reply::answer)
            }
            Request::Containers(c) => {
                let targets = if c.needs_containers() {
                    let cs = match containers.take() {
                        Some(cs) => cs,
                        None => self.containers().await?,
                    };
                    split_targets(cs, explicit.then_some(services.as_slice()))?
                } else {
                    Targets::default()
                };
                let limits = &self.settings.limits;
                let mut deadline = limits.operation_timeout;
                if let containers::Request::Mutate { timeout, .. } = c {
                    deadline = deadline.saturating_add(timeout.unwrap_or(limits.stop_timeout));
                }
                let cx = containers::Context {
                    project: &self.settings.project,
                    stop_timeout: limits.stop_timeout,
                    log_line_cap: limits.log_line_cap,
                };
                if matches!(c, containers::Request::Mutate { .. }) {
                    self.record_start(inv, trail, redactor).await?;
                }
                let op = async {
                    let engine = self.engine.get().await?;
                    containers::run(c, engine.as_ref(), &targets, &cx, redactor).await
                }
                .instrument(info_span!("operation", op = %cmd.operation));
                self.within_deadline(cmd, deadline, op)
                    .await
                    .map(Reply::answer)
            }
        }
    }

    /// Records that a mutation is about to start; it does not start unless that entry is kept
    /// (in the store or the spill file), so a crash mid-operation still leaves its trace.
    async fn record_start(
        &self,
        inv: &Invocation,
        trail: &Trail,
        redactor: &Redactor,
    ) -> Result<(), PipelineError> {
        let record = audit_record(
            inv,
            trail,
            AuditDecision::Executing,
            &format!(
                "starting {} on {}",
                inv.command.trim_start_matches('/'),
                trail.target.join(", ")
            ),
            Duration::ZERO,
            redactor,
        );
        self.audit.record(record).await.map(|_| ()).map_err(|e| {
            PipelineError::internal(e.context(
                "not started: the audit entry saying it starts could not be kept anywhere (store and spill file)",
            ))
        })
    }

    /// Runs `op` within `deadline`; past it the person is told, and a mutation may still end.
    async fn within_deadline(
        &self,
        cmd: &Command,
        deadline: std::time::Duration,
        op: impl std::future::Future<Output = Result<Report, PipelineError>>,
    ) -> Result<Report, PipelineError> {
        match tokio::time::timeout(deadline, op).await {
            Ok(result) => result,
            Err(_) => {
                let tail = if cmd.operation.is_mutation() {
                    " It may still complete: check with `/status` before trying again."
                } else {
                    ""
                };
                Err(UserError::Unavailable(format!(
                    "`/{}` did not finish within {}.{tail}",
                    cmd.name,
                    crate::core::types::format_duration(deadline)
                ))
                .into())
            }
        }
    }

    /// The approval gate: binds the request to what it will touch and stores it. Nothing runs.
    #[allow(clippy::too_many_arguments)]
    async fn request_approval(
        &self,
        inv: &Invocation,
        trail: &Trail,
        cmd: &Command,
        gated: &destructive::Request,
        args: &args::Args,
        services: &[ServiceName],
        containers: Option<Vec<ContainerInfo>>,
        redactor: &Redactor,
    ) -> Result<Reply, PipelineError> {
        let Some(a) = cmd.approval.as_ref() else {
            // The catalog refuses such files at start-up; never run one unguarded anyway.
            return Err(PipelineError::internal(anyhow::anyhow!(
                "destructive command /{} has no approval rule",
                cmd.name
            )));
        };
        let Some(approvals) = &self.approvals else {
            return Err(UserError::NeedsApproval {
                command: cmd.name.to_string(),
                approvers: a.approvers.iter().map(|r| r.to_string()).collect(),
                min_approvals: a.min_approvals,
                ttl: a.ttl,
            }
            .into());
        };
        let all = match containers {
            Some(cs) => cs,
            None => self.containers().await?,
        };
        let engine = self.engine.get().await?;
        let bound = destructive::bind_live(
            engine.as_ref(),
            cmd,
            gated,
            args,
            services,
            &all,
            &self.settings.platform,
        )
        .await?;
        let req = approvals
            .create(
                NewRequest {
                    operation: bound.op.clone(),
                    args_display: bounded(&redactor.redact(&inv.args.display()), 2048),
                    requester: inv.actor.to_string(),
                    requester_roles: trail.roles.iter().map(|r| r.to_string()).collect(),
                    approver_roles: a.approvers.iter().map(|r| r.to_string()).collect(),
                    min_approvals: a.min_approvals,
                    ttl: a.ttl,
                    channel: inv.channel.to_string(),
                    correlation_id: inv.correlation_id.clone(),
                },
                Utc::now(),
            )
            .await?;
        Ok(Reply {
            report: pending_report(&req, a.min_approvals),
            kind: ReplyKind::Pending(Box::new(req)),
        })
    }

    /// A diagnosis command, with the dependency clients built on first use.
    async fn diagnose(&self, req: &diagnose::Request) -> Result<Report, PipelineError> {
        let engine = self.engine.get().await?;
        let probes = self
            .probes
            .get_or_try_init(|| async {
                crate::ops::diagnose::probes::Probes::new(
                    self.settings.platform.clone(),
                    &self.settings.project,
                )
                .map(Arc::new)
                .map_err(|e| PipelineError::internal(anyhow::anyhow!("probe clients: {e}")))
            })
            .await?;
        diagnose::run(req, probes, engine).await
    }

    /// The live project's services (for chat autocomplete), sorted.
    pub async fn service_names(&self) -> Result<Vec<ServiceName>, PipelineError> {
        Ok(service_set(&self.containers().await?).into_iter().collect())
    }

    async fn containers(&self) -> Result<Vec<ContainerInfo>, PipelineError> {
        let engine = self
            .engine
            .get()
            .instrument(info_span!("engine_connect"))
            .await?;
        let deadline = self.settings.limits.operation_timeout;
        let listed = tokio::time::timeout(deadline, engine.containers())
            .instrument(info_span!("containers"))
            .await
            .map_err(|_| EngineError::Timeout(deadline))?;
        Ok(listed?)
    }

    fn lookup(&self, typed: &str) -> Result<&Command, PipelineError> {
        let name = typed.trim_start_matches('/');
        let unknown = || {
            UserError::NotFound(format!(
                "unknown command {}; run `/help` to see the commands you may use",
                code(&format!("/{}", name.chars().take(40).collect::<String>()))
            ))
        };
        let name = CommandName::parse(name).map_err(|_| unknown())?;
        Ok(self.catalog.get(name.as_str()).ok_or_else(unknown)?)
    }

    fn denied(
        &self,
        inv: &Invocation,
        roles: &BTreeSet<RoleId>,
        cmd: &Command,
        services: Option<&[&ServiceName]>,
    ) -> PipelineError {
        UserError::Denied {
            actor: inv.actor.clone(),
            roles: roles.iter().cloned().collect(),
            command: cmd.name.clone(),
            services: services
                .unwrap_or_default()
                .iter()
                .map(|s| (*s).clone())
                .collect(),
            channel: inv.channel.clone(),
        }
        .into()
    }
}

impl Core {
    fn store_or_refuse(&self) -> Result<(&Approvals, &Arc<dyn Store>), PipelineError> {
        match (&self.approvals, &self.store) {
            (Some(a), Some(s)) => Ok((a, s)),
            _ => Err(UserError::Unavailable(
                "this bot runs without a store, so there are no approval requests or audit log to read"
                    .into(),
            )
            .into()),
        }
    }

    /// The approval and audit commands; an approval that completes its quorum runs here.
    async fn review(
        &self,
        req: &review::Request,
        roles: &BTreeSet<RoleId>,
        actor: &UserId,
    ) -> Result<Reply, PipelineError> {
        let (a, store) = self.store_or_refuse()?;
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        match review::run(req, a, store.as_ref(), actor.as_str(), &roles).await? {
            review::Reviewed::Answer(report) => Ok(Reply::answer(report)),
            review::Reviewed::ReadyToRun(id) => {
                let runner = Runner {
                    actor: actor.as_str(),
                    roles: &roles,
                };
                self.execute_approved(&id, &runner).await.map(Reply::answer)
            }
        }
    }

    /// Claims the request (one caller ever wins), binds it again, checks the binding against
    /// the approved digest, runs it and records how it ended.
    pub async fn execute_approved(
        &self,
        id: &str,
        runner: &Runner<'_>,
    ) -> Result<Report, PipelineError> {
        let (a, _) = self.store_or_refuse()?;
        if !a.claim_for_execution(id, runner, Utc::now()).await? {
            let state = a
                .get(id)
                .await?
                .map(|r| r.state.to_string())
                .unwrap_or_else(|| "unknown".into());
            return Err(UserError::Refused(format!(
                "Request {id} was approved but is **{state}**: it runs once, and not from here."
            ))
            .into());
        }
        let started = Instant::now();
        let result = match a.get(id).await? {
            Some(req) => {
                let run = tokio::time::timeout(destructive::DEADLINE, self.run_approved(&req));
                match with_lease_renewed(a, id, run).await {
                    Ok(r) => r,
                    Err(_) => Err(UserError::Unavailable(format!(
                        "the operation did not finish within {}; check `/status` before anything else",
                        crate::core::types::format_duration(destructive::DEADLINE)
                    ))
                    .into()),
                }
            }
            None => Err(PipelineError::internal(anyhow::anyhow!(
                "request {id} vanished after its claim"
            ))),
        };
        let summary = match &result {
            Ok(r) => Ok(r.title.clone()),
            Err(PipelineError::User(u)) => Err(self.redactor.redact(&u.to_string())),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = a
            .finish(id, runner, summary, started.elapsed(), Utc::now())
            .await
        {
            tracing::error!(
                approval = id,
                "could not record the end of an approved run: {e:#}"
            );
        }
        match result {
            Ok(mut r) => {
                r.title = format!("Approved request {id} ran: {}", r.title);
                Ok(r)
            }
            Err(PipelineError::User(u)) => Err(PipelineError::User(UserError::ApprovedRunFailed {
                id: id.to_owned(),
                cause: Box::new(u),
            })),
            Err(e) => Err(e),
        }
    }

    /// Permissions change while a request waits: at execution the requester must still hold a
    /// role that grants the command on its services, and every approver a role that may
    /// approve it. Roles bound to chat roles are taken as held (only the chat platform can
    /// tell, and the approver who clicks has just been checked with theirs).
    fn reauthorize(
        &self,
        req: &ApprovalRequest,
        cmd: &Command,
        services: &[ServiceName],
    ) -> Result<(), PipelineError> {
        let refuse = |why: String| -> PipelineError {
            UserError::Refused(format!("re-checked before running: {why}; nothing ran")).into()
        };
        let requester = UserId::parse(&req.requester)
            .map_err(|e| PipelineError::internal(anyhow::anyhow!("stored requester: {e}")))?;
        let held: BTreeSet<RoleId> = req
            .requester_roles
            .iter()
            .filter_map(|r| RoleId::parse(r).ok())
            .filter(|r| self.policy.still_holds(&requester, r))
            .collect();
        if !self
            .policy
            .may_run_somewhere(&held, cmd.name.as_str(), services)
        {
            return Err(refuse(format!(
                "{} no longer holds a role that grants {}",
                code(requester.as_str()),
                code(&format!("/{}", cmd.name))
            )));
        }
        let approver_roles = cmd.approval.as_ref().map_or(&[][..], |a| &a.approvers[..]);
        for r in req
            .reviews
            .iter()
            .filter(|r| r.decision == ReviewDecision::Approve)
        {
            let still = UserId::parse(&r.reviewer).is_ok_and(|u| {
                approver_roles
                    .iter()
                    .any(|role| self.policy.still_holds(&u, role))
            });
            if !still {
                return Err(refuse(format!(
                    "approver {} no longer holds an approver role for {}",
                    code(&r.reviewer),
                    code(&format!("/{}", cmd.name))
                )));
            }
        }
        Ok(())
    }

    async fn run_approved(&self, req: &ApprovalRequest) -> Result<Report, PipelineError> {
        let cmd = self.catalog.get(&req.command).ok_or_else(|| {
            UserError::NotFound(format!(
                "command `/{}` is no longer in the catalog",
                req.command
            ))
        })?;
        let all = self.containers().await?;
        let known = service_set(&all);
        let args = args::parse(
            cmd,
            req.args.as_str(),
            &ArgContext {
                max_arg_len: self.settings.limits.max_arg_len,
                known_services: Some(&known),
                groups: &self.settings.groups,
            },
        )?;
        let Request::Gated(gated) = Request::parse(cmd, &args)? else {
            return Err(UserError::Refused(format!(
                "`/{}` no longer needs approval, so request {} is not run from here",
                cmd.name, req.id
            ))
            .into());
        };
        let (services, _) = target_services(
            cmd,
            &Request::Gated(gated.clone()),
            &args,
            Some(&known),
            &self.settings.groups,
        );
        self.reauthorize(req, cmd, &services)?;
        let engine = self.engine.get().await?;
        let bound = destructive::bind_live(
            engine.as_ref(),
            cmd,
            &gated,
            &args,
            &services,
            &all,
            &self.settings.platform,
        )
        .await
        .map_err(|e| match e {
            // A dependency that does not answer is not a changed target.
            PipelineError::User(u)
                if !matches!(
                    u,
                    UserError::Unavailable(_) | UserError::EngineDown(_) | UserError::StoreDown
                ) =>
            {
                PipelineError::User(UserError::Refused(format!(
                    "the target changed since approval: {u}"
                )))
            }
            e => e,
        })?;
        if !req.matches(&bound.op) {
            return Err(UserError::Refused(destructive::explain_change(
                &req.targets,
                &bound.op.targets,
            ))
            .into());
        }
        destructive::execute(
            engine.as_ref(),
            &gated,
            &bound,
            &self.settings.platform,
            self.settings.limits.stop_timeout,
        )
        .await
    }
}

/// Runs `op` while renewing this replica's lease on request `id` every quarter lease, so
/// other replicas do not take a long operation for an interrupted one.
async fn with_lease_renewed<T>(
    a: &Approvals,
    id: &str,
    op: impl std::future::Future<Output = T>,
) -> T {
    let every = a.lease() / 4;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tokio::pin!(op);
    loop {
        tokio::select! {
            out = &mut op => return out,
            _ = tick.tick() => match a.renew_lease(id, Utc::now()).await {
                Ok(true) => {}
                Ok(false) => tracing::error!(approval = id, "lease lost while executing"),
                Err(e) => tracing::warn!(approval = id, "lease not renewed: {e:#}"),
            },
        }
    }
}

/// Adds an audit notice to the reply, whatever its kind.
/// The audit record of one invocation, redacted: arguments, outcome and the command name too
/// (a token pasted where a command name goes is still a token).
fn audit_record(
    inv: &Invocation,
    trail: &Trail,
    decision: AuditDecision,
    outcome: &str,
    duration: Duration,
    redactor: &Redactor,
) -> AuditRecord {
    AuditRecord {
        at: Utc::now(),
        correlation_id: inv.correlation_id.clone(),
        actor: inv.actor.clone(),
        roles: trail.roles.iter().cloned().collect(),
        channel: inv.channel.clone(),
        command: redactor.redact(&bounded(inv.command.trim_start_matches('/'), 64)),
        args: bounded(&redactor.redact(&inv.args.display()), 2048),
        target: trail.target.clone(),
        decision,
        result: redactor.redact(outcome),
        duration,
        via: inv.via.clone(),
    }
}

fn with_notice(
    result: Result<Reply, PipelineError>,
    notice: String,
) -> Result<Reply, PipelineError> {
    match result {
        Ok(mut r) => {
            r.report.push(Block::Text(notice));
            Ok(r)
        }
        Err(PipelineError::User(u)) => Err(PipelineError::User(u.with_note(&notice))),
        Err(e) => {
            tracing::warn!("{notice}");
            Err(e)
        }
    }
}

/// Acts on containers of the project (rather than the Engine as a whole, or nothing).
fn needs_containers(cmd: &Command, req: &Request) -> bool {
    let on_containers = match req {
        Request::Containers(c) => c.needs_containers(),
        Request::Gated(_) => true,
        _ => false,
    };
    on_containers && !matches!(cmd.target, Target::None)
}

/// What the requester sees: what will run, on what, bound to which digest, and how to approve.
fn pending_report(req: &ApprovalRequest, needed: u32) -> Report {
    let what = code(format!("/{} {}", req.command, req.args).trim_end());
    Report::new(
        format!("Pending approval {}: {what}", req.id),
        Severity::Warning,
    )
    .with(Block::Fields(vec![
        ("request".into(), req.id.clone()),
        ("what".into(), what.clone()),
        ("targets".into(), req.targets.join(", ")),
        ("digest".into(), req.digest.clone()),
        ("requester".into(), req.requester.clone()),
        ("expires".into(), req.expires_at.to_rfc3339()),
    ]))
    .with(Block::Text(format!(
        "Nothing has run. {needed} approval(s) needed from someone else with the role {}: `/approve {}` (or `/deny {} reason:…`); the requester can `/cancel {}`.",
        req.approver_roles
            .iter()
            .map(|r| format!("`{r}`"))
            .collect::<Vec<_>>()
            .join(" or "),
        req.id,
        req.id,
        req.id
    )))
}

/// Keeps audit fields bounded whatever was typed, marking (never hiding) the cut.
fn bounded(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_owned();
    }
    format!(
        "{} ({n} characters in all)",
        crate::core::types::bounded(s, max)
    )
}

/// Commands whose arguments or targets need the project's live service list.
fn needs_service_list(cmd: &Command, req: &Request) -> bool {
    needs_containers(cmd, req) && matches!(cmd.target, Target::ServiceOption(_) | Target::Project)
}

fn service_set(cs: &[ContainerInfo]) -> BTreeSet<ServiceName> {
    cs.iter()
        .filter_map(|c| ServiceName::parse(&c.service).ok())
        .collect()
}

/// The services a command acts on (what permissions and rate limits apply to), and whether
/// they were named (by the person or a group) rather than "every service of the project".
fn target_services(
    cmd: &Command,
    req: &Request,
    args: &args::Args,
    known: Option<&BTreeSet<ServiceName>>,
    groups: &BTreeMap<GroupName, Vec<ServiceName>>,
) -> (Vec<ServiceName>, bool) {
    let named = match &cmd.target {
        Target::ServiceOption(o) => args.services(o).map(<[_]>::to_vec),
        Target::Group(g) => Some(groups.get(g).cloned().unwrap_or_default()),
        Target::GroupOption(o) => Some(
            args.group(o)
                .and_then(|g| groups.get(g))
                .cloned()
                .unwrap_or_default(),
        ),
        Target::Project | Target::None => None,
    };
    match named {
        Some(s) => (s, true),
        None if needs_containers(cmd, req) => (
            known
                .map(|k| k.iter().cloned().collect())
                .unwrap_or_default(),
            false,
        ),
        None => (Vec::new(), false),
    }
}

/// Picks the containers of the named services (all when `named` is None) and lists the
/// services that have none.
fn split_targets(
    containers: Vec<ContainerInfo>,
    named: Option<&[ServiceName]>,
) -> Result<Targets, PipelineError> {
    let Some(wanted) = named else {
        return Ok(Targets {
            containers,
            missing: Vec::new(),
        });
    };
    let present: Vec<ContainerInfo> = containers
        .into_iter()
        .filter(|c| wanted.iter().any(|w| w.as_str() == c.service))
        .collect();
    let missing: Vec<ServiceName> = wanted
        .iter()
        .filter(|w| !present.iter().any(|c| c.service == w.as_str()))
        .cloned()
        .collect();
    if present.is_empty() {
        return Err(UserError::NotFound(format!(
            "no container of {} exists in the project; see `/status`",
            wanted
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into());
    }
    Ok(Targets {
        containers: present,
        missing,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::core::approvals::Runner;

    const RUNNER: Runner<'static> = Runner {
        actor: "bob",
        roles: &[],
    };
    use crate::core::audit::MemoryAudit;
    use crate::core::report::{Block, render_markdown};
    use crate::infra::fake::FakeEngine;

    fn repo(p: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
    }

    fn core_with(fake: Arc<FakeEngine>) -> (Core, Arc<MemoryAudit>) {
        let audit = Arc::new(MemoryAudit::new());
        (core_with_audit(fake, audit.clone()), audit)
    }

    fn core_with_audit(
        fake: Arc<FakeEngine>,
        audit: Arc<dyn crate::core::audit::AuditSink>,
    ) -> Core {
        let settings = Settings::parse(
            Path::new("default"),
            crate::core::settings::DEFAULT_SETTINGS,
        )
        .unwrap();
        let groups = settings.groups.keys().cloned().collect();
        let catalog = Catalog::load_dir(&repo("commands"), &groups).unwrap();
        let policy = Policy::load_dir(&repo("permissions")).unwrap();
        policy.check_catalog(&catalog).unwrap();
        Core::new(settings, catalog, policy, LazyEngine::ready(fake), audit)
    }

    /// An audit that can keep nothing: the store and the spill file both failed.
    struct NowhereAudit;

    #[async_trait::async_trait]
    impl crate::core::audit::AuditSink for NowhereAudit {
        async fn record(&self, _: AuditRecord) -> anyhow::Result<Option<String>> {
            anyhow::bail!("the store refused it and the spill file is on a full disk")
        }
    }

    #[tokio::test]
    async fn a_restart_does_not_start_when_its_executing_entry_can_be_kept_nowhere() {
        let fake = Arc::new(FakeEngine::riftwing());
        let core = core_with_audit(fake.clone(), Arc::new(NowhereAudit));
        let e = core.run(inv("alice", "/restart api-1")).await.unwrap_err();
        assert!(matches!(e, PipelineError::Internal(_)), "{e:?}");
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    }

    #[tokio::test]
    async fn a_restart_is_recorded_as_executing_before_it_starts_and_as_ran_after() {
        let fake = Arc::new(FakeEngine::riftwing());
        let (core, audit) = core_with(fake.clone());
        let mut i = inv("alice", "/restart api-1");
        i.via = "console:root".into();
        core.run(i).await.unwrap();
        let recs = audit.records();
        assert_eq!(
            recs.iter().map(|r| r.decision).collect::<Vec<_>>(),
            [AuditDecision::Executing, AuditDecision::Ran]
        );
        assert!(
            recs[0].result.starts_with("starting restart on api-1"),
            "{}",
            recs[0].result
        );
        assert!(recs.iter().all(|r| r.via == "console:root"));
    }

    #[tokio::test]
    async fn secrets_in_a_deny_reason_or_a_command_name_are_redacted_before_storage() {
        let (core, store) = core_with_store(Arc::new(FakeEngine::riftwing())).await;
        let token = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
        let id = pending_id(&core.run(inv("alice", "/backup")).await.unwrap().report);
        core.run(inv(
            "carol",
            &format!("/deny {id} reason:\"password=hunter2secret and {token}\""),
        ))
        .await
        .unwrap();
        let _ = core.run(inv("carol", &format!("/{token}"))).await;
        let req = store.get_approval(&id).await.unwrap().unwrap();
        let stored = format!(
            "{:?} {:?}",
            req,
            store
                .query_audit(&crate::core::store::AuditQuery::default())
                .await
                .unwrap()
        );
        assert!(stored.contains("denied by carol"), "{stored}");
        for secret in ["hunter2secret", "abcdefghijklmnopqrstuvwxyz0123456789"] {
            assert!(!stored.contains(secret), "{secret} stored: {stored}");
        }
        let reviews = format!("{:?}", req.reviews);
        assert!(
            !reviews.contains("hunter2secret") && reviews.contains("carol"),
            "{reviews}"
        );
    }

    fn inv(who: &str, line: &str) -> Invocation {
        Invocation::from_line(
            UserId::parse(who).unwrap(),
            ChannelId::parse("console").unwrap(),
            line,
        )
    }

    #[tokio::test]
    async fn viewer_gets_status_and_the_run_is_audited() {
        let (core, audit) = core_with(Arc::new(FakeEngine::riftwing()));
        let r = core.run(inv("dave", "/status")).await.unwrap().report;
        assert!(
            r.title.starts_with("Status of riftwing: 11/11 running"),
            "{}",
            r.title
        );
        let rec = audit.records().pop().unwrap();
        assert_eq!(rec.decision, AuditDecision::Ran);
        assert_eq!(rec.roles, [RoleId::parse("viewer").unwrap()]);
        assert_eq!(rec.command, "status");
        assert_eq!(rec.target.len(), 11);
    }

    #[tokio::test]
    async fn unknown_person_is_denied_without_touching_docker() {
        let fake = Arc::new(FakeEngine::riftwing());
        fake.set_unavailable(true);
        let (core, audit) = core_with(fake.clone());
        let e = core.run(inv("mallory", "/status")).await.unwrap_err();
        assert!(
            matches!(&e, PipelineError::User(UserError::Denied { roles, .. }) if roles.is_empty()),
            "{e:?}"
        );
        assert_eq!(audit.records()[0].decision, AuditDecision::Denied);
    }

    #[tokio::test]
    async fn viewer_may_not_restart() {
        let fake = Arc::new(FakeEngine::riftwing());
        let (core, audit) = core_with(fake.clone());
        let e = core.run(inv("dave", "/restart api-1")).await.unwrap_err();
        assert!(matches!(e, PipelineError::User(UserError::Denied { .. })));
        assert!(fake.calls().is_empty());
        assert_eq!(audit.records()[0].decision, AuditDecision::Denied);
    }

    #[tokio::test]
    async fn operator_restarts_an_app_service_but_not_postgres() {
        let fake = Arc::new(FakeEngine::riftwing());
        let (core, audit) = core_with(fake.clone());
        core.run(inv("alice", "/restart service:api-1"))
            .await
            .unwrap();
        assert_eq!(fake.calls(), ["restart riftwing-api-1-1"]);
        let e = core
            .run(inv("alice", "/restart postgres"))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, PipelineError::User(UserError::Denied { services, .. }) if services.iter().any(|s| s.as_str() == "postgres")),
            "{e:?}"
        );
        assert_eq!(fake.calls().len(), 1);
        let decisions: Vec<AuditDecision> = audit.records().iter().map(|r| r.decision).collect();
        assert_eq!(
            decisions,
            [
                AuditDecision::Executing,
                AuditDecision::Ran,
                AuditDecision::Denied
            ]
        );
    }

    #[tokio::test]
    async fn unknown_service_is_refused_with_the_list_of_services() {
        let (core, audit) = core_with(Arc::new(FakeEngine::riftwing()));
        let md = refusal(&core, "dave", "/logs service:api-9").await;
        assert!(
            md.contains("unknown service `api-9`; known: `api-1`, `api-2`, `console`"),
            "{md}"
        );
        assert_eq!(audit.records()[0].decision, AuditDecision::Invalid);
    }

    #[tokio::test]
    async fn rate_limit_per_service_and_operation_stops_a_restart_storm() {
        let fake = Arc::new(FakeEngine::riftwing());
        let (core, audit) = core_with(fake.clone());
        // Default: 3 restarts of one service per 10 minutes, whoever asks.
        for who in ["alice", "bob", "erin"] {
            core.run(inv(who, "/restart api-1")).await.unwrap();
        }
        let e = core.run(inv("alice", "/restart api-1")).await.unwrap_err();
        assert!(
            matches!(&e, PipelineError::User(UserError::RateLimited { retry_after, .. }) if *retry_after > Duration::ZERO),
            "{e:?}"
        );
        assert!(e.markdown().contains("Try again in"), "{}", e.markdown());
        assert_eq!(fake.calls().len(), 3);
        assert_eq!(
            audit.records().last().unwrap().decision,
            AuditDecision::Limited
        );
        // Another service still restarts.
        core.run(inv("alice", "/restart api-2")).await.unwrap();
    }

    #[tokio::test]
    async fn destructive_command_stops_at_the_gate_and_is_audited_as_pending() {
        let fake = Arc::new(FakeEngine::riftwing());
        let (core, audit) = core_with(fake.clone());
        let e = core.run(inv("erin", "/restart-infra")).await.unwrap_err();
        assert!(
            matches!(
                &e,
                PipelineError::User(UserError::NeedsApproval {
                    min_approvals: 1,
                    ..
                })
            ),
            "{e:?}"
        );
        assert!(e.markdown().contains("`approver`"));
        assert!(fake.calls().is_empty(), "nothing may run before approval");
        let rec = audit.records().pop().unwrap();
        assert_eq!(rec.decision, AuditDecision::Pending);
        assert_eq!(rec.target, ["postgres", "temporal", "redis"]);
    }

    #[tokio::test]
    async fn a_missing_required_option_is_reported_without_docker() {
        let fake = Arc::new(FakeEngine::riftwing());
        fake.set_unavailable(true);
        let (core, _) = core_with(fake);
        let e = core.run(inv("dave", "/logs tail:5")).await.unwrap_err();
        assert!(
            matches!(&e, PipelineError::User(UserError::InvalidArgument(m)) if m.contains("needs `service`")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn a_hung_engine_costs_the_deadline_not_the_bot() {
        let fake = Arc::new(FakeEngine::riftwing().with_delay(Duration::from_secs(30)));
        let (mut core, audit) = core_with(fake);
        core.settings.limits.operation_timeout = Duration::from_millis(200);
        let started = std::time::Instant::now();
        let e = core.run(inv("dave", "/stats api-1")).await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        assert!(
            matches!(&e, PipelineError::User(UserError::Unavailable(m)) if m.contains("did not finish within")),
            "{e:?}"
        );
        assert_eq!(audit.records()[0].decision, AuditDecision::Failed);
    }

    #[tokio::test]
    async fn a_command_added_as_a_file_runs_through_the_pipeline() {
        let dir = tempfile::tempdir().unwrap();
        for f in std::fs::read_dir(repo("commands")).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
        }
        std::fs::write(
            dir.path().join("errors.toml"),
            "name = \"errors\"\ndescription = \"Recent error lines of a service\"\noperation = \"logs\"\nparams = { grep = \"error\", tail = 500 }\ntarget = { kind = \"service\", option = \"service\" }\n\n[[options]]\nname = \"service\"\ndescription = \"Service\"\ntype = \"service\"\nrequired = true\n",
        )
        .unwrap();
        let mut settings = Settings::parse(
            Path::new("default"),
            crate::core::settings::DEFAULT_SETTINGS,
        )
        .unwrap();
        settings.commands_dir = dir.path().to_owned();
        let groups = settings.groups.keys().cloned().collect();
        let catalog = Catalog::load_dir(&settings.commands_dir, &groups).unwrap();
        let policy = Policy::load_dir(&repo("permissions")).unwrap();
        policy.check_catalog(&catalog).unwrap();
        let fake = Arc::new(FakeEngine::riftwing());
        fake.set_logs(
            "worker-1",
            &[(1, "ok"), (2, "ERROR: activity failed"), (3, "ok")],
        );
        let core = Core::new(
            settings,
            catalog,
            policy,
            LazyEngine::ready(fake),
            Arc::new(MemoryAudit::new()),
        );
        let r = core
            .run(inv("erin", "/errors worker-1"))
            .await
            .unwrap()
            .report;
        let text = r.all_text();
        assert!(
            text.contains("ERROR: activity failed") && text.contains("1 of 3 matched `error`"),
            "{text}"
        );
        // The viewer grant lists commands by name, so the new command is denied to viewers.
        assert!(matches!(
            core.run(inv("dave", "/errors worker-1")).await,
            Err(PipelineError::User(UserError::Denied { .. }))
        ));
    }

    async fn core_with_store(fake: Arc<FakeEngine>) -> (Core, Arc<dyn crate::core::store::Store>) {
        let (core, _) = core_with(fake);
        let store: Arc<dyn crate::core::store::Store> = Arc::new(
            crate::infra::store::SqliteStore::open(":memory:")
                .await
                .unwrap(),
        );
        let core = Core {
            audit: Arc::new(crate::core::audit::StoreAudit::new(store.clone())),
            ..core
        }
        .with_store(store.clone());
        (core, store)
    }

    /// The same store and engine under another team file (people gained or lost roles).
    fn with_team(core: &Core, team: &str) -> Core {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("team.toml"), team).unwrap();
        let policy = Policy::load_dir(dir.path()).unwrap();
        let (fresh, _) = core_with(Arc::new(FakeEngine::new()));
        Core {
            policy,
            engine: LazyEngine::ready(core.engine.cell.get().unwrap().clone()),
            audit: core.audit.clone(),
            ..fresh
        }
        .with_store(core.store.clone().unwrap())
    }

    #[tokio::test]
    async fn the_run_of_an_approved_request_names_who_ran_it_and_who_asked() {
        let fake = Arc::new(FakeEngine::riftwing());
        fake.update("redis", |c| c.volumes = vec!["riftwing_redis-data".into()]);
        let (core, store) = core_with_store(fake).await;
        let id = pending_id(&core.run(inv("alice", "/reset redis")).await.unwrap().report);
        core.run(inv("bob", &format!("/approve {id}")))
            .await
            .unwrap();
        let q = crate::core::store::AuditQuery {
            limit: 50,
            ..Default::default()
        };
        let entries = store.query_audit(&q).await.unwrap();
        for d in [AuditDecision::Executing, AuditDecision::Ran] {
            let e = entries
                .iter()
                .find(|e| e.entry.decision == d && e.entry.result.starts_with("approval"))
                .unwrap_or_else(|| panic!("no {d} entry"));
            assert_eq!(e.entry.actor, "bob", "{d}: {:?}", e.entry);
            assert!(
                e.entry.result.contains("requested by alice"),
                "{d}: {}",
                e.entry.result
            );
            assert_eq!(
                e.entry.roles,
                ["approver", "operator", "viewer"],
                "{d}: bob's roles"
            );
        }
    }

    #[tokio::test]
    async fn a_requester_who_lost_their_roles_before_the_approval_has_nothing_run() {
        let fake = Arc::new(FakeEngine::riftwing());
        fake.update("redis", |c| c.volumes = vec!["riftwing_redis-data".into()]);
        let (core, _) = core_with_store(fake.clone()).await;
        let id = pending_id(&core.run(inv("alice", "/reset redis")).await.unwrap().report);
        let team = std::fs::read_to_string(repo("permissions/team.toml")).unwrap();
        let without_alice = team.replace("\"alice\", ", "");
        assert!(
            !without_alice.contains("\"alice\""),
            "alice is in no role any more"
        );
        let later = with_team(&core, &without_alice);
        let md = refusal(&later, "bob", &format!("/approve {id}")).await;
        assert!(
            md.contains("re-checked before running") && md.contains("`alice` no longer holds"),
            "{md}"
        );
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
        let req = later.approvals().unwrap().get(&id).await.unwrap().unwrap();
        assert_eq!(req.state, crate::core::approvals::ApprovalState::Failed);
    }

    #[tokio::test]
    async fn an_earlier_approver_who_lost_the_approver_role_stops_the_run() {
        // /backup needing two approvals: carol approves, then loses the approver role, and
        // erin's approval completes the quorum.
        let commands = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(repo("commands")).unwrap() {
            let p = e.unwrap().path();
            let text = std::fs::read_to_string(&p).unwrap();
            let text = if p.ends_with("backup.toml") {
                text.replace("min_approvals = 1", "min_approvals = 2")
            } else {
                text
            };
            std::fs::write(commands.path().join(p.file_name().unwrap()), text).unwrap();
        }
        let fake = Arc::new(FakeEngine::riftwing());
        let (core, _) = core_with_store(fake.clone()).await;
        let groups = core.settings.groups.keys().cloned().collect();
        let catalog = Catalog::load_dir(commands.path(), &groups).unwrap();
        assert_eq!(
            catalog
                .get("backup")
                .unwrap()
                .approval
                .as_ref()
                .unwrap()
                .min_approvals,
            2
        );
        let core = Core { catalog, ..core };
        let id = pending_id(&core.run(inv("alice", "/backup")).await.unwrap().report);
        let first = core
            .run(inv("carol", &format!("/approve {id}")))
            .await
            .unwrap();
        assert!(
            first.report.title.contains("1 of 2"),
            "{}",
            first.report.title
        );
        let team = std::fs::read_to_string(repo("permissions/team.toml")).unwrap();
        let carol_out = team.replacen(
            "users = [\"bob\", \"carol\", \"erin\"]",
            "users = [\"bob\", \"erin\"]",
            1,
        );
        assert_ne!(carol_out, team, "carol was an approver");
        let later = Core {
            catalog: core.catalog.clone(),
            ..with_team(&core, &carol_out)
        };
        let md = refusal(&later, "erin", &format!("/approve {id}")).await;
        assert!(
            md.contains("approver `carol` no longer holds an approver role"),
            "{md}"
        );
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    }

    /// The refusal's Markdown, for a line that must be refused.
    async fn refusal(core: &Core, who: &str, line: &str) -> String {
        core.run(inv(who, line)).await.unwrap_err().markdown()
    }

    fn pending_id(r: &Report) -> String {
        r.title
            .strip_prefix("Pending approval ")
            .and_then(|t| t.split(':').next())
            .expect("a pending report")
            .to_owned()
    }

    #[tokio::test]
    async fn reset_waits_for_another_approver_and_then_runs_once() {
        let fake = Arc::new(FakeEngine::riftwing());
        fake.update("redis", |c| c.volumes = vec!["riftwing_redis-data".into()]);
        let (core, store) = core_with_store(fake.clone()).await;
        let reply = core.run(inv("alice", "/reset redis")).await.unwrap();
        let ReplyKind::Pending(req) = &reply.kind else {
            panic!("not pending: {:?}", reply.kind)
        };
        let r = reply.report.clone();
        let id = pending_id(&r);
        assert_eq!(req.id, id, "the reply carries the request it made");
        assert_eq!(req.command, "reset");
        let text = r.all_text();
        assert!(
            text.contains("volume:riftwing_redis-data") && text.contains("digest"),
            "{text}"
        );
        assert!(fake.calls().is_empty(), "nothing runs before approval");
        let own = refusal(&core, "alice", &format!("/approve {id}")).await;
        assert!(own.contains("your own request"), "{own}");
        let dave = refusal(&core, "dave", &format!("/approve {id}")).await;
        assert!(dave.contains("`approver`"), "{dave}");
        let ran = core
            .run(inv("bob", &format!("/approve {id}")))
            .await
            .unwrap()
            .report;
        assert!(ran.title.contains("Reset `redis`"), "{}", ran.title);
        assert_eq!(
            fake.calls(),
            ["recreate riftwing-redis-1 riftwing_redis-data"]
        );
        let again = refusal(&core, "carol", &format!("/approve {id}")).await;
        assert!(again.contains("already"), "{again}");
        assert_eq!(fake.calls().len(), 1);
        let req = core.approvals().unwrap().get(&id).await.unwrap().unwrap();
        assert_eq!(req.state, crate::core::approvals::ApprovalState::Succeeded);
        assert!(
            crate::core::store::verify_audit(&*store)
                .await
                .unwrap()
                .is_ok()
        );
    }

    #[tokio::test]
    async fn with_the_store_down_every_store_command_is_refused_and_nothing_destructive_runs() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let fake = Arc::new(FakeEngine::riftwing());
        fake.update("redis", |c| c.volumes = vec!["riftwing_redis-data".into()]);
        let (core, _) = core_with(fake.clone());
        let data: Arc<dyn crate::core::store::Store> = Arc::new(
            crate::infra::store::SqliteStore::open(":memory:")
                .await
                .unwrap(),
        );
        let down = Arc::new(AtomicBool::new(false));
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(crate::infra::store::resilient::tests::switched(
            data.clone(),
            down.clone(),
            dir.path().join("audit-spill.jsonl"),
            Arc::new(AtomicUsize::new(0)),
        ));
        let core = Core {
            audit: store.clone(),
            ..core
        }
        .with_store(store.clone());
        let id = pending_id(&core.run(inv("alice", "/reset redis")).await.unwrap().report);

        down.store(true, Ordering::SeqCst);
        let refused = [
            ("bob", format!("/approve {id}")),
            ("carol", format!("/deny {id} reason:later")),
            ("alice", format!("/cancel {id}")),
            ("bob", "/pending".to_owned()),
            ("carol", "/audit".to_owned()),
            ("alice", "/reset redis".to_owned()),
        ];
        for (n, (who, line)) in refused.iter().enumerate() {
            let md = core.run(inv(who, line)).await.unwrap_err().markdown();
            assert!(md.contains(crate::core::error::STORE_DOWN), "{line}: {md}");
            assert!(!md.contains("Docker host"), "not a Docker problem: {md}");
            assert!(
                md.contains(&format!("{} entr", n + 1)) && md.contains("audit-spill.jsonl"),
                "{line}: {md}"
            );
        }
        let status = core
            .run(inv("dave", "/status"))
            .await
            .unwrap()
            .report
            .all_text();
        assert!(status.contains("7 entries kept"), "{status}");
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());

        down.store(false, Ordering::SeqCst);
        let ran = core
            .run(inv("bob", &format!("/approve {id}")))
            .await
            .unwrap()
            .report;
        assert!(
            ran.all_text().contains("7 kept entries"),
            "{}",
            ran.all_text()
        );
        assert_eq!(
            fake.calls().len(),
            1,
            "the request survived the outage and ran once"
        );
        let log = data.audit_page(0, 100).await.unwrap();
        let actors: Vec<&str> = log.iter().map(|e| e.entry.actor.as_str()).collect();
        assert_eq!(
            actors[..9],
            [
                "alice", "alice", "bob", "carol", "alice", "bob", "carol", "alice", "dave"
            ],
            "the request (gate and pipeline), then the kept entries in order"
        );
        assert!(
            crate::core::store::verify_audit(&*data)
                .await
                .unwrap()
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_long_operation_keeps_renewing_its_lease_so_no_replica_takes_it_for_interrupted() {
        let store: Arc<dyn crate::core::store::Store> = Arc::new(
            crate::infra::store::SqliteStore::open(":memory:")
                .await
                .unwrap(),
        );
        let lease = Duration::from_millis(400);
        let a = Approvals::new(store.clone())
            .as_replica(crate::core::replica::ReplicaId::current().clone(), lease);
        let r = a
            .create(
                NewRequest {
                    operation: crate::core::approvals::BoundOperation {
                        command: "backup".into(),
                        targets: vec![],
                        args: Default::default(),
                    },
                    args_display: String::new(),
                    requester: "alice".into(),
                    requester_roles: vec![],
                    approver_roles: vec!["approver".into()],
                    min_approvals: 1,
                    ttl: Duration::from_secs(60),
                    channel: "console".into(),
                    correlation_id: "c".into(),
                },
                Utc::now(),
            )
            .await
            .unwrap();
        a.approve(&r.id, "bob", &["approver".into()], Utc::now())
            .await
            .unwrap();
        assert!(
            a.claim_for_execution(&r.id, &RUNNER, Utc::now())
                .await
                .unwrap()
        );
        let first = a.get(&r.id).await.unwrap().unwrap().lease_until.unwrap();
        // Three lease lengths: without renewal it would have run out twice over.
        with_lease_renewed(&a, &r.id, tokio::time::sleep(lease * 3)).await;
        let last = a.get(&r.id).await.unwrap().unwrap().lease_until.unwrap();
        assert!(last > Utc::now(), "still held: {last}");
        assert!(
            last - first >= chrono::Duration::milliseconds(900),
            "{first} → {last}"
        );
        assert!(a.recover_interrupted(Utc::now()).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_recreated_target_fails_closed_and_says_why() {
        let fake = Arc::new(FakeEngine::riftwing());
        let (core, _) = core_with_store(fake.clone()).await;
        let id = pending_id(&core.run(inv("alice", "/flush-redis")).await.unwrap().report);
        fake.update("redis", |c| c.id = "id-redis-recreated".into());
        let e = refusal(&core, "bob", &format!("/approve {id}")).await;
        let md = e;
        assert!(
            md.contains("failed closed") && md.contains("container:redis:id-redis"),
            "{md}"
        );
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
        let req = core.approvals().unwrap().get(&id).await.unwrap().unwrap();
        assert_eq!(req.state, crate::core::approvals::ApprovalState::Failed);
        assert!(req.result.unwrap().contains("target changed"));
    }

    #[tokio::test]
    async fn a_restore_of_a_path_outside_backups_is_refused_before_any_request() {
        let (core, store) = core_with_store(Arc::new(FakeEngine::riftwing())).await;
        let e = core
            .run(inv("erin", "/restore file:../../etc/passwd"))
            .await
            .unwrap_err();
        assert!(
            matches!(e, PipelineError::User(UserError::InvalidArgument(_))),
            "{e:?}"
        );
        assert!(
            core.approvals()
                .unwrap()
                .pending()
                .await
                .unwrap()
                .is_empty()
        );
        let audit = store.query_audit(&Default::default()).await.unwrap();
        assert_eq!(
            audit[0].entry.decision,
            crate::core::store::AuditDecision::Invalid
        );
    }

    #[tokio::test]
    async fn user_durations_past_the_calendar_mean_everything_never_a_panic() {
        let (core, _) = core_with_store(Arc::new(FakeEngine::riftwing())).await;
        let r = core
            .run(inv("carol", "/audit since:99999999999d"))
            .await
            .unwrap()
            .report;
        assert!(r.title.contains("audit entr"), "{}", r.title);
        let r = core
            .run(inv("dave", "/logs api-1 since:99999999999d"))
            .await
            .unwrap()
            .report;
        assert!(r.title.starts_with("Logs of api-1"), "{}", r.title);
    }

    /// True when every occurrence of the link payload in `md` is inside a code span or escaped.
    fn link_is_inert(md: &str) -> bool {
        md.match_indices("[Approve request here](https://evil.example)")
            .all(|(at, _)| md[..at].ends_with('`') || md[..at].ends_with('\\'))
    }

    #[tokio::test]
    async fn text_a_person_typed_never_renders_as_a_link_in_a_reply() {
        let (core, _) = core_with_store(Arc::new(FakeEngine::riftwing())).await;
        let link = "[Approve request here](https://evil.example)";
        let r = core
            .run(inv("dave", &format!("/logs api-1 grep:\"{link}\"")))
            .await
            .unwrap()
            .report;
        let md = render_markdown(&r, 4000).text;
        assert!(md.contains(link) && link_is_inert(&md), "{md}");
        let r = core
            .run(inv("dave", "/help command:\"[x](https://e.x)\""))
            .await
            .unwrap()
            .report;
        let md = render_markdown(&r, 4000).text;
        assert!(md.contains("`/[x](https://e.x)`"), "{md}");
        for line in [
            format!("/restore file:\"{link}\""),
            format!("/logs api-1 since:\"{link}\""),
        ] {
            let md = core.run(inv("erin", &line)).await.unwrap_err().markdown();
            assert!(
                md.contains("Approve request here") && link_is_inert(&md),
                "{line}: {md}"
            );
        }
    }

    #[tokio::test]
    async fn pending_and_audit_list_what_happened() {
        let (core, _) = core_with_store(Arc::new(FakeEngine::riftwing())).await;
        let id = pending_id(&core.run(inv("alice", "/backup")).await.unwrap().report);
        let p = core
            .run(inv("bob", "/pending"))
            .await
            .unwrap()
            .report
            .all_text();
        assert!(p.contains(&id) && p.contains("alice"), "{p}");
        let d = core
            .run(inv("carol", &format!("/deny {id} reason:later")))
            .await
            .unwrap()
            .report;
        assert!(d.title.contains("denied"), "{}", d.title);
        let a = core
            .run(inv("carol", "/audit user:alice command:backup since:1h"))
            .await
            .unwrap()
            .report
            .all_text();
        assert!(a.contains("pending") && a.contains("alice"), "{a}");
    }

    #[tokio::test]
    async fn an_expired_request_cannot_be_approved_and_nothing_runs() {
        let dir = tempfile::tempdir().unwrap();
        for f in std::fs::read_dir(repo("commands")).unwrap() {
            let f = f.unwrap().path();
            let text = std::fs::read_to_string(&f)
                .unwrap()
                .replace("ttl = \"15m\"", "ttl = \"1s\"");
            std::fs::write(dir.path().join(f.file_name().unwrap()), text).unwrap();
        }
        let mut settings = Settings::parse(
            Path::new("default"),
            crate::core::settings::DEFAULT_SETTINGS,
        )
        .unwrap();
        settings.commands_dir = dir.path().to_owned();
        let groups = settings.groups.keys().cloned().collect();
        let catalog = Catalog::load_dir(&settings.commands_dir, &groups).unwrap();
        let policy = Policy::load_dir(&repo("permissions")).unwrap();
        let fake = Arc::new(FakeEngine::riftwing());
        let store: Arc<dyn crate::core::store::Store> = Arc::new(
            crate::infra::store::SqliteStore::open(":memory:")
                .await
                .unwrap(),
        );
        let core = Core::new(
            settings,
            catalog,
            policy,
            LazyEngine::ready(fake.clone()),
            Arc::new(crate::core::audit::StoreAudit::new(store.clone())),
        )
        .with_store(store);
        let id = pending_id(&core.run(inv("alice", "/flush-redis")).await.unwrap().report);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let e = refusal(&core, "bob", &format!("/approve {id}")).await;
        assert!(e.contains("expired"), "{e}");
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
        let listed = core
            .run(inv("bob", "/pending"))
            .await
            .unwrap()
            .report
            .all_text();
        assert!(!listed.contains(&id), "{listed}");
        let req = core.approvals().unwrap().get(&id).await.unwrap().unwrap();
        assert_eq!(req.state, crate::core::approvals::ApprovalState::Expired);
    }

    #[tokio::test]
    async fn approval_gate_needs_no_docker_connection() {
        let fake = Arc::new(FakeEngine::riftwing());
        fake.set_unavailable(true);
        let (core, audit) = core_with(fake);
        let e = core.run(inv("erin", "/restart-infra")).await.unwrap_err();
        assert!(
            matches!(e, PipelineError::User(UserError::NeedsApproval { .. })),
            "{e:?}"
        );
        assert_eq!(audit.records()[0].decision, AuditDecision::Pending);
    }

    #[tokio::test]
    async fn group_restart_reports_members_without_a_container() {
        let fake = Arc::new(FakeEngine::new());
        for s in ["api-1", "api-2", "worker-1", "worker-2"] {
            fake.add(crate::infra::fake::container(s, "running"));
        }
        let (core, _) = core_with(fake.clone());
        let r = core.run(inv("bob", "/restart-app")).await.unwrap().report;
        assert!(r.title.contains("4/4 ok"), "{}", r.title);
        assert!(
            r.all_text().contains("No container for: `console`"),
            "{}",
            r.all_text()
        );
        assert_eq!(fake.calls().len(), 4);
    }

    #[tokio::test]
    async fn restart_app_restarts_the_whole_group() {
        let fake = Arc::new(FakeEngine::riftwing());
        let (core, _) = core_with(fake.clone());
        let r = core.run(inv("bob", "/restart-app")).await.unwrap().report;
        assert!(r.title.contains("5/5 ok"), "{}", r.title);
        assert_eq!(fake.calls().len(), 5);
    }

    #[tokio::test]
    async fn long_logs_become_an_attachment_not_a_cut() {
        let fake = Arc::new(FakeEngine::riftwing());
        let lines: Vec<(u32, String)> = (0..800)
            .map(|i| (i, format!("worker heartbeat {i} ok")))
            .collect();
        let refs: Vec<(u32, &str)> = lines.iter().map(|(i, s)| (*i, s.as_str())).collect();
        fake.set_logs("worker-1", &refs);
        let (core, _) = core_with(fake);
        let r = core
            .run(inv("dave", "/logs worker-1 tail:800"))
            .await
            .unwrap()
            .report;
        let out = render_markdown(&r, 2000);
        assert!(out.text.chars().count() <= 2000);
        let a = out
            .attachments
            .iter()
            .find(|a| a.name == "logs-worker-1.txt")
            .expect("logs attached");
        assert_eq!(a.body.lines().count(), 800, "every line is kept");
        assert!(a.body.ends_with("worker heartbeat 799 ok"));
        assert!(out.text.contains("attached whole"), "{}", out.text);
    }

    #[tokio::test]
    async fn engine_down_is_unavailable_and_audited_as_failed() {
        let fake = Arc::new(FakeEngine::riftwing());
        fake.set_unavailable(true);
        let (core, audit) = core_with(fake);
        let e = core.run(inv("dave", "/status")).await.unwrap_err();
        assert!(matches!(e, PipelineError::User(UserError::EngineDown(_))));
        assert_eq!(audit.records()[0].decision, AuditDecision::Failed);
    }

    #[tokio::test]
    async fn secrets_in_args_and_output_are_redacted_before_leaving_the_core() {
        let fake = Arc::new(FakeEngine::riftwing());
        fake.set_env("api-1", &[("JWT_SECRET", "jwt-very-secret-1")]);
        fake.set_logs("api-1", &[(1, "token jwt-very-secret-1 rejected")]);
        let (core, audit) = core_with(fake);
        let r = core
            .run(inv("dave", "/logs api-1 grep:jwt-very-secret-1"))
            .await
            .unwrap()
            .report;
        assert!(
            !r.all_text().contains("jwt-very-secret-1"),
            "{}",
            r.all_text()
        );
        assert!(r.blocks.iter().any(
            |b| matches!(b, Block::Code { text, .. } if text.contains("token **** rejected"))
        ));
        let rec = audit.records().pop().unwrap();
        assert!(!rec.args.contains("jwt-very-secret-1"), "{}", rec.args);
    }

    #[tokio::test]
    async fn audit_fields_stay_bounded_whatever_is_typed() {
        let (core, audit) = core_with(Arc::new(FakeEngine::riftwing()));
        let huge = "x".repeat(100_000);
        let _ = core.run(inv("dave", &format!("/{huge} {huge}"))).await;
        let rec = audit.records().pop().unwrap();
        assert!(rec.command.chars().count() < 120, "{}", rec.command.len());
        assert!(rec.args.chars().count() < 2200);
        assert!(rec.args.ends_with("(100000 characters in all)"));
        assert_eq!(rec.decision, AuditDecision::Invalid);
    }

    #[tokio::test]
    async fn unknown_command_is_invalid_and_suggests_help() {
        let (core, audit) = core_with(Arc::new(FakeEngine::riftwing()));
        let e = core.run(inv("dave", "/reboot now")).await.unwrap_err();
        assert!(e.markdown().contains("/help"));
        assert_eq!(audit.records()[0].decision, AuditDecision::Invalid);
    }

    #[tokio::test]
    async fn help_lists_only_what_the_person_may_run() {
        let (core, _) = core_with(Arc::new(FakeEngine::riftwing()));
        let dave = core
            .run(inv("dave", "/help"))
            .await
            .unwrap()
            .report
            .all_text();
        assert!(
            dave.contains("/logs") && !dave.contains("/restart"),
            "{dave}"
        );
        let erin = core
            .run(inv("erin", "/help"))
            .await
            .unwrap()
            .report
            .all_text();
        assert!(erin.contains("/restart-infra ⚠"), "{erin}");
    }

    #[tokio::test]
    async fn lazy_engine_connects_once_and_retries_after_failure() {
        let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let a = attempts.clone();
        let lazy = LazyEngine::new(move || {
            let n = a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move {
                if n == 0 {
                    Err(EngineError::Unavailable("first try".into()))
                } else {
                    Ok(Arc::new(FakeEngine::riftwing()) as Arc<dyn Engine>)
                }
            })
        });
        assert!(lazy.get().await.is_err());
        assert!(lazy.get().await.is_ok());
        assert!(lazy.get().await.is_ok());
        assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    /// The fake engine's platform with no host-side dependencies, so nothing real is probed.
    fn engine_only_core(fake: Arc<FakeEngine>) -> (Core, Arc<MemoryAudit>) {
        let (mut core, audit) = core_with(fake);
        let p = &mut core.settings.platform;
        p.postgres = None;
        p.redis = None;
        p.s3 = None;
        p.temporal = None;
        p.http.clear();
        p.volumes.clear();
        (core, audit)
    }

    const SEED_HEADINGS: [&str; 8] = [
        "## Container Operations Report",
        "### Issue:",
        "### Services Affected:",
        "### Root Cause:",
        "### Resolution Steps:",
        "### Verification:",
        "### Prevention:",
        "### Related Services to Monitor:",
    ];

    fn assert_seed_headings(md: &str) {
        let mut from = 0;
        for h in SEED_HEADINGS {
            let at = md[from..]
                .find(h)
                .unwrap_or_else(|| panic!("`{h}` missing or out of order in:\n{md}"));
            from += at + h.len();
        }
    }

    #[tokio::test]
    async fn viewer_diagnoses_the_platform_and_gets_the_seed_report() {
        let fake = Arc::new(FakeEngine::riftwing());
        fake.update("redis", |c| {
            c.state = "exited".into();
            c.exit_code = Some(137);
            c.health = None;
        });
        let (core, audit) = engine_only_core(fake);
        let r = core.run(inv("dave", "/diagnose")).await.unwrap().report;
        let md = render_markdown(&r, 1_000_000).text;
        assert_seed_headings(&md);
        assert!(
            r.title.starts_with("Container Operations Report"),
            "{}",
            r.title
        );
        assert!(
            md.contains("- redis -"),
            "redis is not listed as affected:\n{md}"
        );
        assert_eq!(audit.records()[0].decision, AuditDecision::Ran);
        assert_eq!(audit.records()[0].command, "diagnose");
    }

    #[tokio::test]
    async fn diagnose_focused_on_a_healthy_service_says_so_and_points_at_the_rest() {
        let fake = Arc::new(FakeEngine::riftwing());
        fake.update("redis", |c| {
            c.state = "exited".into();
            c.exit_code = Some(137);
            c.health = None;
        });
        let (core, _) = engine_only_core(fake);
        let r = core
            .run(inv("dave", "/diagnose service:minio"))
            .await
            .unwrap()
            .report;
        let md = render_markdown(&r, 1_000_000).text;
        assert_seed_headings(&md);
        assert!(
            md.contains("`minio` shows no fault; other services do"),
            "{md}"
        );
        assert!(!md.contains("- redis -"), "{md}");
    }

    #[tokio::test]
    async fn diagnose_focused_on_an_unknown_service_names_the_real_ones() {
        let (core, _) = engine_only_core(Arc::new(FakeEngine::riftwing()));
        let e = core
            .run(inv("dave", "/diagnose service:nosuch"))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, PipelineError::User(UserError::NotFound(m)) if m.contains("nosuch") && m.contains("postgres")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn a_person_without_a_grant_may_not_diagnose() {
        let fake = Arc::new(FakeEngine::riftwing());
        let (core, audit) = engine_only_core(fake.clone());
        let e = core.run(inv("mallory", "/diagnose")).await.unwrap_err();
        assert!(
            matches!(&e, PipelineError::User(UserError::Denied { roles, .. }) if roles.is_empty()),
            "{e:?}"
        );
        assert_eq!(audit.records()[0].decision, AuditDecision::Denied);
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    }

    #[tokio::test]
    async fn db_without_a_postgres_section_says_what_is_missing() {
        let (core, _) = engine_only_core(Arc::new(FakeEngine::riftwing()));
        let e = core.run(inv("dave", "/db view:locks")).await.unwrap_err();
        assert!(
            matches!(&e, PipelineError::User(UserError::Unavailable(m)) if m.contains("[postgres]")),
            "{e:?}"
        );
        let e = core.run(inv("dave", "/db view:bloat")).await.unwrap_err();
        assert!(
            matches!(&e, PipelineError::User(UserError::InvalidArgument(_))),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn network_checks_reach_only_the_platform_and_run_only_from_granted_services() {
        let fake = Arc::new(FakeEngine::riftwing());
        let (core, _) = core_with_store(fake.clone()).await;
        for target in ["169.254.169.254 port:80", "example.com port:443"] {
            let md = refusal(
                &core,
                "dave",
                &format!("/network-check view:port from:api-1 host:{target}"),
            )
            .await;
            assert!(
                md.contains("is not a service or a host of the platform"),
                "{md}"
            );
        }
        let md = refusal(
            &core,
            "dave",
            "/network-check view:dns from:api-1 name:metadata.google.internal",
        )
        .await;
        assert!(
            md.contains("is not a service or a host of the platform"),
            "{md}"
        );
        assert!(
            fake.calls().is_empty(),
            "nothing ran in a container: {:?}",
            fake.calls()
        );
        let team = r#"
[roles.viewer]
description = "Read-only"
users = ["dave"]

[[grants]]
roles = ["viewer"]
commands = ["network-check"]
services = ["api-1", "api-2"]
channels = ["*"]
"#;
        let narrow = with_team(&core, team);
        let md = refusal(
            &narrow,
            "dave",
            "/network-check view:dns from:postgres name:redis",
        )
        .await;
        assert!(
            md.starts_with("**Denied.**") && md.contains("`postgres`"),
            "{md}"
        );
    }

    #[tokio::test]
    async fn an_object_key_that_climbs_out_of_the_bucket_is_not_a_valid_key() {
        let (core, _) = engine_only_core(Arc::new(FakeEngine::riftwing()));
        for key in [
            "../rewst-artifacts/.keep",
            "a/../../b",
            "./x",
            "/etc/passwd",
        ] {
            let e = core
                .run(inv("dave", &format!("/storage view:check key:{key}")))
                .await
                .unwrap_err();
            assert!(
                matches!(&e, PipelineError::User(UserError::InvalidArgument(m)) if m.contains("not a valid object key")),
                "{key}: {e:?}"
            );
            assert!(!e.markdown().contains("Docker"), "{}", e.markdown());
        }
    }
}
