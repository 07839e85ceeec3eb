//! Projects: their names, teams and production pointer.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{is_unique_violation, now_ms, FromRow, Project, Store, StoreError};

impl Store {
    pub async fn create_project(
        &self,
        id: &str,
        name: &str,
        team_id: &str,
    ) -> Result<Project, StoreError> {
        let now = now_ms();
        sqlx::query("INSERT INTO projects (id, name, created_at, team_id) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(name)
            .bind(now)
            .bind(team_id)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("project {name:?}"))
                } else {
                    e.into()
                }
            })?;
        Ok(Project {
            id: id.into(),
            name: name.into(),
            created_at: now,
            production_deployment: None,
            team_id: team_id.into(),
        })
    }

    /// A project by the name or id a user typed. Names and ids never
    /// collide (creation refuses a name equal to an existing id), and an
    /// exact id wins if an old database has such a pair.
    pub async fn project(&self, name_or_id: &str) -> Result<Option<Project>, StoreError> {
        if let Some(p) = self.project_by_id(name_or_id).await? {
            return Ok(Some(p));
        }
        let row = sqlx::query(
            "SELECT id, name, created_at, production_deployment, team_id FROM projects WHERE name = $1",
        )
        .bind(name_or_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Project::from_row(&r)).transpose()
    }

    /// The id of the project named `name` (edges name projects by name;
    /// one query, never taking a name for an id).
    pub async fn project_id_named(&self, name: &str) -> Result<Option<String>, StoreError> {
        sqlx::query("SELECT id FROM projects WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("id"))
            .transpose()
            .map_err(Into::into)
    }

    /// A project by id only: for ids read from other rows, where a name
    /// must never be taken for an id.
    pub async fn project_by_id(&self, id: &str) -> Result<Option<Project>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, created_at, production_deployment, team_id FROM projects WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Project::from_row(&r)).transpose()
    }

    /// Projects of the given teams by name, `limit` after the name `after`.
    pub async fn list_projects(
        &self,
        teams: &[String],
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Project>, StoreError> {
        if teams.is_empty() {
            return Ok(Vec::new());
        }
        let params: Vec<String> = (0..teams.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "SELECT id, name, created_at, production_deployment, team_id FROM projects \
             WHERE name > $1 AND team_id IN ({}) ORDER BY name LIMIT $2",
            params.join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(after.unwrap_or(""))
            .bind(limit);
        for t in teams {
            q = q.bind(t);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(Project::from_row).collect()
    }
}

impl FromRow for Project {
    fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(Project {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            created_at: r.try_get("created_at")?,
            production_deployment: r.try_get("production_deployment")?,
            team_id: r
                .try_get::<Option<String>, _>("team_id")?
                .unwrap_or_default(),
        })
    }
}
