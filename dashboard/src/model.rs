//! What each page shows: plain data the coordinator fills in. Nothing here
//! does I/O; timestamps are unix milliseconds and `Page::now_ms` is "now",
//! so rendering is a pure function of its input.

/// Shared by every page: who is signed in, the CSRF token every form
/// carries, a one-shot message, and the clock.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub title: String,
    pub user: Option<UserNav>,
    /// Goes into a hidden `csrf` field of every POST form.
    pub csrf: String,
    pub flash: Option<Flash>,
    /// Which top-level nav entry is highlighted.
    pub nav: Nav,
    pub now_ms: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Nav {
    #[default]
    Projects,
    Nodes,
    Tokens,
    Team,
    Audit,
    Account,
    None,
}

#[derive(Debug, Clone)]
pub struct UserNav {
    pub email: String,
    pub name: String,
    /// The instance owner also sees the join-token form on the nodes page.
    pub instance_owner: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    Info,
    Success,
    Error,
}

#[derive(Debug, Clone)]
pub struct Flash {
    pub kind: FlashKind,
    pub message: String,
}

/// `?cursor=` links for long lists; `None` hides the button.
#[derive(Debug, Clone, Default)]
pub struct Pager {
    pub prev: Option<String>,
    pub next: Option<String>,
}

// ---- auth pages -------------------------------------------------------------

#[derive(Debug, Clone, Default)]
pub struct LoginForm {
    pub email: String,
    pub error: Option<String>,
    /// Where to go after signing in (a local path).
    pub next: String,
    pub signup_open: bool,
}

