//! Representative view models, with hostile strings wherever a user or a
//! build controls the text.

use crate::model::*;

pub const CSRF: &str = "csrf-7f3a9c";
pub const XSS: &str = "<script>alert(1)</script>";
pub const SECRET_VALUE: &str = "sk_live_TOP_SECRET_value";
/// 2024-05-01 12:00:00 UTC
pub const NOW: i64 = 1_714_564_800_000;
const MIN: i64 = 60_000;

pub fn page(nav: Nav) -> Page {
    Page {
        title: format!("Title {XSS}"),
        user: Some(UserNav {
            email: "ada@example.com".into(),
            name: "Ada".into(),
            instance_owner: true,
        }),
        csrf: CSRF.into(),
        flash: Some(Flash {
            kind: FlashKind::Success,
            message: format!("Saved {XSS}"),
        }),
        nav,
        now_ms: NOW,
    }
}

pub fn anonymous() -> Page {
    Page {
        user: None,
        flash: None,
        ..page(Nav::None)
    }
}

pub fn team_ref(id: &str) -> TeamRef {
    TeamRef {
        id: id.into(),
        name: format!("Team {XSS}"),
        role: "owner".into(),
    }
}

pub fn invite_summary() -> InviteSummary {
    InviteSummary {
        token: "inv-token-1".into(),
        team: XSS.into(),
        role: "member".into(),
        invited_by: XSS.into(),
    }
}

pub fn header(can_write: bool) -> ProjectHeader {
    ProjectHeader {
        name: XSS.into(),
        team: XSS.into(),
        production_url: Some("https://blog.example.com".into()),
        production_deployment: Some("dep1234567".into()),
        can_write,
        can_delete: can_write,
        has_git: true,
    }
}

pub fn deployment_row(status: &str) -> DeploymentRow {
    DeploymentRow {
        id: "dep1234567".into(),
        status: status.into(),
        target: "production".into(),
        branch: Some(format!("feat/{XSS}")),
        commit: Some("0123456789abcdef".into()),
        commit_message: Some(XSS.into()),
        author: Some(XSS.into()),
        created_at: NOW - 3 * MIN,
        url: "https://dep1234567.example.com".into(),
        is_production: true,
        can_promote: true,
        can_cancel: true,
        can_redeploy: true,
        can_delete: true,
    }
}

pub fn function_row() -> FunctionRow {
    FunctionRow {
        route: format!("/api/{XSS}"),
        component: "functions/users.wasm".into(),
        timeout: "10s".into(),
        memory: "128MiB".into(),
    }
}

pub fn overview(full: bool) -> Overview {
    Overview {
        projects: if full {
            vec![
                ProjectRow {
                    name: XSS.into(),
                    team: XSS.into(),
                    production_url: Some("https://blog.example.com".into()),
                    last_deployment: Some(DeploymentBrief {
                        id: "dep1".into(),
                        status: "ready".into(),
                        created_at: NOW - 5 * MIN,
                    }),
                    git_repo: Some(format!("https://git.example.com/{XSS}")),
                },
                ProjectRow {
                    name: "docs".into(),
                    team: "core".into(),
                    production_url: None,
                    last_deployment: None,
                    git_repo: None,
                },
            ]
        } else {
            vec![]
        },
        teams: if full { vec![team_ref("t1")] } else { vec![] },
        pager: if full {
            Pager {
                prev: Some("/?cursor=a".into()),
                next: Some("/?cursor=b".into()),
            }
        } else {
            Pager::default()
        },
        error: full.then(|| format!("Bad name {XSS}")),
    }
}

