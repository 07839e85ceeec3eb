//! What the API answers, as types: the server serialises them, the CLI
//! deserialises the same types, and the OpenAPI document describes them
//! (`#[derive(ToSchema)]`), so the three cannot drift apart.

use protocol::BlobHash;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::store::{
    Build, BuildLogLine, BuildStatus, Deployment, FunctionLogRow, GitSettings, Project,
};

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectView {
    #[serde(flatten)]
    pub project: Project,
    pub production_url: String,
}

impl ProjectView {
    pub fn of(app: &App, p: Project) -> Self {
        ProjectView {
            production_url: app.production_url(&p.name),
            project: p,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeploymentView {
    #[serde(flatten)]
    pub deployment: Deployment,
    pub project: String,
    pub url: String,
    pub production_url: Option<String>,
    pub is_production: bool,
}

impl DeploymentView {
    pub fn of(app: &App, p: &Project, d: Deployment) -> Self {
        let is_production = p.production_deployment.as_deref() == Some(d.id.as_str());
        DeploymentView {
            url: app.deployment_url(&p.name, &d.id),
            production_url: is_production.then(|| app.production_url(&p.name)),
            is_production,
            project: p.name.clone(),
            deployment: d,
        }
    }
}

/// The answer to creating a deployment.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Staged {
    pub deployment: DeploymentView,
    /// Blobs the coordinator lacks: upload these, then finalize.
    #[schema(value_type = Vec<String>)]
    pub missing: Vec<BlobHash>,
    pub blob_count: usize,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Missing {
    #[schema(value_type = Vec<String>)]
    pub missing: Vec<BlobHash>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BuildView {
    #[serde(flatten)]
    pub build: Build,
    pub project: String,
    /// The deployment's own URL once the build is ready.
    pub url: String,
    /// The branch's stable preview URL.
    pub branch_url: String,
}

impl BuildView {
    pub fn of(app: &App, p: &Project, b: Build) -> Self {
        BuildView {
            url: app.deployment_url(&p.name, &b.id),
            branch_url: app.branch_url(&p.name, &b.git.branch),
            project: p.name.clone(),
            build: b,
        }
    }
}

/// `GET /deployments/{id}`: a deployment, or while a build has not made
/// it yet, the build with the same id.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum DeploymentOrBuild {
    Deployment(DeploymentView),
    Build(BuildView),
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BuildLogPage {
    pub items: Vec<BuildLogLine>,
    /// The build's status now; when it has ended and `items` is short,
    /// the log is complete.
    pub status: BuildStatus,
    pub next_after: i64,
}

/// A project's traffic analytics for a range: totals (`requests`,
/// `page_views`, `visitors`, `bots`, `bytes`, `status`, `status_classes`,
/// `duration_ms`, `precompressed`), the `series` per bucket, `top` lists,
/// `nodes` and `regions`, `functions` per route, and `result` when the
/// query names a metric. See docs/analytics.md.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct AnalyticsView(pub analytics::query::Report);

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FunctionLogPage {
    pub items: Vec<FunctionLogRow>,
    /// Pass back to get what came after; present even at the end, so a
    /// follower can poll with it.
    pub next_cursor: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EnvVarView {
    pub name: String,
    pub env: String,
    pub secret: bool,
    /// Absent for secrets: once set, a secret is never shown again.
    pub value: Option<String>,
    pub updated_at: i64,
}

impl From<crate::app::env::VarView> for EnvVarView {
    fn from(v: crate::app::env::VarView) -> Self {
        EnvVarView {
            name: v.name,
            env: v.env,
            secret: v.secret,
            value: v.value,
            updated_at: v.updated_at,
        }
    }
}

/// The answer to setting a variable: the environments it now has.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VarSet {
    pub name: String,
    pub env: Vec<String>,
    pub secret: bool,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GitView {
    #[serde(flatten)]
    pub settings: GitSettings,
    /// Where GitHub, GitLab or Gitea should POST push events.
    pub webhook_url: String,
    /// The HMAC secret (GitHub, Gitea) or token (GitLab) for that hook;
    /// empty for viewers.
    pub webhook_secret: String,
    /// Credentials for the repository are stored (given once in the URL;
    /// never shown).
    pub has_credentials: bool,
}

impl From<crate::app::git::Connection> for GitView {
    fn from(c: crate::app::git::Connection) -> Self {
        GitView {
            settings: c.settings,
            webhook_url: c.webhook_url,
            webhook_secret: c.webhook_secret,
            has_credentials: c.has_credentials,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alias {
    pub host: String,
    pub url: String,
    pub deployment: String,
    pub kind: String,
}

/// The caller: user, scope and teams.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Me {
    pub user: Option<crate::store::User>,
    pub instance_owner: bool,
    pub scope: String,
    pub teams: Vec<crate::app::accounts::TeamView>,
}

/// A session just opened: its user and the CSRF token cookie-authenticated
/// writes must send.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionOpened {
    pub user: crate::store::User,
    pub csrf: String,
}

/// What a push webhook did.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum HookAnswer {
    Queued {
        queued: String,
        branch: String,
        target: crate::store::Target,
    },
    BranchDeleted {
        branch_deleted: String,
        alias_removed: bool,
    },
    Pong {
        pong: bool,
    },
    Ignored {
        ignored: String,
    },
}
