//! The API's errors: the application layer's [`AppError`], answered as
//! JSON `{"error": {"code", "message", "details"?}}` with the status its
//! kind maps to.

use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use crate::app::AppError as ApiError;

pub type ApiResult<T> = Result<T, ApiError>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut body = json!({ "error": { "code": self.code, "message": self.message } });
        if let Some(d) = self.details {
            body["error"]["details"] = d;
        }
        (status, axum::Json(body)).into_response()
    }
}
