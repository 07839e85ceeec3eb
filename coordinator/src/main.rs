//! `coordinator`: the Outpost control plane and its client CLI.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use coordinator::cli::{self, client::Client, credentials};
use coordinator::config::{default_sqlite_url, Config, FileConfig};

mod dev;

// Per request the edge allocates headers, a wasm store and its resources;
// under perf (wrk on a hello function) glibc's malloc took about 11% of
// that path's CPU, mimalloc about 6%. See platform::allocator.
#[global_allocator]
static ALLOCATOR: platform::allocator::Allocator = platform::allocator::Allocator;

#[derive(Parser)]
#[command(
    name = "coordinator",
    version,
    about = "Outpost coordinator: control plane for edge deployments, and the CLI that drives it",
    after_help = "Quick start: `coordinator dev` in one terminal, `coordinator deploy ./site --project blog --prod` in another."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where client commands find the coordinator.
#[derive(Args, Clone)]
struct Remote {
    /// Coordinator API URL (default: saved credentials).
    #[arg(long, env = "OUTPOST_URL", global = true)]
    url: Option<String>,
    /// API token (default: saved credentials).
    #[arg(long, env = "OUTPOST_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// All-in-one local mode: coordinator + one edge node on SQLite and local disk.
    Dev(dev::DevOptions),
    /// Run a coordinator (API + QUIC endpoint for edge nodes).
    Serve(ServeArgs),
    /// Deploy a folder: upload what the coordinator lacks, print the URLs.
    Deploy {
        dir: PathBuf,
        #[arg(long)]
        project: String,
        /// Make it the production deployment once ready.
        #[arg(long)]
        prod: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// List or create projects.
    Projects {
        #[command(subcommand)]
        action: Option<ProjectsAction>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List a project's deployments, newest first (`deployments PROJECT`), or delete one (`deployments rm ID`).
    #[command(args_conflicts_with_subcommands = true)]
    Deployments {
        #[command(subcommand)]
        action: Option<DeploymentsAction>,
        project: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Point the project's production alias at a deployment.
    Promote {
        deployment: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Move production back to the previous production deployment.
    Rollback {
        project: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Edge nodes: list them (the default) or remove one from the cluster.
    Nodes {
        #[command(subcommand)]
        action: Option<NodesAction>,
        #[command(flatten)]
        remote: Remote,
    },
    /// API tokens (create, list, revoke) and edge-node join tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Manage a project's environment variables and secrets.
    Env {
        #[command(subcommand)]
        action: EnvAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Custom domains: add one (the answer says which DNS records to
    /// create), list, inspect, check DNS now, remove.
    Domains {
        #[command(subcommand)]
        action: DomainsAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show or set the hosts a project's functions may call (no hosts: no outbound).
    Outbound {
        project: String,
        hosts: Vec<String>,
        /// Remove every host.
        #[arg(long)]
        clear: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a project's git connection (webhook URL and secret), or connect a repository.
    Git {
        project: String,
        #[command(flatten)]
        git: GitFlags,
        #[command(flatten)]
        remote: Remote,
    },
    /// Build and deploy the newest commit of a branch (default: the production branch).
    Build {
        project: String,
        #[arg(long)]
        branch: Option<String>,
        /// Build this exact commit (full sha) instead of the branch's newest.
        #[arg(long)]
        commit: Option<String>,
        /// Print the build log until the build ends; fail if it does not become ready.
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Build a deployment's commit again.
    Redeploy {
        deployment: String,
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Cancel a queued or running build.
    Cancel {
        deployment: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Read logs: a deployment's build log (`logs <deployment>`) or a project's function logs (`logs <project>`).
    Logs {
        /// A project name (function logs) or a deployment id (build log).
        #[arg(value_name = "PROJECT|DEPLOYMENT")]
        project: String,
        #[arg(long)]
        deployment: Option<String>,
        /// One request's lines (the id an error issue's sample and the
        /// `x-request-id` header show).
        #[arg(long)]
        request_id: Option<String>,
        /// stdout or stderr.
        #[arg(long)]
        stream: Option<String>,
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// A project's error issues (function traps, panics, timeouts, memory
    /// limits and 5xx answers; failed builds, deploys and certificate
    /// orders; bundles an edge cannot load), grouped by fingerprint, the
    /// most recently seen first; or `errors show|resolve|ignore|reopen|severity <id>`.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Errors {
        #[command(subcommand)]
        action: Option<ErrorsAction>,
        /// The project whose issues to list.
        #[arg(required = true)]
        project: Option<String>,
        /// open (unresolved and regressed; default), all, unresolved,
        /// resolved, ignored or regressed.
        #[arg(long)]
        state: Option<String>,
        /// At most this many issues (1-200, default 50).
        #[arg(long)]
        limit: Option<i64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Notification channels of a team: webhooks (Alertmanager-shaped JSON,
    /// signed as Standard Webhooks), Slack incoming webhooks, e-mail.
    Channels {
        #[command(subcommand)]
        action: ChannelsAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Alert rules: a preset type (error_rate, function_error,
    /// deployment_failure, build_failure, slow_deployment, high_memory,
    /// disk_space, ssl_expiry) with a threshold, window and `for`,
    /// notifying channels.
    Alerts {
        #[command(subcommand)]
        action: AlertsAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Log drains: a project's function, request and build logs sent to an
    /// HTTPS endpoint as signed NDJSON (Vercel's drain format).
    Drains {
        #[command(subcommand)]
        action: DrainsAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// A project's traffic: requests, page views, visitors, bots, bytes,
    /// status codes, response times, top pages and referrers, functions.
    /// `--json` prints the API's answer (GET /projects/{p}/analytics).
    Analytics {
        project: String,
        /// How far back: 30m, 1h, 24h, 7d, 30d …
        #[arg(long, default_value = "24h")]
        since: String,
        /// minute, hour or day (default: the finest that fits the range).
        #[arg(long)]
        granularity: Option<String>,
        /// Only this deployment's traffic.
        #[arg(long)]
        deployment: Option<String>,
        /// Only production or preview traffic.
        #[arg(long)]
        env: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Run the retention and garbage collection pass now (instance owner).
    Gc {
        #[command(flatten)]
        remote: Remote,
    },
    /// Save a coordinator URL and token for later commands.
    Login {
        #[arg(long)]
        url: String,
        #[arg(long, env = "OUTPOST_TOKEN", hide_env_values = true)]
        token: String,
    },
}

#[derive(Subcommand)]
enum DeploymentsAction {
    /// Delete a deployment (not the production one) or a finished build; its URL stops answering.
    Rm { id: String },
}

#[derive(Subcommand)]
enum ProjectsAction {
    List,
    /// Delete a project with all its deployments, variables, builds and logs (owner).
    Rm {
        name: String,
        /// Do not ask: needed when not typing the name at a terminal.
        #[arg(long)]
        yes: bool,
    },
    /// Show, or set, when old deployments are deleted automatically.
    Retention {
        name: String,
        /// Delete previews after this many days (0: never).
        #[arg(long)]
        preview_days: Option<u32>,
        /// Keep the newest this many production deployments (0: all).
        #[arg(long)]
        production_keep: Option<u32>,
    },
    /// Create a project, optionally connected to a git repository.
    Create {
        name: String,
        /// The team that owns it (id; default: your first team).
        #[arg(long)]
        team: Option<String>,
        #[command(flatten)]
        git: GitFlags,
    },
}

/// A repository connection, as flags.
#[derive(Args, Clone, Default)]
struct GitFlags {
    /// Repository URL (https:// or ssh://).
    #[arg(long = "git", value_name = "URL")]
    git_url: Option<String>,
    /// Production branch; other branches get preview deployments.
    #[arg(long, default_value = "main")]
    branch: String,
    /// Subfolder to build (monorepos).
    #[arg(long)]
    root_dir: Option<String>,
    /// Override the detected install command ("" skips installing).
    #[arg(long)]
    install_command: Option<String>,
    /// Override the detected build command ("" skips building).
    #[arg(long)]
    build_command: Option<String>,
    /// Override the detected output folder.
    #[arg(long)]
    output_dir: Option<String>,
    /// Keep production-branch builds as previews until promoted by hand.
    #[arg(long)]
    no_auto_promote: bool,
}

impl GitFlags {
    fn args(&self) -> Option<cli::builds::GitArgs> {
        Some(cli::builds::GitArgs {
            url: self.git_url.clone()?,
            branch: self.branch.clone(),
            root_dir: self.root_dir.clone(),
            install_command: self.install_command.clone(),
            build_command: self.build_command.clone(),
            output_dir: self.output_dir.clone(),
            auto_promote: !self.no_auto_promote,
        })
    }
}

#[derive(Subcommand)]
enum EnvAction {
    /// Set KEY=VALUE (secrets are encrypted at rest and never shown again).
    Set {
        project: String,
        assignment: String,
        #[arg(long)]
        secret: bool,
        /// production, preview or all.
        #[arg(long, default_value = "all")]
        env: String,
    },
    /// List variables (secret values hidden).
    Ls { project: String },
    /// Remove a variable.
    Rm {
        project: String,
        name: String,
        #[arg(long, default_value = "all")]
        env: String,
    },
}

#[derive(Subcommand)]
enum ChannelsAction {
    /// Add a channel: `webhook <url> [--secret S]`, `slack <url>` or
    /// `email <address>` (team owners).
    Add {
        /// webhook, slack or email.
        kind: String,
        /// An https URL, or an e-mail address.
        target: String,
        /// A webhook's signing secret (default: a new one, shown once).
        #[arg(long)]
        secret: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// The team (default: the first team you own).
        #[arg(long)]
        team: Option<String>,
    },
    /// List channels (of one team, or of every team you are in).
    Ls {
        #[arg(long)]
        team: Option<String>,
    },
    /// Send a test message.
    Test { id: String },
    /// A channel's delivery history: status codes, errors, retries.
    Deliveries { id: String },
    /// Remove a channel.
    Rm { id: String },
}

#[derive(Subcommand)]
enum AlertsAction {
    /// Add a rule to a project (or `--instance`-wide, for operators).
    Add {
        /// The project (omit with --instance).
        #[arg(required_unless_present = "instance")]
        project: Option<String>,
        /// An instance-wide rule (high_memory, disk_space, ssl_expiry).
        #[arg(long, conflicts_with = "project")]
        instance: bool,
        /// error_rate (%), function_error (count), deployment_failure
        /// (count), build_failure (count), slow_deployment (minutes),
        /// high_memory (%), disk_space (%), ssl_expiry (days left).
        #[arg(long = "type")]
        kind: String,
        /// Default per type: 5 %, 0 errors, 0 failures, 15 min, 90 %, 90 %, 14 days.
        #[arg(long)]
        threshold: Option<f64>,
        /// The window counts and rates look back over (1m-7d).
        #[arg(long)]
        window: Option<String>,
        /// How long the condition must hold before the alert fires.
        #[arg(long = "for")]
        for_: Option<String>,
        /// A channel id to notify (repeat for several).
        #[arg(long = "channel", required = true)]
        channels: Vec<String>,
    },
    /// List a project's rules (or the instance's) with their state.
    Ls {
        #[arg(required_unless_present = "instance")]
        project: Option<String>,
        #[arg(long, conflicts_with = "project")]
        instance: bool,
    },
    /// One rule and the state of each series it watches.
    Show { id: String },
    /// Remove a rule.
    Rm { id: String },
}

#[derive(Subcommand)]
enum DrainsAction {
    /// Drain a project's logs to an https URL.
    Add {
        project: String,
        /// The endpoint (https). Not `url`: that is the coordinator's.
        #[arg(value_name = "URL")]
        endpoint: String,
        /// function, request or build (repeat; default: all three).
        #[arg(long = "source")]
        sources: Vec<String>,
        /// The share of requests sent, 0 < rate <= 1 (default 1).
        #[arg(long)]
        sample_rate: Option<f64>,
        /// The signing secret (default: a new one, shown once).
        #[arg(long)]
        secret: Option<String>,
    },
    /// A project's drains and how their deliveries go.
    Ls { project: String },
    /// Remove a drain.
    Rm { id: String },
}

#[derive(Subcommand)]
enum ErrorsAction {
    /// One issue: its sample (message, backtrace, stderr, request id),
    /// trend and deployments.
    Show { id: String },
    /// Mark an issue resolved (a new event reopens it as regressed).
    Resolve { id: String },
    /// Ignore an issue (it is counted, never reopened).
    Ignore { id: String },
    /// Mark an issue unresolved again.
    Reopen { id: String },
    /// Set an issue's severity: critical, high, medium or low.
    Severity { id: String, level: String },
}

#[derive(Subcommand)]
enum DomainsAction {
    /// Put DOMAIN on PROJECT: its production deployment, or with
    /// `--branch` that branch's newest build. Prints the DNS records to
    /// create; the domain goes live once they are in place.
    Add {
        domain: String,
        #[arg(long)]
        project: String,
        #[arg(long, conflicts_with = "redirect_to")]
        branch: Option<String>,
        /// Redirect every request to this domain of the same project
        /// (`shop.com` → `www.shop.com`), keeping path and query.
        #[arg(long)]
        redirect_to: Option<String>,
        /// The redirect's status: 301, 302, 307 or 308.
        #[arg(long, default_value_t = 308, requires = "redirect_to")]
        status: u16,
        #[command(flatten)]
        https: HttpsArgs,
    },
    /// Change a domain's HTTPS settings: the redirect from plain HTTP (on
    /// by default once its certificate is active) and HSTS (off by default).
    Https {
        domain: String,
        /// `on` or `off`.
        #[arg(long, value_parser = ["on", "off"])]
        redirect: Option<String>,
        #[command(flatten)]
        https: HstsArgs,
        /// Stop sending Strict-Transport-Security.
        #[arg(long, conflicts_with_all = ["hsts_max_age", "hsts_include_subdomains", "hsts_preload"])]
        no_hsts: bool,
    },
    /// A project's domains and their state.
    Ls { project: String },
    /// A domain's state, what DNS returned and the records it needs.
    Inspect { domain: String },
    /// Check a domain's DNS now (else it is checked every few minutes).
    Verify { domain: String },
    /// Remove a domain: every edge stops serving it.
    Rm { domain: String },
}

#[derive(clap::Args)]
struct HttpsArgs {
    /// Serve plain HTTP too, without the 308 to HTTPS once the certificate
    /// is active.
    #[arg(long)]
    no_https_redirect: bool,
    #[command(flatten)]
    hsts: HstsArgs,
}

#[derive(clap::Args)]
struct HstsArgs {
    /// Send Strict-Transport-Security with this max-age in seconds (at
    /// most two years).
    #[arg(long)]
    hsts_max_age: Option<u32>,
    #[arg(long, requires = "hsts_max_age")]
    hsts_include_subdomains: bool,
    /// Ask to be preloaded (needs --hsts-include-subdomains and a year).
    #[arg(long, requires = "hsts_max_age")]
    hsts_preload: bool,
}

impl HstsArgs {
    fn policy(&self) -> Option<coordinator::api::domains::Hsts> {
        self.hsts_max_age
            .map(|max_age| coordinator::api::domains::Hsts {
                max_age,
                include_subdomains: self.hsts_include_subdomains,
                preload: self.hsts_preload,
            })
    }
}

#[derive(Subcommand)]
enum NodesAction {
    /// List edge nodes with region, status, config version, certificate end
    /// and last contact.
    Ls,
    /// Remove a node: every coordinator and edge refuses its certificate
    /// from now on and its links close. The host must join again (with a
    /// new token) to come back, as a new node.
    Rm { id: String },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create an API token (printed once) for CI or scripts.
    Create {
        name: String,
        /// `all`, `team:<id>` or `project:<name>`.
        #[arg(long, default_value = "all")]
        scope: String,
        /// Expire after this many days [default: never].
        #[arg(long)]
        expires_days: Option<i64>,
    },
    /// List your API tokens (never their secrets).
    List,
    /// Revoke one of your API tokens.
    Revoke { id: String },
    /// Create a one-time join token for a new edge node.
    CreateJoin {
        #[arg(long)]
        region: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// TOML config file (keys: data_dir, api_addr, quic_addr, database_url, base_domain, public_url, api_url, role, quic_advertise, [blobs], [limits], [builds], [accounts], [retention], [quotas], [nodes], [domains], [acme] (and [acme.dns01]), [metrics]; see docs/configuration.md).
    #[arg(long, env = "OUTPOST_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long, env = "OUTPOST_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// API listen address [default: 127.0.0.1:8700].
    #[arg(long, env = "OUTPOST_API_ADDR")]
    api_addr: Option<SocketAddr>,
    /// QUIC listen address for edge nodes [default: 0.0.0.0:8701].
    #[arg(long, env = "OUTPOST_QUIC_ADDR")]
    quic_addr: Option<SocketAddr>,
    /// sqlite://PATH (default: <data-dir>/coordinator.db) or postgres://…
    #[arg(long, env = "OUTPOST_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Sites are served as <project>.<base-domain> [default: localhost].
    #[arg(long, env = "OUTPOST_BASE_DOMAIN")]
    base_domain: Option<String>,
    /// How users reach edges, {host} standing for the site host [default: https://{host}].
    #[arg(long, env = "OUTPOST_PUBLIC_URL")]
    public_url: Option<String>,
    /// How people and git hosts reach this API and dashboard, for webhook and invitation links [default: http://<api-addr>].
    #[arg(long, env = "OUTPOST_API_URL")]
    api_url: Option<String>,
    /// Key encrypting secret variables at rest, 64 hex characters [default: <data-dir>/secret.key, created on first start]. Every coordinator of one cluster needs the same key: it also seals the cluster CA and config-signing key in the database.
    #[arg(long, env = "OUTPOST_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// What this process runs: all (default), api (API, dashboard, edges, background passes; never a build) or builder (builds only, plus /healthz).
    #[arg(long, env = "OUTPOST_ROLE")]
    role: Option<coordinator::role::Role>,
    /// The QUIC address edges reach this coordinator at, host:port; published to every edge so that they fail over between coordinators [default: the QUIC address bound, unless it is 0.0.0.0].
    #[arg(long, env = "OUTPOST_QUIC_ADVERTISE")]
    quic_advertise: Option<String>,
}

fn resolve_config(a: ServeArgs) -> anyhow::Result<Config> {
    let file = match &a.config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    let data_dir = a
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("/var/lib/outpost"));
    Ok(Config {
        database_url: a
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| default_sqlite_url(&data_dir)),
        api_addr: a
            .api_addr
            .or(file.api_addr)
            .unwrap_or_else(|| "127.0.0.1:8700".parse().unwrap()),
        quic_addr: a
            .quic_addr
            .or(file.quic_addr)
            .unwrap_or_else(|| "0.0.0.0:8701".parse().unwrap()),
        base_domain: a
            .base_domain
            .or(file.base_domain)
            .unwrap_or_else(|| "localhost".into()),
        public_url: a
            .public_url
            .or(file.public_url)
            .unwrap_or_else(|| "https://{host}".into()),
        api_url: a.api_url.or(file.api_url),
        role: a.role.or(file.role).unwrap_or_default(),
        quic_advertise: a.quic_advertise.or(file.quic_advertise),
        blobs: file.blobs.unwrap_or_default(),
        limits: file.limits.unwrap_or_default(),
        builds: file.builds.unwrap_or_default(),
        accounts: file.accounts.unwrap_or_default(),
        retention: file.retention.unwrap_or_default(),
        nodes: file.nodes.unwrap_or_default(),
        domains: file.domains.unwrap_or_default(),
        acme: file.acme.unwrap_or_default(),
        metrics: file.metrics.unwrap_or_default(),
        analytics: file.analytics.unwrap_or_default(),
        rate_limits: file.rate_limits.unwrap_or_default(),
        alerts: file.alerts.unwrap_or_default(),
        smtp: file.smtp,
        quotas: file.quotas.unwrap_or_default(),
        secret_key: a.secret_key,
        data_dir,
    })
}

fn client(r: &Remote) -> anyhow::Result<Client> {
    Client::new(&credentials::resolve(r.url.clone(), r.token.clone())?)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let running = coordinator::server::start(resolve_config(args)?).await?;
    match running.quic_addr {
        Some(quic) => println!(
            "coordinator API on http://{}/api/v1, edge QUIC on {quic}",
            running.api_addr
        ),
        // A builder: builds only, its health on the API address.
        None => println!(
            "coordinator API on http://{}/api/v1, edge QUIC on none (role builder: builds only)",
            running.api_addr
        ),
    }
    println!("cluster CA: {}", running.ca_path.display());
    if let Some(t) = &running.new_admin_token {
        println!("admin API token (shown once; also saved in the data dir as admin-token): {t}");
    }
    if let Some(t) = &running.setup_token {
        println!(
            "no account yet: create the instance owner's at {}/signup?setup={t} (the setup token is also in the data dir as setup-token)",
            running.api_url
        );
    }
    dev::wait_for_signal().await;
    tracing::info!("shutting down gracefully");
    running.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Inside a build's sandbox this executable is the network shim, and
    // nothing else (see `builder::egress`).
    if std::env::args().nth(1).as_deref() == Some(builder::egress::SHIM_ARG) {
        builder::egress::shim_main();
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,pingora_core=warn,sqlx=warn".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Dev(o) => dev::run(o).await,
        Command::Serve(args) => serve(args).await,
        Command::Deploy {
            dir,
            project,
            prod,
            remote,
        } => {
            let c = client(&remote)?;
            let r = cli::deploy::deploy(
                &c,
                cli::deploy::DeployOptions {
                    dir: &dir,
                    project: &project,
                    prod,
                    json: remote.json,
                },
            )
            .await
            .context("deploy failed")?;
            if remote.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "deployed {} as {} in {:.1}s: {} files, {} of {} blobs uploaded ({} bytes)",
                    r.project,
                    r.deployment,
                    r.duration_ms as f64 / 1000.0,
                    r.files,
                    r.uploaded_blobs,
                    r.blobs,
                    r.uploaded_bytes
                );
                if let Some(p) = &r.production_url {
                    println!("  production: {p}");
                }
                for f in &r.functions {
                    println!("  function:   {f}");
                }
                println!("  deployment: {}", r.url);
            }
            Ok(())
        }
        Command::Projects { action, remote } => {
            let c = client(&remote)?;
            match action.unwrap_or(ProjectsAction::List) {
                ProjectsAction::List => cli::commands::projects_list(&c, remote.json).await,
                ProjectsAction::Create { name, team, git } => {
                    cli::commands::projects_create(&c, &name, team, git.args(), remote.json).await
                }
                ProjectsAction::Rm { name, yes } => {
                    if !yes {
                        confirm_name(&name)?;
                    }
                    cli::commands::project_rm(&c, &name, remote.json).await
                }
                ProjectsAction::Retention {
                    name,
                    preview_days,
                    production_keep,
                } => {
                    cli::commands::retention(&c, &name, preview_days, production_keep, remote.json)
                        .await
                }
            }
        }
        Command::Deployments {
            action,
            project,
            remote,
        } => {
            let c = client(&remote)?;
            match (action, project) {
                (Some(DeploymentsAction::Rm { id }), _) => {
                    cli::commands::deployment_rm(&c, &id, remote.json).await
                }
                (None, Some(project)) => {
                    cli::commands::deployments(&c, &project, remote.json).await
                }
                (None, None) => anyhow::bail!("which project? `coordinator deployments PROJECT`"),
            }
        }
        Command::Gc { remote } => cli::commands::gc(&client(&remote)?, remote.json).await,
        Command::Promote { deployment, remote } => {
            cli::commands::promote(&client(&remote)?, &deployment, remote.json).await
        }
        Command::Rollback { project, remote } => {
            cli::commands::rollback(&client(&remote)?, &project, remote.json).await
        }
        Command::Nodes { action, remote } => match action {
            None | Some(NodesAction::Ls) => {
                cli::commands::nodes(&client(&remote)?, remote.json).await
            }
            Some(NodesAction::Rm { id }) => {
                cli::commands::remove_node(&client(&remote)?, &id).await
            }
        },
        Command::Token { action, remote } => {
            let c = client(&remote)?;
            match action {
                TokenAction::CreateJoin { region, ttl } => {
                    cli::commands::create_join_token(&c, &region, ttl, remote.json).await
                }
                TokenAction::Create {
                    name,
                    scope,
                    expires_days,
                } => cli::tokens::create(&c, &name, &scope, expires_days, remote.json).await,
                TokenAction::List => cli::tokens::list(&c, remote.json).await,
                TokenAction::Revoke { id } => cli::tokens::revoke(&c, &id).await,
            }
        }
        Command::Env { action, remote } => {
            let c = client(&remote)?;
            match action {
                EnvAction::Set {
                    project,
                    assignment,
                    secret,
                    env,
                } => cli::commands::env_set(&c, &project, &assignment, secret, &env).await,
                EnvAction::Ls { project } => {
                    cli::commands::env_list(&c, &project, remote.json).await
                }
                EnvAction::Rm { project, name, env } => {
                    cli::commands::env_remove(&c, &project, &name, &env).await
                }
            }
        }
        Command::Domains { action, remote } => {
            let c = client(&remote)?;
            match action {
                DomainsAction::Add {
                    domain,
                    project,
                    branch,
                    redirect_to,
                    status,
                    https,
                } => {
                    let add = cli::domains::Add {
                        project: &project,
                        name: &domain,
                        branch: branch.as_deref(),
                        redirect: redirect_to.as_deref().map(|to| (to, status)),
                        https_redirect: !https.no_https_redirect,
                        hsts: https.hsts.policy(),
                    };
                    cli::domains::add(&c, &add, remote.json).await
                }
                DomainsAction::Https {
                    domain,
                    redirect,
                    https,
                    no_hsts,
                } => {
                    let hsts = match (no_hsts, https.policy()) {
                        (true, _) => Some(None),
                        (false, Some(h)) => Some(Some(h)),
                        (false, None) => None,
                    };
                    let redirect = redirect.map(|r| r == "on");
                    cli::domains::set_https(&c, &domain, redirect, hsts, remote.json).await
                }
                DomainsAction::Ls { project } => {
                    cli::domains::list(&c, &project, remote.json).await
                }
                DomainsAction::Inspect { domain } => {
                    cli::domains::inspect(&c, &domain, false, remote.json).await
                }
                DomainsAction::Verify { domain } => {
                    cli::domains::inspect(&c, &domain, true, remote.json).await
                }
                DomainsAction::Rm { domain } => cli::domains::remove(&c, &domain).await,
            }
        }
        Command::Outbound {
            project,
            hosts,
            clear,
            remote,
        } => cli::commands::outbound(&client(&remote)?, &project, &hosts, clear, remote.json).await,
        Command::Git {
            project,
            git,
            remote,
        } => cli::builds::git(&client(&remote)?, &project, git.args(), remote.json).await,
        Command::Build {
            project,
            branch,
            commit,
            follow,
            remote,
        } => {
            cli::builds::build(
                &client(&remote)?,
                &project,
                branch.as_deref(),
                commit.as_deref(),
                follow,
                remote.json,
            )
            .await
        }
        Command::Redeploy {
            deployment,
            follow,
            remote,
        } => cli::builds::redeploy(&client(&remote)?, &deployment, follow, remote.json).await,
        Command::Cancel { deployment, remote } => {
            cli::builds::cancel(&client(&remote)?, &deployment, remote.json).await
        }
        Command::Drains { action, remote } => {
            let c = client(&remote)?;
            match action {
                DrainsAction::Add {
                    project,
                    endpoint,
                    sources,
                    sample_rate,
                    secret,
                } => {
                    let new = coordinator::app::drains::NewDrain {
                        url: endpoint,
                        sources: (!sources.is_empty()).then_some(sources),
                        sample_rate,
                        secret,
                    };
                    cli::drains::add(&c, &project, new, remote.json).await
                }
                DrainsAction::Ls { project } => cli::drains::list(&c, &project, remote.json).await,
                DrainsAction::Rm { id } => cli::drains::remove(&c, &id).await,
            }
        }
        Command::Channels { action, remote } => {
            let c = client(&remote)?;
            match action {
                ChannelsAction::Add {
                    kind,
                    target,
                    secret,
                    name,
                    team,
                } => {
                    let new = coordinator::app::alerts::NewChannel {
                        team,
                        kind,
                        target,
                        name,
                        secret,
                    };
                    cli::alerts::add_channel(&c, new, remote.json).await
                }
                ChannelsAction::Ls { team } => {
                    cli::alerts::list_channels(&c, team.as_deref(), remote.json).await
                }
                ChannelsAction::Test { id } => {
                    cli::alerts::test_channel(&c, &id, remote.json).await
                }
                ChannelsAction::Deliveries { id } => {
                    cli::alerts::deliveries(&c, &id, remote.json).await
                }
                ChannelsAction::Rm { id } => cli::alerts::remove_channel(&c, &id).await,
            }
        }
        Command::Alerts { action, remote } => {
            let c = client(&remote)?;
            match action {
                AlertsAction::Add {
                    project,
                    instance: _,
                    kind,
                    threshold,
                    window,
                    for_,
                    channels,
                } => {
                    let new = coordinator::app::alerts::NewRule {
                        kind,
                        threshold,
                        window,
                        for_,
                        channels,
                    };
                    cli::alerts::add_rule(&c, project.as_deref(), new, remote.json).await
                }
                AlertsAction::Ls {
                    project,
                    instance: _,
                } => cli::alerts::list_rules(&c, project.as_deref(), remote.json).await,
                AlertsAction::Show { id } => cli::alerts::show_rule(&c, &id, remote.json).await,
                AlertsAction::Rm { id } => cli::alerts::remove_rule(&c, &id).await,
            }
        }
        Command::Errors {
            action,
            project,
            state,
            limit,
            remote,
        } => {
            use coordinator::app::errors::IssueUpdate;
            let c = client(&remote)?;
            let state_change = |s: &str| IssueUpdate {
                state: Some(s.into()),
                severity: None,
            };
            match action {
                None => {
                    let project = project.unwrap_or_default();
                    cli::errors::list(&c, &project, state.as_deref(), limit, remote.json).await
                }
                Some(ErrorsAction::Show { id }) => cli::errors::show(&c, &id, remote.json).await,
                Some(ErrorsAction::Resolve { id }) => {
                    cli::errors::update(&c, &id, state_change("resolved"), remote.json).await
                }
                Some(ErrorsAction::Ignore { id }) => {
                    cli::errors::update(&c, &id, state_change("ignored"), remote.json).await
                }
                Some(ErrorsAction::Reopen { id }) => {
                    cli::errors::update(&c, &id, state_change("unresolved"), remote.json).await
                }
                Some(ErrorsAction::Severity { id, level }) => {
                    let change = IssueUpdate {
                        state: None,
                        severity: Some(level),
                    };
                    cli::errors::update(&c, &id, change, remote.json).await
                }
            }
        }
        Command::Analytics {
            project,
            since,
            granularity,
            deployment,
            env,
            remote,
        } => {
            cli::analytics::show(
                &client(&remote)?,
                cli::analytics::Options {
                    project: &project,
                    since: &since,
                    granularity: granularity.as_deref(),
                    deployment: deployment.as_deref(),
                    env: env.as_deref(),
                    json: remote.json,
                },
            )
            .await
        }
        Command::Logs {
            project,
            deployment,
            request_id,
            stream,
            follow,
            remote,
        } => {
            let c = client(&remote)?;
            if deployment.is_none() && cli::builds::is_build(&c, &project).await {
                return cli::builds::print_log(&c, &project, follow, remote.json).await;
            }
            cli::commands::logs(
                &c,
                cli::commands::LogsOptions {
                    project: &project,
                    deployment: deployment.as_deref(),
                    request_id: request_id.as_deref(),
                    stream: stream.as_deref(),
                    follow,
                    json: remote.json,
                },
            )
            .await
        }
        Command::Login { url, token } => {
            let c = credentials::Credentials {
                url: url.trim_end_matches('/').to_string(),
                token,
            };
            Client::new(&c)?
                .get::<serde_json::Value>("/projects?limit=1")
                .await
                .context("checking the token")?;
            let p = credentials::save(&c)?;
            println!("saved credentials to {}", p.display());
            Ok(())
        }
    }
}

/// Asks for a project's name to be typed before it is deleted.
fn confirm_name(name: &str) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("deleting {name} cannot be undone: pass --yes, or run this at a terminal to type the name");
    }
    eprint!("This deletes {name} and everything in it. Type the project's name to go on: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != name {
        anyhow::bail!("the name did not match; nothing was deleted");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_from(toml: &str) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, toml).unwrap();
        let argv = ["coordinator", "serve", "--config", file.to_str().unwrap()];
        let Command::Serve(args) = Cli::try_parse_from(argv).unwrap().command else {
            unreachable!("parsed `serve`")
        };
        let c = resolve_config(args)?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn retention_and_quotas_come_from_the_file_and_are_checked() {
        let c = config_from("[retention]\npreview_days = 3\n[quotas]\nprojects = 2\n").unwrap();
        assert_eq!((c.retention.preview_days, c.quotas.projects), (3, 2));
        assert_eq!(
            c.retention.production_keep, 20,
            "a missing key keeps its default"
        );
        let e = config_from("[retention]\nevery = \"0s\"\n").unwrap_err();
        assert!(e.to_string().contains("at least one second"), "{e}");
    }
}