pub fn bodies(full: bool) -> Vec<ProjectBody> {
    let n = |v: usize| if full { v } else { 0 };
    vec![
        ProjectBody::Deployments(DeploymentsTab {
            rows: (0..n(2))
                .map(|i| {
                    let mut r = deployment_row(if i == 0 { "ready" } else { "failed" });
                    r.id = format!("dep{i}");
                    r
                })
                .collect(),
            pager: Pager::default(),
            can_rollback: full,
        }),
        ProjectBody::Domains(DomainsTab {
            production_host: "blog.example.com".into(),
            aliases: (0..n(1))
                .map(|_| (format!("{XSS}.example.com"), XSS.to_string()))
                .collect(),
            custom: (0..n(2))
                .map(|i| CustomDomainRow {
                    name: format!("www{i}.{XSS}.example"),
                    target: if i == 0 {
                        "production".into()
                    } else {
                        format!("branch {XSS}")
                    },
                    state: if i == 0 {
                        "misconfigured".into()
                    } else {
                        "ownership".into()
                    },
                    found: Some(format!("CNAME {XSS}")),
                    checked_at: (i == 0).then_some(NOW - MIN),
                    records: vec![("CNAME".into(), format!("www{i}.example"), XSS.into())],
                    cert_state: if i == 0 {
                        "failed".into()
                    } else {
                        "active".into()
                    },
                    cert_not_after: Some(NOW + 60 * MIN),
                    cert_renew_at: Some(NOW + 30 * MIN),
                    cert_error: (i == 0).then(|| format!("{{\"detail\": \"{XSS}\"}}")),
                    cert_next_retry: (i == 0).then_some(NOW + MIN),
                    https_redirect: true,
                    hsts_max_age: (i == 1).then_some(300),
                })
                .collect(),
        }),
        ProjectBody::Env(EnvTab {
            vars: if full {
                vec![
                    EnvRow {
                        name: XSS.into(),
                        env: "production".into(),
                        secret: false,
                        value: Some(format!("plain {XSS}")),
                        updated_at: NOW - MIN,
                    },
                    EnvRow {
                        name: "API_KEY".into(),
                        env: "preview".into(),
                        secret: true,
                        value: None,
                        updated_at: NOW - MIN,
                    },
                ]
            } else {
                vec![]
            },
            outbound: (0..n(2)).map(|i| format!("api{i}.example.com")).collect(),
        }),
        ProjectBody::Functions(FunctionsTab {
            functions: (0..n(1)).map(|_| function_row()).collect(),
        }),
        ProjectBody::Settings(SettingsTab {
            git: full.then(|| GitForm {
                url: format!("https://git.example.com/{XSS}.git"),
                branch: "main".into(),
                root_dir: String::new(),
                install_command: XSS.into(),
                build_command: "npm run build".into(),
                output_dir: "dist".into(),
                auto_promote: true,
            }),
            webhook_url: full.then(|| "https://outpost.example.com/hooks/git/blog".into()),
            webhook_secret: full.then(|| "whsec".into()),
            error: full.then(|| XSS.into()),
        }),
    ]
}

pub fn deployment(full: bool, status: &str) -> DeploymentPage {
    DeploymentPage {
        project: XSS.into(),
        row: deployment_row(status),
        timeline: if full {
            vec![
                ("created".into(), NOW - 3 * MIN),
                ("build started".into(), NOW - 2 * MIN),
            ]
        } else {
            vec![]
        },
        log: if full {
            vec![
                LogLine {
                    seq: 1,
                    ts: NOW - 2 * MIN,
                    stream: "stdout".into(),
                    line: "npm ci".into(),
                },
                LogLine {
                    seq: 2,
                    ts: NOW - MIN,
                    stream: "stderr".into(),
                    line: XSS.into(),
                },
            ]
        } else {
            vec![]
        },
        has_build: true,
        events_url: "/deployments/dep1234567/events".into(),
        files: if full {
            vec![FileRow {
                path: format!("/{XSS}.html"),
                size: 1_234_567,
                content_type: "text/html".into(),
            }]
        } else {
            vec![]
        },
        files_total: if full { 12 } else { 0 },
        functions: (0..usize::from(full)).map(|_| function_row()).collect(),
    }
}

pub fn nodes(full: bool) -> NodesPage {
    NodesPage {
        regions: if full {
            vec![RegionGroup {
                region: XSS.into(),
                nodes: vec![
                    NodeRow {
                        id: XSS.into(),
                        name: XSS.into(),
                        state: "alive".into(),
                        version: "0.1.0".into(),
                        config_version: 7,
                        bundles_present: 3,
                        bundles_pending: 1,
                        last_seen: Some(NOW - 10_000),
                        addr: Some("10.0.0.1:8702".into()),
                        cert_not_after: Some(NOW / 1000 + 20 * 86400),
                        requests_per_sec: Some(12.5),
                    },
                    NodeRow {
                        id: "n2".into(),
                        name: "fra-2".into(),
                        state: "down".into(),
                        version: "0.1.0".into(),
                        config_version: 5,
                        bundles_present: 0,
                        bundles_pending: 0,
                        last_seen: None,
                        addr: None,
                        cert_not_after: None,
                        requests_per_sec: None,
                    },
                ],
            }]
        } else {
            vec![]
        },
        current_config_version: 7,
        new_join_token: full.then(|| "join-token-secret".into()),
        alerts: Some(InstanceAlerts {
            rules: if full {
                vec![rule_row("r-mem", "high_memory", "firing")]
            } else {
                vec![]
            },
            kinds: rule_kinds(false),
            channels: if full {
                vec![("ch1".into(), format!("{XSS} (webhook)"))]
            } else {
                vec![]
            },
        }),
    }
}

