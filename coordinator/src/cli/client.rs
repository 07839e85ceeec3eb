//! A small typed client for `/api/v1`.

use anyhow::{bail, Context};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::credentials::Credentials;

#[derive(Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// An error the API answered with (`{"error": {"code", "message"}}`).
#[derive(Debug, thiserror::Error)]
#[error("{message} ({code}, HTTP {status})")]
pub struct ApiFailure {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl Client {
    pub fn new(c: &Credentials) -> anyhow::Result<Self> {
        Ok(Client {
            base: format!("{}/api/v1", c.url),
            token: c.token.clone(),
            http: reqwest::Client::builder()
                .user_agent(concat!("outpost-cli/", env!("CARGO_PKG_VERSION")))
                .timeout(std::time::Duration::from_secs(300))
                .build()?,
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> anyhow::Result<T> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the coordinator at {}", self.base))?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if status.is_success() {
            if status == StatusCode::NO_CONTENT || body.is_empty() {
                return serde_json::from_slice(b"null").context("empty response");
            }
            return serde_json::from_slice(&body).context("the coordinator sent malformed JSON");
        }
        #[derive(serde::Deserialize)]
        struct Wrapper {
            error: Inner,
        }
        #[derive(serde::Deserialize)]
        struct Inner {
            code: String,
            message: String,
        }
        match serde_json::from_slice::<Wrapper>(&body) {
            Ok(w) => Err(ApiFailure {
                status: status.as_u16(),
                code: w.error.code,
                message: w.error.message,
            }
            .into()),
            Err(_) => bail!(
                "HTTP {status} from the coordinator: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ),
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn put_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.send(self.request(Method::PUT, path).json(body)).await
    }

    pub async fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        self.send(self.request(Method::PATCH, path).json(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        let _: serde_json::Value = self.delete_json(path).await?;
        Ok(())
    }

    /// A DELETE whose answer says what went.
    pub async fn delete_json<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.request(Method::DELETE, path)).await
    }

    pub async fn put_bytes(&self, path: &str, body: bytes::Bytes) -> anyhow::Result<()> {
        let _: serde_json::Value = self
            .send(self.request(Method::PUT, path).body(body))
            .await?;
        Ok(())
    }
}

/// A path segment or query value, percent-encoded.
pub fn enc(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|p| p.trim_start_matches('=').to_string())
        .unwrap_or_default()
}
