//! The OpenAPI description of `/api/v1`, served at `/api/v1/openapi.json`.
//! Paths come from the handlers' `#[utoipa::path]` attributes through the
//! same router that serves them, so the document cannot miss a route.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Every error answer: `{"error": {"code", "message", "details"?}}`.
#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[allow(dead_code)]
#[derive(utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `not_found`, `forbidden`, `invalid_name`, …
    code: String,
    /// For people.
    message: String,
    #[schema(value_type = Option<Object>)]
    details: Option<serde_json::Value>,
}

/// The errors every authenticated route may answer.
#[allow(dead_code)]
#[derive(utoipa::IntoResponses)]
pub enum Guarded {
    #[response(status = 400, description = "Invalid input")]
    BadRequest(ErrorBody),
    #[response(status = 401, description = "No or bad credentials")]
    Unauthorized(ErrorBody),
    #[response(
        status = 403,
        description = "Role too small, or a scoped token where an unscoped one is needed"
    )]
    Forbidden(ErrorBody),
    #[response(status = 404, description = "Not found, or not yours")]
    NotFound(ErrorBody),
}

/// The errors a route without credentials may answer.
#[allow(dead_code)]
#[derive(utoipa::IntoResponses)]
pub enum Public {
    #[response(status = 400, description = "Invalid input")]
    BadRequest(ErrorBody),
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Outpost coordinator API",
        description = "Projects, deployments, builds, environment, nodes, accounts and tokens. \
            Authenticate with `Authorization: Bearer <token>` (tokens from `/tokens` or the \
            dashboard), or with the dashboard's session cookie plus `X-CSRF-Token` on writes. \
            Lists are paginated with `limit` and the `next_cursor` they return.",
    ),
    servers((url = "/api/v1")),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&Security),
    security(("bearer" = []), ("session" = [])),
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::accounts::session::COOKIE,
            ))),
        );
    }
}
