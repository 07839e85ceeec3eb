//! The overview and a project's tabs, and the forms on them.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use dashboard::model::{
    CustomDomainRow, DeploymentBrief, DeploymentRow, DeploymentsTab, DomainsTab, EnvRow, EnvTab,
    FunctionRow, FunctionsTab, GitForm, Nav, Overview, Pager, ProjectBody, ProjectHeader,
    ProjectRow, SettingsTab, TeamRef,
};
use serde::Deserialize;

use super::{act, render, success, urlencode, NoFields, Post, SignedIn, WebResult};
use crate::app::page::PageQuery;
use crate::app::{self, App};
use crate::store::{Build, BuildStatus, Deployment, Project, Role};

const PAGE: i64 = 25;

#[derive(Deserialize)]
pub struct CursorQuery {
    cursor: Option<String>,
}

pub async fn overview(
    State(state): State<App>,
    signed: SignedIn,
    Query(q): Query<CursorQuery>,
) -> WebResult<Response> {
    let who = &signed.who;
    let after = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 100);
    let items = app::access::visible_projects(&state, who, after, PAGE).await?;
    let teams = app::accounts::my_teams(&state, who).await?;
    let team_name = |id: &str| {
        teams
            .iter()
            .find(|t| t.id == id)
            .map(|t| t.name.clone())
            .unwrap_or_default()
    };
    let mut rows = Vec::new();
    for p in &items {
        let last =
            app::projects::latest_activity(&state, p)
                .await?
                .map(|(id, status, created_at)| DeploymentBrief {
                    id,
                    status,
                    created_at,
                });
        let git = app::git::repository_url(&state, p).await?;
        rows.push(ProjectRow {
            name: p.name.clone(),
            team: team_name(&p.team_id),
            production_url: p
                .production_deployment
                .as_ref()
                .map(|_| state.production_url(&p.name)),
            last_deployment: last,
            git_repo: git.map(|u| builder::git::redact_url(&u)),
        });
    }
    let next = (items.len() as i64 == PAGE)
        .then(|| format!("/?cursor={}", urlencode(&items.last().unwrap().name)));
    let overview = Overview {
        projects: rows,
        teams: teams
            .iter()
            .filter(|t| t.role >= Role::Member)
            .map(|t| TeamRef {
                id: t.id.clone(),
                name: t.name.clone(),
                role: t.role.as_str().into(),
            })
            .collect(),
        pager: Pager {
            prev: after.map(|_| "/".to_string()),
            next,
        },
        error: None,
    };
    let html = dashboard::overview(&signed.page("Projects", Nav::Projects), &overview);
    Ok(render(&signed, html))
}

pub fn build_status(s: BuildStatus) -> &'static str {
    app::builds::status_label(s)
}

#[derive(Deserialize)]
pub struct CreateProjectPost {
    name: String,
    #[serde(default)]
    team: String,
}

pub async fn create(
    State(state): State<App>,
    Post { signed, form: f }: Post<CreateProjectPost>,
) -> WebResult<Response> {
    let name = f.name.trim().to_string();
    let team = Some(f.team).filter(|t| !t.is_empty());
    let new = app::projects::NewProject {
        name: &name,
        team: team.as_deref(),
        git: None,
    };
    act(
                "/",
        app::projects::create(&state, &signed.who, new),
        |p| {
            success(&format!("/projects/{}", p.name), format!(
                    "Project {} created. Deploy a folder with the CLI or connect a repository in Settings.",
                    p.name
                ))
        },
    )
    .await
}

/// The project (if the user may see it), its header, and their role.
pub(super) async fn header(
    state: &App,
    signed: &SignedIn,
    name: &str,
) -> WebResult<(Project, ProjectHeader)> {
    let p = app::access::project(state, &signed.who, name, Role::Viewer).await?;
    let team = app::accounts::team_name(state, &p.team_id).await?;
    let has_git = app::git::repository_url(state, &p).await?.is_some();
    let h = ProjectHeader {
        name: p.name.clone(),
        team,
        production_url: p
            .production_deployment
            .as_ref()
            .map(|_| state.production_url(&p.name)),
        production_deployment: p.production_deployment.clone(),
        can_write: app::access::can_write(&signed.who, &p),
        can_delete: app::access::can_own(&signed.who, &p),
        has_git,
    };
    Ok((p, h))
}