pub fn tokens(full: bool) -> TokensPage {
    TokensPage {
        tokens: if full {
            vec![
                TokenRow {
                    id: "tok1".into(),
                    name: XSS.into(),
                    scope: "all".into(),
                    created_at: NOW - 60 * MIN,
                    expires_at: Some(NOW + 24 * 60 * MIN),
                    last_used_at: None,
                    revoked_at: None,
                },
                TokenRow {
                    id: "tok2".into(),
                    name: "old".into(),
                    scope: "team:t1".into(),
                    created_at: NOW - 60 * MIN,
                    expires_at: None,
                    last_used_at: Some(NOW - MIN),
                    revoked_at: Some(NOW - MIN),
                },
            ]
        } else {
            vec![]
        },
        new_token: full.then(|| "opt_newtoken".into()),
        scopes: vec![("all".into(), "All my teams".into())],
        error: full.then(|| XSS.into()),
    }
}

pub fn team(full: bool, is_owner: bool) -> TeamPage {
    TeamPage {
        team: team_ref("t1"),
        teams: vec![team_ref("t1"), team_ref("t2")],
        members: vec![
            MemberRow {
                user_id: "u1".into(),
                email: "ada@example.com".into(),
                name: XSS.into(),
                role: "owner".into(),
                joined_at: NOW - 60 * MIN,
                is_self: true,
            },
            MemberRow {
                user_id: "u2".into(),
                email: XSS.into(),
                name: "Bob".into(),
                role: "viewer".into(),
                joined_at: NOW - 60 * MIN,
                is_self: false,
            },
        ],
        invitations: if full {
            vec![InvitationRow {
                id: "inv1".into(),
                role: "member".into(),
                created_by: XSS.into(),
                created_at: NOW - MIN,
                expires_at: NOW + 60 * MIN,
            }]
        } else {
            vec![]
        },
        new_invite_url: full.then(|| "https://outpost.example.com/invite/abc".into()),
        is_owner,
        error: full.then(|| XSS.into()),
        channels: if full {
            vec![channel_row("ch1", "webhook"), channel_row("ch2", "email")]
        } else {
            vec![]
        },
        new_channel_secret: full.then(|| (XSS.to_string(), "whsec_shown_once".to_string())),
    }
}

pub fn audit(full: bool) -> AuditPage {
    AuditPage {
        events: if full {
            vec![AuditRow {
                at: NOW - MIN,
                actor: XSS.into(),
                action: "project.create".into(),
                target: XSS.into(),
                ip: "203.0.113.7".into(),
                team: XSS.into(),
            }]
        } else {
            vec![]
        },
        pager: Pager {
            prev: None,
            next: full.then(|| "/audit?cursor=x".into()),
        },
        teams: vec![team_ref("t1")],
        team: full.then(|| "t1".into()),
    }
}

/// A referrer that tries to break out of an attribute and a text node.
pub const HOSTILE_REFERRER: &str = r#"https://evil.example/"><img src=x onerror="alert(1)">"#;

