//! Fresh, isolated stores for tests: SQLite in a temporary directory always, and a
//! brand-new Postgres database when `TOLLGATE_TEST_POSTGRES_URL` names a server.
//! Each is removed when the [`TestStore`] drops, even if the test panicked.

use std::ops::Deref;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::{DatabaseUrl, Store, StoreConfig};

pub const POSTGRES_URL_VAR: &str = "TOLLGATE_TEST_POSTGRES_URL";
/// An Azure container (Azurite in CI) lake tests may write under: `az://container`.
pub const AZURE_LAKE_VAR: &str = "TOLLGATE_TEST_AZURE_LAKE";
/// An S3 bucket (moto in CI) lake tests may write under: `s3://bucket`.
pub const S3_LAKE_VAR: &str = "TOLLGATE_TEST_S3_LAKE";

/// A fresh prefix under the object-store lake `var` names, or `None` (with a
/// note) when it names none. A set variable that does not parse panics.
pub fn object_lake(var: &str) -> Option<crate::LakeUrl> {
    let Ok(base) = std::env::var(var) else {
        eprintln!("{var} not set: skipping the object-store lake variant");
        return None;
    };
    let url = format!(
        "{}/test-{}",
        base.trim_end_matches('/'),
        uuid::Uuid::now_v7().simple()
    );
    Some(crate::LakeUrl::parse(&url).unwrap_or_else(|e| panic!("{var}: {e}")))
}

#[derive(Debug)]
pub struct TestStore {
    pub store: Store,
    pub config: StoreConfig,
    pub dir: tempfile::TempDir,
    /// Held for its `Drop`, which removes the database.
    _postgres: Option<PostgresDatabase>,
}

#[derive(Debug)]
struct PostgresDatabase {
    admin_url: String,
    name: String,
}

impl Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

impl TestStore {
    pub async fn sqlite() -> TestStore {
        Self::sqlite_on(None).await
    }

    /// A SQLite store whose lake is at `lake_url` (`None`: in its data dir).
    pub async fn sqlite_on(lake_url: Option<crate::LakeUrl>) -> TestStore {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = StoreConfig {
            lake_url,
            ..StoreConfig::embedded(dir.path().join("data"))
        };
        let store = Store::open(&config).await.expect("open SQLite test store");
        TestStore {
            store,
            config,
            dir,
            _postgres: None,
        }
    }

    /// `None` when no Postgres server is configured for tests. A configured server
    /// that cannot be reached panics: a silent skip would hide a broken suite.
    pub async fn postgres() -> Option<TestStore> {
        Self::postgres_on(None).await
    }

    /// [`TestStore::postgres`] with its lake at `lake_url`.
    pub async fn postgres_on(lake_url: Option<crate::LakeUrl>) -> Option<TestStore> {
        let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
            eprintln!("{POSTGRES_URL_VAR} not set: skipping the Postgres variant");
            return None;
        };
        let name = format!("tollgate_test_{}", uuid::Uuid::now_v7().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_URL_VAR} is set but unreachable: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();

        let mut url = url::Url::parse(&admin_url).expect("valid Postgres URL");
        url.set_path(&name);
        let database_url = DatabaseUrl::parse(url.as_str()).expect("postgres URL");
        let dir = tempfile::tempdir().expect("temporary directory");
        let config = StoreConfig {
            database_url: Some(database_url),
            lake_url,
            ..StoreConfig::embedded(dir.path().join("data"))
        };
        let _postgres = Some(PostgresDatabase { admin_url, name });
        let store = Store::open(&config)
            .await
            .expect("open Postgres test store");
        Some(TestStore {
            store,
            config,
            dir,
            _postgres,
        })
    }

    /// Opens a second handle on the same data, as another process would.
    pub async fn reopen(&self) -> Store {
        Store::open(&self.config).await.expect("reopen test store")
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop runs outside any runtime we may block; use a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(std::io::Error::other)?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut admin)
                    .await
                    .map_err(std::io::Error::other)?;
                admin.close().await.map_err(std::io::Error::other)
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

/// Declares each listed async story test (`async fn name(store: TestStore)`) twice:
/// in a `sqlite` module, and in a `postgres` module that runs when
/// `TOLLGATE_TEST_POSTGRES_URL` is set.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::TestStore::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(store) = $crate::testing::TestStore::postgres().await {
                        super::$name(store).await;
                    }
                }
            )*
        }
    };
}