#[derive(Debug, Clone, Default)]
pub struct SignupForm {
    pub email: String,
    pub name: String,
    pub error: Option<String>,
    /// Open signup is off and this is not the first account: show why.
    pub closed: bool,
    /// Nobody has signed up yet: this account will own the instance.
    pub first_account: bool,
    /// Signing up through an invitation link (token carried in a hidden field).
    pub invite: Option<InviteSummary>,
    /// The setup token from the first-start link, for the first account.
    pub setup_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct InviteSummary {
    pub token: String,
    pub team: String,
    pub role: String,
    pub invited_by: String,
}

/// `GET /invite/{token}` for a signed-in user: accept into the team.
#[derive(Debug, Clone)]
pub struct InvitePage {
    pub invite: Option<InviteSummary>,
    /// Expired, used or unknown: a sentence saying which.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct AccountPage {
    pub email: String,
    pub name: String,
    pub created_at: i64,
    pub error: Option<String>,
    pub teams: Vec<TeamRef>,
}

// ---- projects ---------------------------------------------------------------

#[derive(Debug, Clone, Default)]
pub struct TeamRef {
    pub id: String,
    pub name: String,
    pub role: String,
}

#[derive(Debug, Clone)]
pub struct Overview {
    pub projects: Vec<ProjectRow>,
    /// Teams the user may create projects in (role owner or member).
    pub teams: Vec<TeamRef>,
    pub pager: Pager,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ProjectRow {
    pub name: String,
    pub team: String,
    pub production_url: Option<String>,
    pub last_deployment: Option<DeploymentBrief>,
    pub git_repo: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DeploymentBrief {
    pub id: String,
    pub status: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProjectTab {
    #[default]
    Deployments,
    Domains,
    Env,
    Functions,
    Analytics,
    Errors,
    Alerts,
    Settings,
}

#[derive(Debug, Clone)]
pub struct ProjectHeader {
    pub name: String,
    pub team: String,
    pub production_url: Option<String>,
    pub production_deployment: Option<String>,
    /// owner or member: show the buttons that change things.
    pub can_write: bool,
    /// owner: offer to delete the project.
    pub can_delete: bool,
    /// A repository is connected: show "Deploy now".
    pub has_git: bool,
}

#[derive(Debug, Clone)]
pub struct DeploymentsTab {
    pub rows: Vec<DeploymentRow>,
    pub pager: Pager,
    /// A previous production deployment exists: offer "Roll back".
    pub can_rollback: bool,
}

#[derive(Debug, Clone)]
pub struct DeploymentRow {
    pub id: String,
    /// queued, building, ready, failed, cancelled, …
    pub status: String,
    pub target: String,
    pub branch: Option<String>,
    pub commit: Option<String>,
    pub commit_message: Option<String>,
    pub author: Option<String>,
    pub created_at: i64,
    pub url: String,
    pub is_production: bool,
    pub can_promote: bool,
    pub can_cancel: bool,
    pub can_redeploy: bool,
    /// Not production, not a build still running.
    pub can_delete: bool,
}

#[derive(Debug, Clone)]
pub struct DomainsTab {
    pub production_host: String,
    /// `(host, what it points at)`, e.g. branch aliases.
    pub aliases: Vec<(String, String)>,
    /// The project's custom domains.
    pub custom: Vec<CustomDomainRow>,
}

#[derive(Debug, Clone)]
pub struct CustomDomainRow {
    pub name: String,
    /// `production` or `branch <name>`.
    pub target: String,
    /// `pending`, `ownership`, `misconfigured` or `active`.
    pub state: String,
    /// What the last check found when it pointed elsewhere.
    pub found: Option<String>,
    pub checked_at: Option<i64>,
    /// `(type, name, value)` of the records to create (the ownership TXT
    /// record among them when it is required).
    pub records: Vec<(String, String, String)>,
    /// The certificate: `none`, `waiting`, `pending`, `issuing`, `active`,
    /// `renewing` or `failed`.
    pub cert_state: String,
    /// Unix ms: the held certificate's end, and when it is renewed.
    pub cert_not_after: Option<i64>,
    pub cert_renew_at: Option<i64>,
    /// The CA's problem of the last failure, and the next try (Unix ms).
    pub cert_error: Option<String>,
    pub cert_next_retry: Option<i64>,
    /// Plain HTTP redirects to HTTPS; the HSTS max-age when sent.
    pub https_redirect: bool,
    pub hsts_max_age: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct EnvTab {
    pub vars: Vec<EnvRow>,
    pub outbound: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct EnvRow {
    pub name: String,
    /// production or preview
    pub env: String,
    pub secret: bool,
    /// `None` for secrets: they are never shown again.
    pub value: Option<String>,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct FunctionsTab {
    /// From the production deployment's bundle.
    pub functions: Vec<FunctionRow>,
}

#[derive(Debug, Clone)]
pub struct FunctionRow {
    pub route: String,
    pub component: String,
    pub timeout: String,
    pub memory: String,
}

#[derive(Debug, Clone, Default)]
pub struct SettingsTab {
    pub git: Option<GitForm>,
    /// Shown after connecting; `None` when no repository is connected.
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct GitForm {
    pub url: String,
    pub branch: String,
    pub root_dir: String,
    pub install_command: String,
    pub build_command: String,
    pub output_dir: String,
    pub auto_promote: bool,
}

#[derive(Debug, Clone)]
pub enum ProjectBody {
    Deployments(DeploymentsTab),
    Domains(DomainsTab),
    Env(EnvTab),
    Functions(FunctionsTab),
    Settings(SettingsTab),
}

// ---- project analytics --------------------------------------------------------

/// `GET /projects/{name}/analytics`: traffic of one project over a range,
/// rendered by `dashboard::analytics` with the project's header. The
/// handler has already aggregated everything; the page only draws it.
#[derive(Debug, Clone)]
pub struct AnalyticsTab {
    pub range: AnalyticsRange,
    /// The width of one point of `series`.
    pub granularity: Granularity,
    pub filter: Option<AnalyticsFilter>,
    /// `(id, label)` of the deployments the filter offers, newest first.
    pub deployments: Vec<(String, String)>,
    /// The environments the filter offers: `production`, `preview`.
    pub environments: Vec<String>,
    pub totals: AnalyticsTotals,
    /// One point per `granularity`, oldest first.
    pub series: Vec<SeriesPoint>,
    pub top: TopLists,
    /// A GeoIP database is configured; without one `top.countries` stays
    /// empty and the page says how to get countries.
    pub geoip: bool,
    /// Traffic per edge node; the page sums it per region.
    pub nodes: Vec<NodeTraffic>,
    pub functions: Vec<FunctionStats>,
}

/// `range=1h|24h|7d|30d|custom` (with `from`/`to`) in the query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnalyticsRange {
    Hour,
    #[default]
    Day,
    Week,
    Month,
    /// Unix ms, `from` inclusive, `to` exclusive.
    Custom {
        from_ms: i64,
        to_ms: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Granularity {
    Minute,
    #[default]
    Hour,
    Day,
}

/// `env=` or `deployment=` in the query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnalyticsFilter {
    /// `production` or `preview`.
    Environment(String),
    Deployment(String),
}

#[derive(Debug, Clone, Default)]
pub struct AnalyticsTotals {
    pub requests: u64,
    pub page_views: u64,
    /// Distinct visitors over the whole range.
    pub visitors: u64,
    /// Requests from user agents known to be bots (not in `page_views`).
    pub bots: u64,
    /// Response bytes sent.
    pub bytes: u64,
    pub status: StatusClasses,
    /// `(status code, requests)`, most frequent first.
    pub status_codes: Vec<(u16, u64)>,
    /// Response time; `None` when nothing was measured.
    pub latency: Option<Percentiles>,
    pub encodings: Encodings,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct StatusClasses {
    pub s2xx: u64,
    pub s3xx: u64,
    pub s4xx: u64,
    pub s5xx: u64,
}

/// Milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// How static files went out: precompressed brotli or gzip, or as stored.
#[derive(Debug, Clone, Copy, Default)]
pub struct Encodings {
    pub br: u64,
    pub gzip: u64,
    pub identity: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SeriesPoint {
    /// Start of the bucket (Unix ms).
    pub t_ms: i64,
    pub requests: u64,
    pub page_views: u64,
    pub visitors: u64,
    pub bytes: u64,
}

/// `(key, count)`, largest first; keys are paths, referrers, user agents'
/// names: all of them chosen by visitors, so never trusted as markup.
#[derive(Debug, Clone, Default)]
pub struct TopLists {
    pub pages: Vec<(String, u64)>,
    /// Paths answered 404 ("resources not found").
    pub not_found: Vec<(String, u64)>,
    pub referrers: Vec<(String, u64)>,
    pub countries: Vec<(String, u64)>,
    pub browsers: Vec<(String, u64)>,
    pub os: Vec<(String, u64)>,
    pub devices: Vec<(String, u64)>,
}

#[derive(Debug, Clone)]
pub struct NodeTraffic {
    pub node: String,
    pub region: String,
    pub requests: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub struct FunctionStats {
    pub route: String,
    pub invocations: u64,
    pub errors: u64,
    pub timeouts: u64,
    /// Invocations stopped at the memory limit.
    pub memory_limit: u64,
    /// Duration; `None` without invocations.
    pub latency: Option<Percentiles>,
}

// ---- project errors ------------------------------------------------------------

/// `GET /projects/{name}/errors`: the project's error issues, grouped
/// failures of its functions, builds, deploys and certificates.
#[derive(Debug, Clone, Default)]
pub struct ErrorsTab {
    /// The `state=` filter: `open`, `all`, `resolved`, `ignored` or
    /// `regressed`.
    pub filter: String,
    pub issues: Vec<IssueRow>,
    /// The list stopped at its limit: older issues are not shown.
    pub truncated: bool,
}

#[derive(Debug, Clone, Default)]
pub struct IssueRow {
    pub id: String,
    /// `function`, `build`, `deploy` or `certificate`.
    pub source: String,
    pub kind: String,
    pub title: String,
    /// Where it happened: a route and the top frame, a branch, a domain.
    pub culprit: String,
    /// `critical`, `high`, `medium` or `low`.
    pub severity: String,
    /// `unresolved`, `resolved`, `ignored` or `regressed`.
    pub state: String,
    pub count: u64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub resolved_at: Option<i64>,
    /// Events per hour over the last 24 hours, oldest first.
    pub trend: Vec<u64>,
}

/// `GET /projects/{name}/errors/{id}`: one issue, its newest sample and
/// where it was seen.
#[derive(Debug, Clone, Default)]
pub struct IssuePage {
    pub issue: IssueRow,
    pub message: Option<String>,
    /// The guest's backtrace, innermost first.
    pub frames: Vec<String>,
    /// The request that failed, for a function's error.
    pub request: Option<SampleRequest>,
    /// The function's last lines of stderr.
    pub stderr: Vec<String>,
    /// Other facts of the sample (`build`, `branch`, `domain`, …): label
    /// and value; the page links a build to its deployment page.
    pub details: Vec<(String, String)>,
    pub deployments: Vec<IssueDeploymentRow>,
    /// The newest events, newest first.
    pub events: Vec<IssueEventRow>,
}

#[derive(Debug, Clone, Default)]
pub struct SampleRequest {
    pub method: Option<String>,
    pub path: Option<String>,
    pub status: Option<u16>,
    pub request_id: Option<String>,
    pub node: Option<String>,
}

#[derive(Debug, Clone)]
pub struct IssueDeploymentRow {
    pub deployment: String,
    pub count: u64,
    pub last_seen: i64,
}

#[derive(Debug, Clone)]
pub struct IssueEventRow {
    pub at: i64,
    pub deployment: Option<String>,
    /// Failures this event stands for (an edge folds repeats).
    pub count: u64,
    pub request_id: Option<String>,
    /// One line about it: `GET /api/x → 500 on fra-1`, a build id, …
    pub summary: String,
}

// ---- alerts ---------------------------------------------------------------------

/// `GET /projects/{name}/alerts`: the project's alert rules. Rules
/// notify channels of the project's team; those are managed on the team
/// page, as every project of the team shares them.
#[derive(Debug, Clone, Default)]
pub struct AlertsTab {
    pub rules: Vec<RuleRow>,
    /// The kinds a project's rule may take.
    pub kinds: Vec<RuleKind>,
    /// The project's team, whose page manages the channels.
    pub team: TeamRef,
    /// `(id, label)` of the team's channels, for the rule form.
    pub channels: Vec<(String, String)>,
}

/// A preset alert type and what its threshold means.
#[derive(Debug, Clone)]
pub struct RuleKind {
    /// `error_rate`, `function_error`, … (the form's value).
    pub key: String,
    /// `>` or `<`.
    pub condition: String,
    /// What the threshold counts: `% of requests`, `errors`, `days left`…
    pub unit: String,
    pub default_threshold: f64,
    /// humantime (`5m`); `None` for gauges, which read the newest value.
    pub default_window: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RuleRow {
    pub id: String,
    pub kind: String,
    pub condition: String,
    pub threshold: f64,
    pub unit: String,
    /// humantime, e.g. `5m`.
    pub window: String,
    pub for_: String,
    /// The names of the channels it notifies.
    pub channels: Vec<String>,
    pub enabled: bool,
    pub created_at: i64,
    /// Each watched series (a project, a node, a domain) and its state.
    pub alerts: Vec<AlertRow>,
}

impl RuleRow {
    /// Some series is firing: the row is highlighted.
    pub fn firing(&self) -> bool {
        self.alerts.iter().any(|a| a.state == "firing")
    }
}

#[derive(Debug, Clone)]
pub struct AlertRow {
    pub series: String,
    /// `pending`, `firing` or `resolved`.
    pub state: String,
    pub value: f64,
    pub since: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct ChannelRow {
    pub id: String,
    /// `webhook`, `slack` or `email`.
    pub kind: String,
    pub name: String,
    /// The URL or address (a Slack URL's secret path is not shown).
    pub target: String,
    /// Webhook deliveries are signed.
    pub signed: bool,
    pub created_at: i64,
    /// The newest deliveries, newest first.
    pub deliveries: Vec<DeliveryRow>,
}

#[derive(Debug, Clone)]
pub struct DeliveryRow {
    /// `pending`, `sent` or `failed`.
    pub status: String,
    /// The rule it told about, by kind; `None`: a test message.
    pub rule: Option<String>,
    pub attempts: i64,
    /// The receiver's HTTP status (SMTP reply code for e-mail).
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub next_at: i64,
    pub sent_at: Option<i64>,
}

// ---- deployment ---------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct DeploymentPage {
    pub project: String,
    pub row: DeploymentRow,
    /// `(label, at)` in order: created, build started, ready/failed, promoted.
    pub timeline: Vec<(String, i64)>,
    /// The build log so far; the page then follows `events_url` (SSE,
    /// events `log` with JSON `{seq, ts, stream, line}` and a final `status`
    /// with JSON `{status, error}`), appending lines and scrolling.
    pub log: Vec<LogLine>,
    pub has_build: bool,
    pub events_url: String,
    pub files: Vec<FileRow>,
    pub files_total: usize,
    pub functions: Vec<FunctionRow>,
}

#[derive(Debug, Clone)]
pub struct LogLine {
    pub seq: i64,
    pub ts: i64,
    pub stream: String,
    pub line: String,
}

#[derive(Debug, Clone)]
pub struct FileRow {
    pub path: String,
    pub size: u64,
    pub content_type: String,
}

// ---- nodes ------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct NodesPage {
    pub regions: Vec<RegionGroup>,
    pub current_config_version: i64,
    /// Shown once, right after the instance owner created a join token.
    pub new_join_token: Option<String>,
    /// The instance-wide alert rules (instance owners only; `None` hides
    /// the section).
    pub alerts: Option<InstanceAlerts>,
}

/// Alert rules that watch the instance rather than one project (memory
/// and disks of the nodes, the cluster's certificates).
#[derive(Debug, Clone, Default)]
pub struct InstanceAlerts {
    pub rules: Vec<RuleRow>,
    /// The kinds an instance rule may take.
    pub kinds: Vec<RuleKind>,
    /// `(id, label)` of every channel the owner may notify.
    pub channels: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct RegionGroup {
    pub region: String,
    pub nodes: Vec<NodeRow>,
}

#[derive(Debug, Clone)]
pub struct NodeRow {
    pub id: String,
    pub name: String,
    /// alive, suspect, down or unknown
    pub state: String,
    pub version: String,
    pub config_version: i64,
    pub bundles_present: i64,
    pub bundles_pending: i64,
    pub last_seen: Option<i64>,
    pub addr: Option<String>,
    /// When its certificate ends (Unix seconds); it renews it itself.
    pub cert_not_after: Option<i64>,
    /// Requests per second it served over the last few closed minutes
    /// (from analytics); `None` when it has sent none.
    pub requests_per_sec: Option<f64>,
}

// ---- tokens, team, audit -----------------------------------------------------

#[derive(Debug, Clone)]
pub struct TokensPage {
    pub tokens: Vec<TokenRow>,
    /// Shown once, right after creation.
    pub new_token: Option<String>,
    /// `(value, label)` choices for the scope select: `all`, `team:<id>`, `project:<id>`.
    pub scopes: Vec<(String, String)>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct TeamPage {
    pub team: TeamRef,
    /// Every team of the user, for the switcher.
    pub teams: Vec<TeamRef>,
    pub members: Vec<MemberRow>,
    pub invitations: Vec<InvitationRow>,
    /// Shown once, right after creating an invitation.
    pub new_invite_url: Option<String>,
    pub is_owner: bool,
    pub error: Option<String>,
    /// Where the team's alerts go, each with its newest deliveries.
    pub channels: Vec<ChannelRow>,
    /// Shown once, right after a webhook channel was added: its name and
    /// signing secret.
    pub new_channel_secret: Option<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct MemberRow {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub joined_at: i64,
    pub is_self: bool,
}

#[derive(Debug, Clone)]
pub struct InvitationRow {
    pub id: String,
    pub role: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
pub struct AuditPage {
    pub events: Vec<AuditRow>,
    pub pager: Pager,
    pub teams: Vec<TeamRef>,
    pub team: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub ip: String,
    pub team: String,
}

#[derive(Debug, Clone)]
pub struct ErrorPage {
    pub status: u16,
    pub heading: String,
    pub message: String,
}