pub fn analytics(full: bool) -> AnalyticsTab {
    const HOUR: i64 = 60 * MIN;
    let start = NOON_MINUS_DAY;
    let series = if full {
        (0..24)
            .map(|i| SeriesPoint {
                t_ms: start + i * HOUR,
                requests: (i as u64 * 37) % 200 + 10,
                page_views: (i as u64 * 13) % 90,
                visitors: i as u64 % 20,
                bytes: i as u64 * 1_000_000,
            })
            .collect()
    } else {
        vec![]
    };
    let top = |k: &str| vec![(k.to_string(), 120), ("/about".to_string(), 30)];
    AnalyticsTab {
        range: if full {
            AnalyticsRange::Day
        } else {
            AnalyticsRange::Hour
        },
        granularity: if full {
            Granularity::Hour
        } else {
            Granularity::Minute
        },
        filter: full.then(|| AnalyticsFilter::Environment("production".into())),
        deployments: if full {
            vec![("dep1234567".into(), format!("dep1234567 · {XSS}"))]
        } else {
            vec![]
        },
        environments: vec!["production".into(), "preview".into()],
        totals: if full {
            AnalyticsTotals {
                requests: 12_345,
                page_views: 4_321,
                visitors: 987,
                bots: 654,
                bytes: 1_234_567_890,
                status: StatusClasses {
                    s2xx: 10_000,
                    s3xx: 1_000,
                    s4xx: 1_245,
                    s5xx: 100,
                },
                status_codes: vec![(200, 10_000), (404, 1_245), (500, 100)],
                latency: Some(Percentiles {
                    p50: 4.2,
                    p95: 38.0,
                    p99: 1_250.0,
                }),
                encodings: Encodings {
                    br: 700,
                    gzip: 200,
                    identity: 100,
                },
            }
        } else {
            AnalyticsTotals::default()
        },
        series,
        top: if full {
            TopLists {
                pages: top(&format!("/{XSS}")),
                not_found: top(&format!("/wp-login.php?{XSS}")),
                referrers: top(HOSTILE_REFERRER),
                countries: top("DE"),
                browsers: top(XSS),
                os: top("Linux"),
                devices: top("desktop"),
            }
        } else {
            TopLists::default()
        },
        geoip: full,
        nodes: if full {
            vec![
                NodeTraffic {
                    node: XSS.into(),
                    region: XSS.into(),
                    requests: 10_000,
                    bytes: 1_000_000_000,
                },
                NodeTraffic {
                    node: "fra-2".into(),
                    region: "fra".into(),
                    requests: 2_345,
                    bytes: 234_567_890,
                },
            ]
        } else {
            vec![]
        },
        functions: if full {
            vec![
                FunctionStats {
                    route: format!("/api/{XSS}"),
                    invocations: 500,
                    errors: 3,
                    timeouts: 1,
                    memory_limit: 2,
                    latency: Some(Percentiles {
                        p50: 12.0,
                        p95: 80.0,
                        p99: 240.0,
                    }),
                },
                FunctionStats {
                    route: "/api/idle".into(),
                    invocations: 0,
                    errors: 0,
                    timeouts: 0,
                    memory_limit: 0,
                    latency: None,
                },
            ]
        } else {
            vec![]
        },
    }
}

/// 2024-04-30 12:00 UTC: the start of the analytics fixture's 24 hours.
const NOON_MINUS_DAY: i64 = NOW - 24 * 60 * MIN;

pub fn issue_row(id: &str, state: &str) -> IssueRow {
    IssueRow {
        id: id.into(),
        source: "function".into(),
        kind: "panic".into(),
        title: format!("panic: {XSS}"),
        culprit: format!("/api/{XSS} in checkout::total"),
        severity: "high".into(),
        state: state.into(),
        count: 12_345,
        first_seen: NOW - 3 * 60 * MIN,
        last_seen: NOW - 2 * MIN,
        resolved_at: (state == "resolved").then_some(NOW - MIN),
        trend: (0..24).map(|i| if i % 5 == 0 { i } else { 0 }).collect(),
    }
}

pub fn errors_tab(full: bool) -> ErrorsTab {
    ErrorsTab {
        filter: "open".into(),
        issues: if full {
            vec![
                issue_row("iss1", "unresolved"),
                issue_row("iss2", "regressed"),
            ]
        } else {
            vec![]
        },
        truncated: full,
    }
}