/// A project page: the header and one tab.
fn tab_page(signed: &SignedIn, h: &ProjectHeader, body: ProjectBody) -> Response {
    let page = signed.page(h.name.clone(), Nav::Projects);
    render(signed, dashboard::project(&page, h, &body))
}

pub fn deployment_row(state: &App, p: &Project, d: &Deployment) -> DeploymentRow {
    let git = d.git.as_ref();
    let is_production = p.production_deployment.as_deref() == Some(d.id.as_str());
    DeploymentRow {
        id: d.id.clone(),
        status: d.status.as_str().into(),
        target: d.target.as_str().into(),
        branch: git.map(|g| g.branch.clone()),
        commit: git.and_then(|g| g.commit_sha.clone()),
        commit_message: git.and_then(|g| g.commit_message.clone()),
        author: git.and_then(|g| g.commit_author.clone()),
        created_at: d.created_at,
        url: state.deployment_url(&p.name, &d.id),
        is_production,
        can_promote: !is_production && d.status == crate::store::DeploymentStatus::Ready,
        can_cancel: false,
        can_redeploy: git.is_some(),
        can_delete: !is_production && d.status != crate::store::DeploymentStatus::Uploading,
    }
}

pub fn build_row(state: &App, p: &Project, b: &Build) -> DeploymentRow {
    DeploymentRow {
        id: b.id.clone(),
        status: build_status(b.status).into(),
        target: b.target.as_str().into(),
        branch: Some(b.git.branch.clone()),
        commit: b.git.commit_sha.clone(),
        commit_message: b.git.commit_message.clone(),
        author: b.git.commit_author.clone(),
        created_at: b.created_at,
        url: state.deployment_url(&p.name, &b.id),
        is_production: false,
        can_promote: false,
        can_cancel: !b.status.is_finished(),
        can_redeploy: b.status.is_finished(),
        can_delete: b.status.is_finished(),
    }
}

pub async fn deployments_tab(
    State(state): State<App>,
    signed: SignedIn,
    Path(name): Path<String>,
    Query(q): Query<CursorQuery>,
) -> WebResult<Response> {
    let (p, h) = header(&state, &signed, &name).await?;
    let page = PageQuery {
        limit: Some(PAGE),
        cursor: q.cursor.clone(),
    };
    let before = page.before()?;
    // Builds that have not become deployments (queued, building, failed,
    // cancelled) are listed with the deployments, newest first.
    let (_, ds) = app::deployments::list(&state, &signed.who, &p.id, before, PAGE).await?;
    let (_, bs) = app::builds::list(&state, &signed.who, &p.id, before, PAGE).await?;
    let mut rows: Vec<DeploymentRow> = ds.iter().map(|d| deployment_row(&state, &p, d)).collect();
    for b in &bs {
        if b.status != BuildStatus::Ready && !ds.iter().any(|d| d.id == b.id) {
            rows.push(build_row(&state, &p, b));
        }
    }
    rows.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    rows.truncate(PAGE as usize);
    let next = (rows.len() as i64 == PAGE).then(|| {
        let last = rows.last().unwrap();
        format!(
            "/projects/{}?cursor={}.{}",
            p.name, last.created_at, last.id
        )
    });
    let can_rollback = app::deployments::previous_production(&state, &p)
        .await?
        .is_some();
    let tab = DeploymentsTab {
        rows,
        pager: Pager {
            prev: q.cursor.as_ref().map(|_| format!("/projects/{}", p.name)),
            next,
        },
        can_rollback,
    };
    Ok(tab_page(&signed, &h, ProjectBody::Deployments(tab)))
}

