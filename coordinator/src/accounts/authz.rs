//! Who is asking and what they may touch. Pure: the HTTP layers build a
//! [`Principal`] once per request and ask it about each project or team.
//!
//! The rule: a principal acts with its user's role in the team that owns
//! the thing, narrowed by the token's scope. Being the instance owner
//! grants instance-wide powers (nodes, join tokens) but no access to other
//! teams' projects.

use crate::store::{Role, User};

/// How far an API token reaches. Sessions are always `All`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Team(String),
    Project(String),
}

impl Scope {
    /// `all`, `team:<id>` or `project:<id>`, as forms and the API spell it.
    pub fn parse(s: &str) -> Option<Scope> {
        match s.split_once(':') {
            None if s == "all" => Some(Scope::All),
            Some(("team", id)) if !id.is_empty() && id.len() <= 64 => Some(Scope::Team(id.into())),
            Some(("project", id)) if !id.is_empty() && id.len() <= 64 => {
                Some(Scope::Project(id.into()))
            }
            _ => None,
        }
    }

    pub fn render(&self) -> String {
        match self {
            Scope::All => "all".into(),
            Scope::Team(t) => format!("team:{t}"),
            Scope::Project(p) => format!("project:{p}"),
        }
    }

    pub fn from_columns(team: Option<&str>, project: Option<&str>) -> Scope {
        match (team, project) {
            (_, Some(p)) => Scope::Project(p.into()),
            (Some(t), None) => Scope::Team(t.into()),
            (None, None) => Scope::All,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Via {
    Token { id: String, name: String },
    Session { id_hash: String, csrf: String },
}

#[derive(Debug, Clone)]
pub struct Principal {
    /// `None` for the first-start admin token before anyone signed up.
    pub user: Option<User>,
    pub instance_owner: bool,
    /// `(team id, role)` of every team the user is in.
    pub memberships: Vec<(String, Role)>,
    pub scope: Scope,
    pub via: Via,
    /// The client address, for the audit log.
    pub ip: String,
}

impl Principal {
    /// Who did it, as the audit log writes it.
    pub fn actor(&self) -> String {
        let who = match &self.user {
            Some(u) => u.email.clone(),
            None => "admin".into(),
        };
        match &self.via {
            Via::Token { name, .. } => format!("{who} (token {name})"),
            Via::Session { .. } => who,
        }
    }

    pub fn user_id(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.id.as_str())
    }

    /// The role this principal has on a project of `team`; `None` means
    /// the project must look like it does not exist.
    pub fn project_role(&self, team: &str, project_id: &str) -> Option<Role> {
        let role = self.team_role_unscoped(team)?;
        match &self.scope {
            Scope::All => Some(role),
            Scope::Team(t) if t == team => Some(role),
            Scope::Project(p) if p == project_id => Some(role),
            _ => None,
        }
    }

    /// The role on the team itself (members, invitations, new projects,
    /// audit); a project-scoped token has none.
    pub fn team_role(&self, team: &str) -> Option<Role> {
        let role = self.team_role_unscoped(team)?;
        match &self.scope {
            Scope::All => Some(role),
            Scope::Team(t) if t == team => Some(role),
            _ => None,
        }
    }

    /// Teams whose projects this principal may list, at least `need`.
    pub fn teams_with(&self, need: Role) -> Vec<String> {
        self.memberships
            .iter()
            .filter(|(t, r)| {
                *r >= need
                    && match &self.scope {
                        Scope::All => true,
                        Scope::Team(s) => s == t,
                        // Listing goes through the project's team; the
                        // caller filters to the one project.
                        Scope::Project(_) => true,
                    }
            })
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Instance-wide powers need the owner's account with an unscoped
    /// credential: a token narrowed to a team or project does not carry them.
    pub fn is_instance_owner(&self) -> bool {
        self.instance_owner && self.scope == Scope::All
    }

    /// A credential that can change something somewhere (blob uploads are
    /// shared across projects, so they need at least this).
    pub fn can_write_somewhere(&self) -> bool {
        self.memberships.iter().any(|(t, r)| {
            *r >= Role::Member
                && match &self.scope {
                    Scope::All | Scope::Project(_) => true,
                    Scope::Team(s) => s == t,
                }
        })
    }

    fn team_role_unscoped(&self, team: &str) -> Option<Role> {
        self.memberships
            .iter()
            .find(|(t, _)| t == team)
            .map(|(_, r)| *r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(memberships: &[(&str, Role)], scope: Scope, owner: bool) -> Principal {
        Principal {
            user: None,
            instance_owner: owner,
            memberships: memberships
                .iter()
                .map(|(t, r)| (t.to_string(), *r))
                .collect(),
            scope,
            via: Via::Token {
                id: "t".into(),
                name: "ci".into(),
            },
            ip: "127.0.0.1".into(),
        }
    }

    #[test]
    fn project_roles_follow_team_and_scope() {
        use Role::*;
        let teams = [("ta", Owner), ("tb", Viewer)];
        let proj = |id: &str| Scope::Project(id.into());
        let team = |id: &str| Scope::Team(id.into());
        // (scope, project team, project id, expected role)
        let table = [
            (Scope::All, "ta", "p1", Some(Owner)),
            (Scope::All, "tb", "p2", Some(Viewer)),
            (Scope::All, "tc", "p3", None),
            (team("ta"), "ta", "p1", Some(Owner)),
            (team("ta"), "tb", "p2", None),
            (team("tc"), "tc", "p3", None),
            (proj("p1"), "ta", "p1", Some(Owner)),
            (proj("p1"), "ta", "p9", None),
            (proj("p3"), "tc", "p3", None),
        ];
        for (scope, t, p, want) in table {
            let pr = principal(&teams, scope.clone(), false);
            assert_eq!(pr.project_role(t, p), want, "{scope:?} on {t}/{p}");
        }
    }

    #[test]
    fn team_roles_and_instance_powers() {
        use Role::*;
        let all = principal(&[("ta", Member)], Scope::All, true);
        assert_eq!(all.team_role("ta"), Some(Member));
        assert_eq!(all.team_role("tb"), None);
        assert!(all.is_instance_owner());
        let scoped = principal(&[("ta", Owner)], Scope::Project("p".into()), true);
        assert_eq!(scoped.team_role("ta"), None);
        assert!(!scoped.is_instance_owner());
        assert!(scoped.can_write_somewhere());
        let viewer = principal(&[("ta", Viewer)], Scope::All, false);
        assert!(!viewer.can_write_somewhere());
        assert_eq!(viewer.teams_with(Viewer), vec!["ta".to_string()]);
        assert!(viewer.teams_with(Member).is_empty());
    }

    #[test]
    fn scope_strings_round_trip_and_reject_junk() {
        for s in ["all", "team:abc", "project:xyz"] {
            assert_eq!(Scope::parse(s).unwrap().render(), s);
        }
        for s in [
            "",
            "team:",
            "teams:x",
            "project",
            "all:x",
            &format!("team:{}", "x".repeat(65)),
        ] {
            assert_eq!(Scope::parse(s), None, "{s:?}");
        }
    }
}
