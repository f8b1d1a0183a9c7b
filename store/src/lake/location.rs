//! Where the lake lives: a local directory (the default) or a prefix in an
//! object store, named by a lake URL parsed once, at the edge.
//!
//! Credentials never travel in the URL: the clouds' builders read them from the
//! environment (`AZURE_STORAGE_*`, including `AZURE_STORAGE_USE_EMULATOR=true`,
//! `AWS_*`, `GOOGLE_*`), so a URL can be logged and shown as it is.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use url::Url;

use crate::{Result, StoreError};

/// The object stores a lake can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    /// Azure Blob Storage or ADLS Gen2 (`az://`, `abfs://`, `abfss://`, `azure://`, `adl://`).
    Azure,
    /// Amazon S3 or an S3-compatible store (`s3://`, `s3a://`).
    S3,
    /// Google Cloud Storage (`gs://`).
    Gcs,
}

/// A parsed lake location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeUrl {
    /// A directory on this machine.
    Local(PathBuf),
    /// A bucket or container and a prefix in it.
    Object { cloud: Cloud, url: Url },
}

impl LakeUrl {
    /// Parses a local path, a `file://` URL, or an object-store URL.
    pub fn parse(text: &str) -> Result<LakeUrl> {
        let text = text.trim();
        let invalid = |reason: &str| StoreError::InvalidLakeUrl {
            url: redacted(text),
            reason: reason.to_owned(),
        };
        if text.is_empty() {
            return Err(invalid("it is empty"));
        }
        if !text.contains("://") {
            return Ok(LakeUrl::Local(PathBuf::from(text)));
        }
        let url = Url::parse(text).map_err(|e| invalid(&e.to_string()))?;
        if url.password().is_some() {
            return Err(invalid(
                "credentials do not belong in the URL; set them in the environment \
                 (AZURE_STORAGE_*, AWS_*, GOOGLE_*)",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(
                "a lake URL has no query or fragment (a SAS token belongs in \
                 AZURE_STORAGE_SAS_KEY)",
            ));
        }
        let cloud = match url.scheme() {
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|()| invalid("not a local path"))?;
                return Ok(LakeUrl::Local(path));
            }
            "az" | "abfs" | "abfss" | "azure" | "adl" => Cloud::Azure,
            "s3" | "s3a" => Cloud::S3,
            "gs" => Cloud::Gcs,
            other => {
                return Err(invalid(&format!(
                    "unknown scheme {other}: use a local path, az://, abfss://, s3:// or gs://"
                )));
            }
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it names no bucket or container"));
        }
        Ok(LakeUrl::Object { cloud, url })
    }

    /// The prefix inside the bucket or container, without slashes around it.
    fn prefix(url: &Url) -> String {
        url.path().trim_matches('/').to_owned()
    }

    /// Opens the object store this URL names (its bucket or container) and
    /// the prefix in it. `None` for a local directory.
    pub(crate) fn open_objects(&self) -> Result<Option<(Arc<dyn ObjectStore>, String)>> {
        let LakeUrl::Object { cloud, url } = self else {
            return Ok(None);
        };
        let connector = super::objects::connector;
        let built = match cloud {
            Cloud::Azure => MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .with_http_connector(connector()?)
                .build()
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
            Cloud::S3 => AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .with_http_connector(connector()?)
                .build()
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
            Cloud::Gcs => GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .with_http_connector(connector()?)
                .build()
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
        };
        let store = built.map_err(|e| StoreError::InvalidLakeUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Some((store, Self::prefix(url))))
    }
}

/// The text of a URL with any password in it masked, for an error message.
fn redacted(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => text.to_owned(),
    }
}

impl fmt::Display for LakeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LakeUrl::Local(path) => write!(f, "{}", path.display()),
            LakeUrl::Object { url, .. } => write!(f, "{}", url.as_str().trim_end_matches('/')),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: std::result::Result<&str, &str>) {
        match (LakeUrl::parse(text), expect) {
            (Ok(url), Ok(shown)) => assert_eq!(url.to_string(), shown, "{text}"),
            (Err(e), Err(reason)) => {
                let msg = e.to_string();
                assert!(msg.contains(reason), "{text}: {msg}");
                assert!(
                    msg.contains(&redacted(text)),
                    "{text}: the error names the URL: {msg}"
                );
                assert!(
                    !msg.contains("secret"),
                    "{text}: a credential leaked: {msg}"
                );
            }
            (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn lake_urls_parse_or_say_why_not() {
        check("data/lake", Ok("data/lake"));
        check(
            "file:///var/lib/tollgate/lake",
            Ok("/var/lib/tollgate/lake"),
        );
        check("az://lake/tollgate", Ok("az://lake/tollgate"));
        check(
            "abfss://lake@acct.dfs.core.windows.net/tollgate/",
            Ok("abfss://lake@acct.dfs.core.windows.net/tollgate"),
        );
        check("s3://bucket/prefix", Ok("s3://bucket/prefix"));
        check("gs://bucket", Ok("gs://bucket"));
        check("", Err("it is empty"));
        check("ftp://host/x", Err("unknown scheme ftp"));
        check("s3://key:secret@bucket/x", Err("credentials do not belong"));
        check("az://c/p?sv=2024&sig=x", Err("no query"));
        check("s3:///prefix", Err("names no bucket"));
    }

    #[test]
    fn an_azure_url_names_the_cloud_and_a_local_path_opens_no_store() {
        let url = LakeUrl::parse("abfss://c@a.dfs.core.windows.net/p").unwrap();
        assert!(matches!(
            url,
            LakeUrl::Object {
                cloud: Cloud::Azure,
                ..
            }
        ));
        assert!(
            LakeUrl::parse("/tmp/x")
                .unwrap()
                .open_objects()
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_prefix_is_the_path_without_slashes() {
        let url = Url::parse("az://c/a/b/").unwrap();
        assert_eq!(LakeUrl::prefix(&url), "a/b");
    }
}