pub async fn domains_tab(
    State(state): State<App>,
    signed: SignedIn,
    Path(name): Path<String>,
) -> WebResult<Response> {
    let (p, h) = header(&state, &signed, &name).await?;
    let prod = state.config.production_host(&p.name);
    let (_, all) = app::projects::aliases(&state, &signed.who, &p.id).await?;
    let mut aliases: Vec<(String, String)> = all
        .into_iter()
        .filter(|a| a.host != prod)
        .map(|a| (a.host, format!("deployment {}", a.deployment)))
        .collect();
    aliases.sort();
    let custom = app::domains::list(&state, &signed.who, &p.id)
        .await?
        .into_iter()
        .map(|v| {
            let state_word = v.state().to_string();
            let records = v
                .records
                .iter()
                .chain(v.ownership.iter())
                .map(|r| (r.kind.clone(), r.name.clone(), r.value.clone()))
                .collect();
            CustomDomainRow {
                target: match (&v.row.branch, &v.row.redirect_to) {
                    (_, Some(to)) => {
                        format!("redirect {} to {to}", v.row.redirect_status.unwrap_or(308))
                    }
                    (Some(b), _) => format!("branch {b}"),
                    _ => "production".into(),
                },
                cert_state: v.cert_state().to_string(),
                cert_not_after: v.cert.as_ref().and_then(|c| c.not_after).map(|s| s * 1000),
                cert_renew_at: v.cert.as_ref().and_then(|c| c.renew_at),
                cert_error: v.cert.as_ref().and_then(|c| c.error.clone()),
                cert_next_retry: v.cert.as_ref().and_then(|c| c.next_retry()),
                https_redirect: v.row.https_redirect,
                hsts_max_age: v.row.hsts_max_age,
                name: v.row.name,
                state: state_word,
                found: v.row.dns_detail,
                checked_at: v.row.checked_at,
                records,
            }
        })
        .collect();
    let tab = DomainsTab {
        production_host: prod,
        aliases,
        custom,
    };
    Ok(tab_page(&signed, &h, ProjectBody::Domains(tab)))
}

pub async fn env_tab(
    State(state): State<App>,
    signed: SignedIn,
    Path(name): Path<String>,
) -> WebResult<Response> {
    let (p, h) = header(&state, &signed, &name).await?;
    let vars = app::env::list(&state, &signed.who, &p.id)
        .await?
        .into_iter()
        .map(|v| EnvRow {
            name: v.name,
            env: v.env,
            secret: v.secret,
            value: v.value,
            updated_at: v.updated_at,
        })
        .collect();
    let tab = EnvTab {
        vars,
        outbound: app::env::outbound(&state, &signed.who, &p.id).await?,
    };
    Ok(tab_page(&signed, &h, ProjectBody::Env(tab)))
}

#[derive(Deserialize)]
pub struct DomainPost {
    name: String,
    #[serde(default)]
    branch: String,
    #[serde(default)]
    redirect_to: String,
    #[serde(default)]
    redirect_status: Option<u16>,
}

pub async fn add_domain(
    State(state): State<App>,
    Path(project): Path<String>,
    Post { signed, form: f }: Post<DomainPost>,
) -> WebResult<Response> {
    let back = format!("/projects/{}/domains", urlencode(&project));
    let (branch, to) = (f.branch.trim(), f.redirect_to.trim());
    let target = match (branch.is_empty(), to.is_empty()) {
        (true, true) => app::domains::Target::Production,
        (false, _) => app::domains::Target::Branch(branch.to_string()),
        (true, false) => app::domains::Target::Redirect {
            to: to.to_string(),
            status: f.redirect_status.unwrap_or(308),
        },
    };
    act(
        &back,
        app::domains::add(
            &state,
            &signed.who,
            &project,
            &f.name,
            target,
            app::domains::Https {
                redirect: true,
                hsts: None,
            },
        ),
        |d| {
            let next = if d.state() == "active" {
                "It is live."
            } else {
                "Create the DNS records shown to put it live."
            };
            success(&back, format!("{} added. {next}", d.row.name))
        },
    )
    .await
}

pub async fn verify_domain(
    State(state): State<App>,
    Path((project, domain)): Path<(String, String)>,
    Post { signed, .. }: Post<NoFields>,
) -> WebResult<Response> {
    let back = format!("/projects/{}/domains", urlencode(&project));
    act(
        &back,
        app::domains::verify(&state, &signed.who, &domain),
        |d| success(&back, format!("{}: {}.", d.row.name, d.state())),
    )
    .await
}

pub async fn delete_domain(
    State(state): State<App>,
    Path((project, domain)): Path<(String, String)>,
    Post { signed, .. }: Post<NoFields>,
) -> WebResult<Response> {
    let back = format!("/projects/{}/domains", urlencode(&project));
    act(
        &back,
        app::domains::remove(&state, &signed.who, &domain),
        |_| success(&back, format!("{domain} removed.")),
    )
    .await
}

/// The HTTPS settings form: checkboxes are present when ticked; an empty
/// max-age turns HSTS off.
#[derive(Deserialize)]
pub struct HttpsPost {
    #[serde(default)]
    redirect: Option<String>,
    #[serde(default)]
    hsts_max_age: String,
    #[serde(default)]
    hsts_include_subdomains: Option<String>,
    #[serde(default)]
    hsts_preload: Option<String>,
}