pub fn issue_page(full: bool, state: &str) -> IssuePage {
    IssuePage {
        issue: issue_row("iss1", state),
        message: full.then(|| format!("boom {XSS}\nsecond line")),
        frames: if full {
            vec![format!("checkout::{XSS}"), "main".into()]
        } else {
            vec![]
        },
        request: full.then(|| SampleRequest {
            method: Some("POST".into()),
            path: Some(format!("/api/{XSS}")),
            status: Some(500),
            request_id: Some("req-7f3a".into()),
            node: Some(XSS.into()),
        }),
        stderr: if full {
            vec![XSS.into(), "thread panicked".into()]
        } else {
            vec![]
        },
        details: if full {
            vec![
                ("build".into(), "bld123".into()),
                ("branch".into(), XSS.into()),
            ]
        } else {
            vec![]
        },
        deployments: if full {
            vec![IssueDeploymentRow {
                deployment: "dep1234567".into(),
                count: 40,
                last_seen: NOW - MIN,
            }]
        } else {
            vec![]
        },
        events: if full {
            vec![IssueEventRow {
                at: NOW - MIN,
                deployment: Some("dep1234567".into()),
                count: 3,
                request_id: Some("req-7f3a".into()),
                summary: format!("POST /api/{XSS} → 500"),
            }]
        } else {
            vec![]
        },
    }
}

/// The presets as the handler fills them in; `project` picks a project's
/// kinds or the instance's.
pub fn rule_kinds(project: bool) -> Vec<RuleKind> {
    let k = |key: &str, condition: &str, unit: &str, default: f64, window: Option<&str>| RuleKind {
        key: key.into(),
        condition: condition.into(),
        unit: unit.into(),
        default_threshold: default,
        default_window: window.map(str::to_string),
    };
    if project {
        vec![
            k("error_rate", ">", "% of requests", 5.0, Some("5m")),
            k("function_error", ">", "errors", 0.0, Some("5m")),
            k("ssl_expiry", "<", "days left", 14.0, None),
        ]
    } else {
        vec![
            k("high_memory", ">", "% memory", 90.0, None),
            k("disk_space", ">", "% disk", 90.0, None),
            k("ssl_expiry", "<", "days left", 14.0, None),
        ]
    }
}

pub fn rule_row(id: &str, kind: &str, state: &str) -> RuleRow {
    RuleRow {
        id: id.into(),
        kind: kind.into(),
        condition: ">".into(),
        threshold: 5.0,
        unit: "% of requests".into(),
        window: "5m".into(),
        for_: "1m".into(),
        channels: vec![XSS.into()],
        enabled: true,
        created_at: NOW - 60 * MIN,
        alerts: if state.is_empty() {
            vec![]
        } else {
            vec![AlertRow {
                series: format!("series {XSS}"),
                state: state.into(),
                value: 12.5,
                since: NOW - 10 * MIN,
                fired_at: (state == "firing").then_some(NOW - 5 * MIN),
                resolved_at: (state == "resolved").then_some(NOW - MIN),
            }]
        },
    }
}

pub fn alerts_tab(full: bool) -> AlertsTab {
    AlertsTab {
        rules: if full {
            vec![
                rule_row("r1", "error_rate", "firing"),
                rule_row("r2", "function_error", ""),
            ]
        } else {
            vec![]
        },
        kinds: rule_kinds(true),
        team: team_ref("t1"),
        channels: if full {
            vec![("ch1".into(), format!("{XSS} (webhook)"))]
        } else {
            vec![]
        },
    }
}

pub fn channel_row(id: &str, kind: &str) -> ChannelRow {
    ChannelRow {
        id: id.into(),
        kind: kind.into(),
        name: format!("{XSS} {id}"),
        target: format!("https://hooks.example.com/{XSS}"),
        signed: kind == "webhook",
        created_at: NOW - 60 * MIN,
        deliveries: if kind == "webhook" {
            vec![
                DeliveryRow {
                    status: "failed".into(),
                    rule: Some("r1".into()),
                    attempts: 5,
                    last_status: Some(502),
                    last_error: Some(format!("bad gateway {XSS}")),
                    created_at: NOW - 30 * MIN,
                    next_at: NOW - 20 * MIN,
                    sent_at: None,
                },
                DeliveryRow {
                    status: "pending".into(),
                    rule: None,
                    attempts: 1,
                    last_status: None,
                    last_error: None,
                    created_at: NOW - MIN,
                    next_at: NOW + MIN,
                    sent_at: None,
                },
                DeliveryRow {
                    status: "sent".into(),
                    rule: None,
                    attempts: 1,
                    last_status: Some(200),
                    last_error: None,
                    created_at: NOW - 2 * MIN,
                    next_at: NOW - 2 * MIN,
                    sent_at: Some(NOW - 2 * MIN),
                },
            ]
        } else {
            vec![]
        },
    }
}
