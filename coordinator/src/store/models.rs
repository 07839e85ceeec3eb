//! Rows as the rest of the coordinator sees them.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub production_deployment: Option<String>,
    pub team_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentStatus {
    /// Manifest accepted, blobs being uploaded.
    Uploading,
    Ready,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Production,
    Preview,
}

macro_rules! str_enum {
    ($t:ty { $($v:ident => $s:literal),* }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($s => Ok(Self::$v),)* other => Err(format!("unknown {} {other:?}", stringify!($t))) }
            }
        }
    };
}
str_enum!(DeploymentStatus { Uploading => "uploading", Ready => "ready" });
str_enum!(Target { Production => "production", Preview => "preview" });
str_enum!(BuildStatus { Queued => "queued", Building => "building", Ready => "ready", Error => "error", Canceled => "canceled" });
str_enum!(BuildTrigger { Push => "push", Api => "api", Redeploy => "redeploy" });

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct Deployment {
    pub id: String,
    pub project_id: String,
    pub bundle_id: String,
    pub status: DeploymentStatus,
    pub target: Target,
    pub created_at: i64,
    pub ready_at: Option<i64>,
    pub promoted_at: Option<i64>,
    /// Set for deployments built from git.
    pub git: Option<GitMeta>,
}

/// Which commit a deployment or build is made of.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct GitMeta {
    pub branch: String,
    pub commit_sha: Option<String>,
    pub commit_message: Option<String>,
    pub commit_author: Option<String>,
}

/// A project's repository connection.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct GitSettings {
    pub url: String,
    /// The production branch; pushes to any other branch make previews.
    pub branch: String,
    pub root_dir: Option<String>,
    pub install_command: Option<String>,
    pub build_command: Option<String>,
    pub output_dir: Option<String>,
    /// Promote production-branch builds once ready.
    pub auto_promote: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    Queued,
    Building,
    Ready,
    Error,
    Canceled,
}

impl BuildStatus {
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Ready | Self::Error | Self::Canceled)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BuildTrigger {
    Push,
    Api,
    Redeploy,
}

/// A queued, running or finished build; a ready build's deployment has
/// the same id.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct Build {
    pub id: String,
    pub project_id: String,
    pub status: BuildStatus,
    pub target: Target,
    pub git: GitMeta,
    pub trigger: BuildTrigger,
    pub attempts: i64,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct BuildLogLine {
    pub seq: i64,
    pub ts: i64,
    /// `system`, `stdout` or `stderr`.
    pub stream: String,
    pub line: String,
}

pub struct BundleRow {
    pub id: String,
    pub manifest: Vec<u8>,
    pub file_count: i64,
    pub total_size: i64,
}

pub struct LiveDeployment {
    pub id: String,
    pub target: Target,
    pub bundle_id: String,
    pub project: String,
    pub is_production: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub region: String,
    #[serde(skip)]
    pub cert_fingerprint: String,
    pub software_version: String,
    pub config_version: i64,
    pub bundles_present: i64,
    pub bundles_pending: i64,
    pub http_addr: Option<String>,
    pub https_addr: Option<String>,
    pub mesh_addr: Option<String>,
    pub created_at: i64,
    pub last_seen: Option<i64>,
    /// When its current certificate ends (Unix seconds); it renews it
    /// itself with a third of its lifetime left.
    pub cert_not_after: Option<i64>,
    /// The host's memory in use and in all, and its data disk's, in bytes,
    /// as last reported (0 before the first report).
    pub memory_used: i64,
    pub memory_total: i64,
    pub disk_used: i64,
    pub disk_total: i64,
}

pub struct NodeContact {
    pub software_version: String,
    pub config_version: i64,
    pub bundles_present: i64,
    pub bundles_pending: i64,
    pub http_addr: Option<String>,
    pub https_addr: Option<String>,
    pub mesh_addr: Option<String>,
    /// The host's memory and the data disk, as last reported.
    pub resources: protocol::errors::Resources,
}

#[derive(Clone)]
pub struct HostCert {
    pub host: String,
    pub chain_pem: String,
    pub key_pem: String,
    pub not_after: i64,
}

/// A stored variable; `value_enc` is set for secrets, `value_plain` otherwise.
#[derive(Debug, Clone)]
pub struct EnvVarRow {
    pub env_kind: String,
    pub name: String,
    pub secret: bool,
    pub value_plain: Option<String>,
    pub value_enc: Option<Vec<u8>>,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct FunctionLogRow {
    pub id: i64,
    pub project: String,
    pub deployment: String,
    pub node: String,
    pub request_id: String,
    pub ts: i64,
    pub stream: String,
    pub line: String,
}

/// Filters for reading function logs.
#[derive(Debug, Default, Clone)]
pub struct LogQuery {
    pub deployment: Option<String>,
    pub request_id: Option<String>,
    pub stream: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Only rows with a larger id (the pagination cursor).
    pub after_id: i64,
    pub limit: i64,
}

// ---- accounts ---------------------------------------------------------------

/// What a team member may do; ordered, so `role >= Role::Member` reads as
/// "may change things".
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Member,
    Owner,
}
str_enum!(Role { Viewer => "viewer", Member => "member", Owner => "owner" });

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub instance_owner: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct Membership {
    pub team: Team,
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct Invitation {
    pub id: String,
    pub team_id: String,
    pub role: Role,
    #[serde(skip)]
    pub token_hash: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
    pub accepted_by: Option<String>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: String,
    pub user_id: String,
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub ip: String,
    pub user_agent: String,
}

/// An API token as stored: never the secret, only its hash.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    #[serde(skip)]
    pub token_hash: String,
    /// `None` only for the first-start admin token before anyone signed up.
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub project_id: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: String,
    pub at: i64,
    pub actor_id: Option<String>,
    pub actor: String,
    pub team_id: Option<String>,
    pub action: String,
    pub target: String,
    pub ip: String,
    pub detail: String,
}
