//! `[blobs]`: where the coordinator keeps blobs. Local disk under the data
//! directory by default; any S3-compatible store (AWS S3, Garage, MinIO,
//! Ceph RGW, R2) with `url = "s3://bucket/prefix"`, which is what several
//! coordinators share.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::{ClientOptions, ObjectStore, RetryConfig};
use serde::Deserialize;

/// Parts of a multipart upload: S3 needs at least 5 MiB (but the last),
/// and allows 10,000 parts, so 8 MiB covers blobs up to 78 GiB.
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
const MAX_PART_SIZE: u64 = 512 * 1024 * 1024;

#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobsConfig {
    /// `s3://bucket` or `s3://bucket/prefix`; none: `<data_dir>/blobs`.
    pub url: Option<String>,
    /// The S3 API's base URL (Garage, MinIO…); none: AWS (or
    /// `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Default: `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`
    /// (Garage and MinIO on a bare address need it).
    #[serde(default)]
    pub path_style: bool,
    /// Default: `AWS_ACCESS_KEY_ID` (and the other usual `AWS_*` variables).
    pub access_key_id: Option<String>,
    /// Default: `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// Default: `AWS_SESSION_TOKEN`.
    pub session_token: Option<String>,
    /// Part size of multipart uploads (default 8 MiB; 5 MiB to 512 MiB).
    pub part_size: Option<bytesize::ByteSize>,
}

impl std::fmt::Debug for BlobsConfig {
    // Credentials never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("BlobsConfig")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("part_size", &self.part_size)
            .finish()
    }
}

/// An `s3://` URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Without slashes at either end; may be empty.
    pub prefix: String,
}

impl BlobsConfig {
    pub fn part_size(&self) -> u64 {
        self.part_size
            .map(|b| b.as_u64())
            .unwrap_or(DEFAULT_PART_SIZE)
    }