pub async fn domain_https(
    State(state): State<App>,
    Path((project, domain)): Path<(String, String)>,
    Post { signed, form: f }: Post<HttpsPost>,
) -> WebResult<Response> {
    let back = format!("/projects/{}/domains", urlencode(&project));
    let max_age = f.hsts_max_age.trim();
    let hsts = if max_age.is_empty() {
        None
    } else {
        match max_age.parse::<u32>() {
            Ok(max_age) => Some(app::domains::HstsPolicy {
                max_age,
                include_subdomains: f.hsts_include_subdomains.is_some(),
                preload: f.hsts_preload.is_some(),
            }),
            Err(_) => {
                return Ok(super::done(
                    &back,
                    super::flash::Flash::error(
                        "HSTS max-age is a number of seconds, or empty for none.",
                    ),
                ))
            }
        }
    };
    act(
        &back,
        app::domains::set_https(
            &state,
            &signed.who,
            &domain,
            Some(f.redirect.is_some()),
            Some(hsts),
        ),
        |d| success(&back, format!("{}: HTTPS settings saved.", d.row.name)),
    )
    .await
}

#[derive(Deserialize)]
pub struct EnvPost {
    name: String,
    value: String,
    env: String,
    #[serde(default)]
    secret: Option<String>,
}

pub async fn set_env(
    State(state): State<App>,
    Path(project): Path<String>,
    Post { signed, form: f }: Post<EnvPost>,
) -> WebResult<Response> {
    let back = format!("/projects/{}/env", urlencode(&project));
    let name = f.name.trim().to_string();
    act(
        &back,
        app::env::set(
            &state,
            &signed.who,
            &project,
            &name,
            &f.value,
            f.secret.is_some(),
            &f.env,
        ),
        |_| {
            success(
                &back,
                format!("{name} saved. New deployments and functions see it."),
            )
        },
    )
    .await
}

pub async fn delete_env(
    State(state): State<App>,
    Path((project, kind, name)): Path<(String, String, String)>,
    Post { signed, .. }: Post<NoFields>,
) -> WebResult<Response> {
    let back = format!("/projects/{}/env", urlencode(&project));
    act(
        &back,
        app::env::delete(&state, &signed.who, &project, &name, Some(&kind)),
        |_| success(&back, format!("{name} deleted.")),
    )
    .await
}

#[derive(Deserialize)]
pub struct OutboundPost {
    #[serde(default)]
    hosts: String,
}

pub async fn set_outbound(
    State(state): State<App>,
    Path(project): Path<String>,
    Post { signed, form: f }: Post<OutboundPost>,
) -> WebResult<Response> {
    let back = format!("/projects/{}/env", urlencode(&project));
    let hosts: Vec<String> = f
        .hosts
        .lines()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect();
    act(
        &back,
        app::env::set_outbound(&state, &signed.who, &project, &hosts),
        |_| success(&back, "Outbound hosts saved."),
    )
    .await
}

pub async fn functions_tab(
    State(state): State<App>,
    signed: SignedIn,
    Path(name): Path<String>,
) -> WebResult<Response> {
    let (p, h) = header(&state, &signed, &name).await?;
    let functions = match &p.production_deployment {
        Some(id) => match app::access::deployment(&state, &signed.who, id, Role::Viewer).await {
            Ok((_, d)) => manifest_functions(&state, &d).await?,
            Err(_) => Vec::new(),
        },
        None => Vec::new(),
    };
    let tab = FunctionsTab { functions };
    Ok(tab_page(&signed, &h, ProjectBody::Functions(tab)))
}

pub async fn manifest_functions(state: &App, d: &Deployment) -> WebResult<Vec<FunctionRow>> {
    Ok(match app::deployments::manifest(state, d).await? {
        Some(m) => m
            .functions
            .iter()
            .map(|(route, f)| FunctionRow {
                route: route.clone(),
                component: format!("{} ({} bytes)", f.component.short(), f.size),
                timeout: format!("{} ms", f.timeout_ms),
                memory: bytesize::ByteSize(f.memory_bytes).to_string(),
            })
            .collect(),
        None => Vec::new(),
    })
}

