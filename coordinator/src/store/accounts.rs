//! Users, teams, invitations, sessions, API tokens and the audit log.
//!
//! Authorisation decisions are not made here (see `accounts::authz`); this
//! module only reads and writes rows, and keeps the multi-row changes
//! (first sign-up, accepting an invitation) in one transaction each.

use std::str::FromStr;

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{is_unique_violation, now_ms, Store, StoreError};
use super::{ApiToken, AuditEvent, Invitation, Member, Membership, Role, Session, Team, User};

const USER_COLS: &str = "id, email, name, instance_owner, created_at";
const TOKEN_COLS: &str = "id, name, token_hash, user_id, team_id, project_id, created_at, \
     expires_at, last_used_at, revoked_at";
const INVITE_COLS: &str = "id, team_id, role, token_hash, created_by, created_at, expires_at, \
     accepted_at, accepted_by, revoked_at";
const AUDIT_COLS: &str = "id, at, actor_id, actor, team_id, action, target, ip, detail";

/// What `accept_invitation` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptOutcome {
    Joined,
    /// Already in the team: the role is left as it was.
    AlreadyMember,
    Gone,
}

impl Store {
    /// Tokens of every kind, the admin token included: none means first start.
    pub async fn count_api_tokens(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM api_tokens")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn create_api_token(
        &self,
        id: &str,
        name: &str,
        hash: &str,
    ) -> Result<(), StoreError> {
        if self.create_api_token_once(id, name, hash).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!("API token {id}")))
        }
    }

    /// Creates the API token `id` unless one with that id exists: whether
    /// this call made it (two coordinators starting together make one).
    pub async fn create_api_token_once(
        &self,
        id: &str,
        name: &str,
        hash: &str,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO api_tokens (id, name, token_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(name)
        .bind(hash)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    // ---- users ----------------------------------------------------------------

    pub async fn count_users(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Creates an account with its own team named `team_name` (owner role).
    /// The first account instead becomes the instance owner, owns the
    /// oldest team (where projects made before anyone signed up live) and
    /// adopts the first-start admin token.
    pub async fn create_user(
        &self,
        user: &User,
        password_hash: &str,
        team: &Team,
    ) -> Result<User, StoreError> {
        self.create_user_invited(user, password_hash, team, None, None)
            .await
    }

    /// Whether `token_hash` is a live setup token.
    pub async fn setup_token_exists(&self, token_hash: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 AS one FROM setup_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    /// Adds a setup token (hashed).
    pub async fn create_setup_token(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO setup_tokens (token_hash, created_at) VALUES ($1, $2)")
            .bind(token_hash)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Creates an account and, with `invitation` (its id), uses that
    /// invitation in the same transaction: of several sign-ups racing with
    /// one invitation, one gets an account and the others
    /// `StoreError::Gone` and nothing.
    pub async fn create_user_invited(
        &self,
        user: &User,
        password_hash: &str,
        team: &Team,
        invitation: Option<&str>,
        setup_token_hash: Option<&str>,
    ) -> Result<User, StoreError> {
        // Sign-ups race (and on SQLite a transaction that reads first fails
        // when another writer got in between): hold the write lock first.
        let mut tx = self.begin_write().await?;
        let users: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        let first = users == 0;
        // The account that will own the instance spends the setup token,
        // in this transaction (`None`: a caller that needs none, tests).
        if let (true, Some(hash)) = (first, setup_token_hash) {
            let spent = sqlx::query("DELETE FROM setup_tokens WHERE token_hash = $1")
                .bind(hash)
                .execute(&mut *tx)
                .await?;
            if spent.rows_affected() != 1 {
                return Err(StoreError::SetupToken);
            }
        }
        if first {
            sqlx::query("DELETE FROM setup_tokens")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, instance_owner, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.name)
        .bind(password_hash)
        .bind(first as i64)
        .bind(user.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("an account for {:?}", user.email))
            } else {
                e.into()
            }
        })?;
        let oldest = sqlx::query("SELECT id FROM teams ORDER BY created_at, id LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.get::<String, _>("id"));
        let team_id = match oldest {
            Some(id) if first => id,
            _ => {
                sqlx::query("INSERT INTO teams (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(&team.id)
                    .bind(&team.name)
                    .bind(team.created_at)
                    .execute(&mut *tx)
                    .await?;
                team.id.clone()
            }
        };
        sqlx::query(
            "INSERT INTO team_members (team_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&team_id)
        .bind(&user.id)
        .bind(Role::Owner.as_str())
        .bind(user.created_at)
        .execute(&mut *tx)
        .await?;
        if first {
            sqlx::query("UPDATE api_tokens SET user_id = $1 WHERE user_id IS NULL")
                .bind(&user.id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(id) = invitation {
            let now = now_ms();
            let used = sqlx::query(
                "UPDATE invitations SET accepted_at = $1, accepted_by = $2 WHERE id = $3 \
                 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $4",
            )
            .bind(now)
            .bind(&user.id)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if used.rows_affected() != 1 {
                // Dropping the transaction rolls the account back too.
                return Err(StoreError::Gone("the invitation".into()));
            }
            let inv = sqlx::query("SELECT team_id, role FROM invitations WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let inv_team: String = inv.try_get("team_id")?;
            if inv_team != team_id {
                sqlx::query(
                    "INSERT INTO team_members (team_id, user_id, role, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&inv_team)
                .bind(&user.id)
                .bind(role_from_row(&inv, "role")?.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(User {
            instance_owner: first,
            ..user.clone()
        })
    }

    /// The account and its password hash.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<(User, String)>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLS}, password_hash FROM users WHERE email = $1"
        )))
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user_from_row(&r)?, r.try_get("password_hash")?)))
            .transpose()
    }

    pub async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLS} FROM users WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    pub async fn password_hash(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get("password_hash")))
    }

    /// Changes the password and ends every other session of the account.
    pub async fn set_password(
        &self,
        user_id: &str,
        hash: &str,
        keep_session: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2")
            .bind(user_id)
            .bind(keep_session.unwrap_or(""))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- teams ----------------------------------------------------------------

    /// Makes sure one team exists and every project has a team: projects
    /// from before accounts existed go to the oldest team.
    pub async fn ensure_default_team(&self, team: &Team) -> Result<String, StoreError> {
        let oldest = sqlx::query("SELECT id FROM teams ORDER BY created_at, id LIMIT 1")
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.get::<String, _>("id"));
        let id = match oldest {
            Some(id) => id,
            None => {
                sqlx::query("INSERT INTO teams (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(&team.id)
                    .bind(&team.name)
                    .bind(team.created_at)
                    .execute(&self.pool)
                    .await?;
                team.id.clone()
            }
        };
        sqlx::query("UPDATE projects SET team_id = $1 WHERE team_id IS NULL")
            .bind(&id)
            .execute(&self.pool)
            .await?;
        Ok(id)
    }

    pub async fn oldest_team(&self) -> Result<Option<Team>, StoreError> {
        let row =
            sqlx::query("SELECT id, name, created_at FROM teams ORDER BY created_at, id LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| team_from_row(&r)).transpose()
    }

    pub async fn team(&self, id: &str) -> Result<Option<Team>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM teams WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| team_from_row(&r)).transpose()
    }

    pub async fn create_team(&self, team: &Team, owner: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO teams (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&team.id)
            .bind(&team.name)
            .bind(team.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO team_members (team_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&team.id)
        .bind(owner)
        .bind(Role::Owner.as_str())
        .bind(team.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The user's teams, oldest first.
    pub async fn memberships(&self, user_id: &str) -> Result<Vec<Membership>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.id, t.name, t.created_at, m.role FROM team_members m \
             JOIN teams t ON t.id = m.team_id WHERE m.user_id = $1 ORDER BY t.created_at, t.id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Membership {
                    team: team_from_row(r)?,
                    role: role_from_row(r, "role")?,
                })
            })
            .collect()
    }

    pub async fn members(&self, team_id: &str) -> Result<Vec<Member>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.id, u.email, u.name, m.role, m.created_at FROM team_members m \
             JOIN users u ON u.id = m.user_id WHERE m.team_id = $1 ORDER BY m.created_at, u.id",
        )
        .bind(team_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Member {
                    user_id: r.try_get("id")?,
                    email: r.try_get("email")?,
                    name: r.try_get("name")?,
                    role: role_from_row(r, "role")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Changes a member's role, refusing to leave the team without an
    /// owner. Returns false when the user is not a member.
    pub async fn set_member_role(
        &self,
        team_id: &str,
        user_id: &str,
        role: Option<Role>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let current =
            sqlx::query("SELECT role FROM team_members WHERE team_id = $1 AND user_id = $2")
                .bind(team_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(current) = current else {
            return Ok(false);
        };
        let current = role_from_row(&current, "role")?;
        if current == Role::Owner && role != Some(Role::Owner) {
            let owners: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM team_members WHERE team_id = $1 AND role = 'owner'",
            )
            .bind(team_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
            if owners <= 1 {
                return Err(StoreError::LastOwner);
            }
        }
        match role {
            Some(role) => {
                sqlx::query("UPDATE team_members SET role = $1 WHERE team_id = $2 AND user_id = $3")
                    .bind(role.as_str())
                    .bind(team_id)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
                    .bind(team_id)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?
            }
        };
        tx.commit().await?;
        Ok(true)
    }

    // ---- invitations ------------------------------------------------------------

    pub async fn create_invitation(&self, inv: &Invitation) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO invitations ({INVITE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, NULL)"
        )))
        .bind(&inv.id)
        .bind(&inv.team_id)
        .bind(inv.role.as_str())
        .bind(&inv.token_hash)
        .bind(&inv.created_by)
        .bind(inv.created_at)
        .bind(inv.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn invitation_by_hash(&self, hash: &str) -> Result<Option<Invitation>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {INVITE_COLS} FROM invitations WHERE token_hash = $1"
        )))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| invitation_from_row(&r)).transpose()
    }

    /// Invitations still waiting to be accepted, newest first.
    pub async fn pending_invitations(&self, team_id: &str) -> Result<Vec<Invitation>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {INVITE_COLS} FROM invitations WHERE team_id = $1 AND accepted_at IS NULL \
             AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC LIMIT 200"
        )))
        .bind(team_id)
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(invitation_from_row).collect()
    }

    pub async fn revoke_invitation(&self, team_id: &str, id: &str) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "UPDATE invitations SET revoked_at = $1 WHERE team_id = $2 AND id = $3 \
             AND accepted_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(team_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Uses the invitation once and adds the user to its team.
    pub async fn accept_invitation(
        &self,
        id: &str,
        user_id: &str,
    ) -> Result<AcceptOutcome, StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let used = sqlx::query(
            "UPDATE invitations SET accepted_at = $1, accepted_by = $2 WHERE id = $3 \
             AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $4",
        )
        .bind(now)
        .bind(user_id)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if used.rows_affected() != 1 {
            return Ok(AcceptOutcome::Gone);
        }
        let inv = sqlx::query("SELECT team_id, role FROM invitations WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let team_id: String = inv.try_get("team_id")?;
        let exists =
            sqlx::query("SELECT 1 AS one FROM team_members WHERE team_id = $1 AND user_id = $2")
                .bind(&team_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
        if exists {
            // Leave the invitation unused for whoever it was meant for.
            return Ok(AcceptOutcome::AlreadyMember);
        }
        sqlx::query(
            "INSERT INTO team_members (team_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&team_id)
        .bind(user_id)
        .bind(role_from_row(&inv, "role")?.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AcceptOutcome::Joined)
    }

    // ---- sessions ---------------------------------------------------------------

    pub async fn create_session(&self, s: &Session) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf, created_at, expires_at, ip, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&s.id_hash)
        .bind(&s.user_id)
        .bind(&s.csrf)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(&s.ip)
        .bind(&s.user_agent)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A live session and its user.
    pub async fn session(&self, id_hash: &str) -> Result<Option<(Session, User)>, StoreError> {
        let row = sqlx::query(
            "SELECT s.id_hash, s.user_id, s.csrf, s.created_at, s.expires_at, s.ip, s.user_agent, \
             u.id, u.email, u.name, u.instance_owner, u.created_at AS user_created_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id_hash = $1 AND s.expires_at > $2",
        )
        .bind(id_hash)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let session = Session {
            id_hash: r.try_get("id_hash")?,
            user_id: r.try_get("user_id")?,
            csrf: r.try_get("csrf")?,
            created_at: r.try_get("created_at")?,
            expires_at: r.try_get("expires_at")?,
            ip: r.try_get("ip")?,
            user_agent: r.try_get("user_agent")?,
        };
        let user = User {
            id: r.try_get("id")?,
            email: r.try_get("email")?,
            name: r.try_get("name")?,
            instance_owner: r.try_get::<i64, _>("instance_owner")? != 0,
            created_at: r.try_get("user_created_at")?,
        };
        Ok(Some((session, user)))
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1 OR expires_at < $2")
            .bind(id_hash)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- API tokens -------------------------------------------------------------

    pub async fn insert_api_token(&self, t: &ApiToken) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO api_tokens ({TOKEN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL)"
        )))
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.token_hash)
        .bind(t.user_id.as_deref())
        .bind(t.team_id.as_deref())
        .bind(t.project_id.as_deref())
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A token that may still be used: not revoked, not expired.
    pub async fn live_api_token(&self, hash: &str) -> Result<Option<ApiToken>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2)"
        )))
        .bind(hash)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| token_from_row(&r)).transpose()
    }

    /// Records use at most once a minute, so reads stay reads.
    pub async fn touch_api_token(&self, id: &str) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 \
             AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(now)
        .bind(id)
        .bind(now - 60_000)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user's tokens (the unowned admin token when `user_id` is None),
    /// newest first.
    pub async fn api_tokens_of(&self, user_id: Option<&str>) -> Result<Vec<ApiToken>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLS} FROM api_tokens WHERE COALESCE(user_id, '') = $1 \
             ORDER BY created_at DESC, id LIMIT 500"
        )))
        .bind(user_id.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes one of the user's own tokens; false when there is no such
    /// live token of theirs.
    pub async fn revoke_api_token(
        &self,
        user_id: Option<&str>,
        id: &str,
    ) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND COALESCE(user_id, '') = $3 \
             AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .bind(user_id.unwrap_or(""))
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    // ---- audit log ----------------------------------------------------------------

    pub async fn insert_audit(&self, e: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO audit_log ({AUDIT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        )))
        .bind(&e.id)
        .bind(e.at)
        .bind(e.actor_id.as_deref())
        .bind(&e.actor)
        .bind(e.team_id.as_deref())
        .bind(&e.action)
        .bind(&e.target)
        .bind(&e.ip)
        .bind(&e.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Newest first. `teams` limits to those teams' events; `instance`
    /// adds the events that belong to no team (nodes, sign-ups).
    pub async fn audit_events(
        &self,
        teams: &[String],
        instance: bool,
        before: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        if teams.is_empty() && !instance {
            return Ok(Vec::new());
        }
        // $1..$3 are the cursor and limit; team ids follow.
        let scope: Vec<String> = (0..teams.len()).map(|i| format!("${}", i + 4)).collect();
        let mut filter = String::new();
        if !scope.is_empty() {
            filter = format!("team_id IN ({})", scope.join(", "));
        }
        if instance {
            filter = if filter.is_empty() {
                "team_id IS NULL".into()
            } else {
                format!("({filter} OR team_id IS NULL)")
            };
        }
        let (at, id) = before.unwrap_or((i64::MAX, ""));
        let sql = format!(
            "SELECT {AUDIT_COLS} FROM audit_log WHERE {filter} \
             AND (at < $1 OR (at = $1 AND id < $2)) ORDER BY at DESC, id DESC LIMIT $3"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(at)
            .bind(id)
            .bind(limit);
        for t in teams {
            q = q.bind(t);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(audit_from_row).collect()
    }
}

fn role_from_row(r: &AnyRow, col: &str) -> Result<Role, StoreError> {
    let s: String = r.try_get(col)?;
    Ok(Role::from_str(&s).map_err(|e| sqlx::Error::Decode(e.into()))?)
}

fn user_from_row(r: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        instance_owner: r.try_get::<i64, _>("instance_owner")? != 0,
        created_at: r.try_get("created_at")?,
    })
}

fn team_from_row(r: &AnyRow) -> Result<Team, StoreError> {
    Ok(Team {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
    })
}

fn invitation_from_row(r: &AnyRow) -> Result<Invitation, StoreError> {
    Ok(Invitation {
        id: r.try_get("id")?,
        team_id: r.try_get("team_id")?,
        role: role_from_row(r, "role")?,
        token_hash: r.try_get("token_hash")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        accepted_at: r.try_get("accepted_at")?,
        accepted_by: r.try_get("accepted_by")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

fn token_from_row(r: &AnyRow) -> Result<ApiToken, StoreError> {
    Ok(ApiToken {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        token_hash: r.try_get("token_hash")?,
        user_id: r.try_get("user_id")?,
        team_id: r.try_get("team_id")?,
        project_id: r.try_get("project_id")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

fn audit_from_row(r: &AnyRow) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        actor_id: r.try_get("actor_id")?,
        actor: r.try_get("actor")?,
        team_id: r.try_get("team_id")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        ip: r.try_get("ip")?,
        detail: r.try_get("detail")?,
    })
}