    /// The S3 location, or `None` for local disk.
    pub fn location(&self) -> anyhow::Result<Option<S3Location>> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            anyhow::anyhow!("[blobs] url {url:?} must be s3://bucket or s3://bucket/prefix")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's bucket naming rules (what every compatible store accepts).
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && bucket.as_bytes()[0].is_ascii_alphanumeric()
            && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
        if !bucket_ok {
            anyhow::bail!(
                "[blobs] url {url:?}: the bucket name must be 3-63 lowercase letters, digits, '-' or '.'"
            );
        }
        let prefix = prefix.trim_matches('/');
        let prefix_ok = prefix.len() <= 512
            && prefix.split('/').all(|seg| {
                prefix.is_empty()
                    || (!seg.is_empty()
                        && seg != "."
                        && seg != ".."
                        && seg
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
            });
        if !prefix_ok {
            anyhow::bail!(
                "[blobs] url {url:?}: the prefix must be at most 512 characters of path segments made of letters, digits, '-', '_' and '.'"
            );
        }
        Ok(Some(S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        }))
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let s3 = self.location()?;
        if let Some(e) = &self.endpoint {
            let parsed = url::Url::parse(e)
                .map_err(|err| anyhow::anyhow!("[blobs] endpoint {e:?}: {err}"))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                anyhow::bail!("[blobs] endpoint {e:?} must be an http:// or https:// URL");
            }
        }
        if s3.is_none()
            && (self.endpoint.is_some()
                || self.region.is_some()
                || self.access_key_id.is_some()
                || self.secret_access_key.is_some())
        {
            anyhow::bail!(
                "[blobs] endpoint, region and credentials need url = \"s3://bucket\"; without it blobs stay on local disk"
            );
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size()) {
            anyhow::bail!("[blobs] part_size must be between 5MiB and 512MiB");
        }
        if let Some(r) = &self.region {
            if r.is_empty()
                || r.len() > 64
                || !r
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                anyhow::bail!("[blobs] region {r:?} is not a region name");
            }
        }
        Ok(())
    }

    /// The S3 client: settings from `[blobs]` over the usual `AWS_*`
    /// variables. Requests give up quickly (a few retries within ~15 s),
    /// so a store that is down fails an upload with a clear error instead
    /// of holding it for minutes.
    pub fn s3(&self, loc: &S3Location) -> anyhow::Result<Arc<dyn ObjectStore>> {
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&loc.bucket);
        let plain_http = self
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        if let Some(e) = &self.endpoint {
            b = b.with_endpoint(e);
        }
        b = b.with_region(
            self.region
                .clone()
                .or_else(|| std::env::var("AWS_REGION").ok())
                .unwrap_or_else(|| "us-east-1".into()),
        );
        b = b.with_virtual_hosted_style_request(!self.path_style);
        if let Some(k) = &self.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &self.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        if let Some(t) = &self.session_token {
            b = b.with_token(t);
        }
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(15),
            ..Default::default()
        };
        // Allowing plain HTTP is a client option: set here, since these
        // options replace the builder's.
        let client = ClientOptions::new()
            .with_allow_http(plain_http)
            .with_connect_timeout(Duration::from_secs(5))
            // A part of `part_size` over a slow link; reads stream.
            .with_timeout(Duration::from_secs(120));
        let store = b
            .with_retry(retry)
            .with_client_options(client)
            .build()
            .map_err(|e| anyhow::anyhow!("[blobs] S3 store {}: {e}", loc.bucket))?;
        Ok(Arc::new(store))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url(url: &str) -> BlobsConfig {
        BlobsConfig {
            url: Some(url.into()),
            ..Default::default()
        }
    }

    #[test]
    fn urls_are_taken_apart_and_bad_ones_refused() {
        for (url, bucket, prefix) in [
            ("s3://outpost", "outpost", ""),
            ("s3://outpost/", "outpost", ""),
            ("s3://outpost/prod/blobs/", "outpost", "prod/blobs"),
            ("s3://my.bucket-1/a_b.c", "my.bucket-1", "a_b.c"),
        ] {
            let loc = with_url(url).location().unwrap().unwrap();
            assert_eq!((loc.bucket.as_str(), loc.prefix.as_str()), (bucket, prefix));
        }
        assert_eq!(BlobsConfig::default().location().unwrap(), None);
        for bad in [
            "outpost",
            "file:///tmp/x",
            "s3://",
            "s3://ab",
            "s3://Upper",
            "s3://-dash",
            "s3://under_score",
            &format!("s3://{}", "a".repeat(64)),
            "s3://outpost/../etc",
            "s3://outpost/a//b",
            "s3://outpost/sp ace",
            &format!("s3://outpost/{}", "p".repeat(600)),
        ] {
            assert!(with_url(bad).location().is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_are_checked() {
        let ok = BlobsConfig {
            url: Some("s3://outpost".into()),
            endpoint: Some("http://127.0.0.1:3900".into()),
            region: Some("garage".into()),
            ..Default::default()
        };
        ok.validate().unwrap();
        BlobsConfig::default().validate().unwrap();
        let cases: Vec<(BlobsConfig, &str)> = vec![
            (
                BlobsConfig {
                    endpoint: Some("ftp://x".into()),
                    ..ok.clone()
                },
                "endpoint",
            ),
            (
                BlobsConfig {
                    endpoint: Some("not a url".into()),
                    ..ok.clone()
                },
                "endpoint",
            ),
            (
                BlobsConfig {
                    region: Some("us east".into()),
                    ..ok.clone()
                },
                "region",
            ),
            (
                BlobsConfig {
                    part_size: Some(bytesize::ByteSize::mib(1)),
                    ..ok.clone()
                },
                "part_size",
            ),
            (
                BlobsConfig {
                    endpoint: Some("http://127.0.0.1:3900".into()),
                    ..Default::default()
                },
                "need url",
            ),
        ];
        for (c, word) in cases {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(word), "{word}: {e}");
        }
        assert!(toml::from_str::<BlobsConfig>("bogus = 1").is_err());
    }

    #[test]
    fn secrets_are_not_in_debug() {
        let c = BlobsConfig {
            secret_access_key: Some("hunter2-secret".into()),
            session_token: Some("tok-secret".into()),
            ..with_url("s3://outpost")
        };
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2") && !d.contains("tok-secret"), "{d}");
    }
}