pub async fn settings_tab(
    State(state): State<App>,
    signed: SignedIn,
    Path(name): Path<String>,
) -> WebResult<Response> {
    let (p, h) = header(&state, &signed, &name).await?;
    let tab = match app::git::show(&state, &signed.who, &p.id).await {
        Ok(v) => SettingsTab {
            git: Some(GitForm {
                url: builder::git::redact_url(&v.settings.url),
                branch: v.settings.branch.clone(),
                root_dir: v.settings.root_dir.clone().unwrap_or_default(),
                install_command: v.settings.install_command.clone().unwrap_or_default(),
                build_command: v.settings.build_command.clone().unwrap_or_default(),
                output_dir: v.settings.output_dir.clone().unwrap_or_default(),
                auto_promote: v.settings.auto_promote,
            }),
            webhook_url: Some(v.webhook_url),
            webhook_secret: Some(v.webhook_secret).filter(|s| !s.is_empty()),
            error: None,
        },
        Err(e) if e.kind == app::ErrorKind::NotFound => SettingsTab::default(),
        Err(e) => return Err(e.into()),
    };
    Ok(tab_page(&signed, &h, ProjectBody::Settings(tab)))
}

#[derive(Deserialize)]
pub struct GitPost {
    url: String,
    #[serde(default)]
    branch: String,
    #[serde(default)]
    root_dir: String,
    #[serde(default)]
    install_command: String,
    #[serde(default)]
    build_command: String,
    #[serde(default)]
    output_dir: String,
    #[serde(default)]
    auto_promote: Option<String>,
}

fn some(s: String) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

pub async fn set_git(
    State(state): State<App>,
    Path(project): Path<String>,
    Post { signed, form: f }: Post<GitPost>,
) -> WebResult<Response> {
    let back = format!("/projects/{}/settings", urlencode(&project));
    let body = app::git::GitInput {
        url: f.url.trim().to_string(),
        branch: some(f.branch).unwrap_or_else(|| "main".into()),
        root_dir: some(f.root_dir),
        install_command: some(f.install_command),
        build_command: some(f.build_command),
        output_dir: some(f.output_dir),
        auto_promote: f.auto_promote.is_some(),
    };
    act(
        &back,
        app::git::connect(&state, &signed.who, &project, &body),
        |_| {
            success(
                &back,
                "Repository connected. Add the webhook below to deploy on every push.",
            )
        },
    )
    .await
}

pub async fn delete_git(
    State(state): State<App>,
    Path(project): Path<String>,
    Post { signed, .. }: Post<NoFields>,
) -> WebResult<Response> {
    let back = format!("/projects/{}/settings", urlencode(&project));
    act(
        &back,
        app::git::disconnect(&state, &signed.who, &project),
        |_| success(&back, "Repository disconnected."),
    )
    .await
}

pub async fn deploy(
    State(state): State<App>,
    Path(project): Path<String>,
    Post { signed, .. }: Post<NoFields>,
) -> WebResult<Response> {
    let back = format!("/projects/{}", urlencode(&project));
    act(
        &back,
        app::builds::queue(&state, &signed.who, &project, None, None),
        |(_, b)| {
            success(
                &format!("/deployments/{}", b.id),
                "Build queued. The log below follows it live.",
            )
        },
    )
    .await
}

pub async fn rollback(
    State(state): State<App>,
    Path(project): Path<String>,
    Post { signed, .. }: Post<NoFields>,
) -> WebResult<Response> {
    let back = format!("/projects/{}", urlencode(&project));
    act(
        &back,
        app::deployments::rollback(&state, &signed.who, &project),
        |(_, d)| {
            success(
                &back,
                format!("Rolled back: production now serves {}.", d.id),
            )
        },
    )
    .await
}

#[derive(Deserialize)]
pub struct DeleteProjectPost {
    /// The project's name, typed again.
    #[serde(default)]
    confirm: String,
}

pub async fn delete_project(
    State(state): State<App>,
    Path(project): Path<String>,
    Post { signed, form }: Post<DeleteProjectPost>,
) -> WebResult<Response> {
    let back = format!("/projects/{}/settings", urlencode(&project));
    if form.confirm.trim() != project {
        return Ok(super::done(
            &back,
            super::Flash::error("The name you typed is not this project's: nothing was deleted."),
        ));
    }
    act(
        &back,
        app::projects::delete(&state, &signed.who, &project),
        |n| {
            success(
                "/",
                format!("Deleted {project} and its {n} deployments. The name is free again."),
            )
        },
    )
    .await
}
