//! `TestApp`: a server on a random port over a fresh store, one key per role,
//! and the requests the tests make.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;
use tollgate_store::testing::TestStore;
use tollgate_web::{KeyRequest, Role, ServerConfig, create_key};

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub store: TestStore,
    pub keys: HashMap<Role, String>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<tollgate_web::Result<()>>>,
}

/// What the servers' clocks say unless a test moves them: late in the month
/// the tests' traffic is dated in.
pub const TEST_NOW: &str = "2026-10-31T12:00:00Z";

pub fn at(time: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(time).unwrap().to_utc()
}

/// The gateway the test gateway key may read.
pub const GATEWAY: &str = "gw-a";

pub fn test_config() -> ServerConfig {
    ServerConfig {
        // Tests evaluate through pushes and changes; the timer stays out of the way.
        evaluate_every: Duration::from_secs(3600),
        refresh_every: Duration::from_millis(100),
        webhook_backoff: Duration::from_millis(50),
        webhook_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    }
}

impl TestApp {
    pub async fn spawn(store: TestStore) -> TestApp {
        Self::spawn_with(store, test_config()).await
    }

    pub async fn spawn_with(mut store: TestStore, config: ServerConfig) -> TestApp {
        // Budgets follow the wall clock: the tests' traffic is October 2026's.
        if store.clock.is_system() {
            store.store.clock = tollgate_store::Clock::fixed(at(TEST_NOW));
        }
        let mut keys = HashMap::new();
        for role in Role::ALL {
            let gateways = if role == Role::Gateway {
                vec![GATEWAY.to_owned()]
            } else {
                Vec::new()
            };
            let created = create_key(
                &store.db,
                &KeyRequest {
                    role: role.name().to_owned(),
                    gateways,
                    name: Some(format!("test {}", role.name())),
                    expires_at: None,
                },
                "test",
            )
            .await
            .unwrap();
            keys.insert(role, created.secret);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(tollgate_web::serve(
            store.store.clone(),
            config,
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        TestApp {
            addr,
            client: reqwest::Client::new(),
            store,
            keys,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Moves the server's wall clock (budget periods, the ingest window).
    pub fn set_clock(&self, now: &str) {
        self.store.clock.set(at(now));
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn key(&self, role: Role) -> &str {
        &self.keys[&role]
    }

    pub async fn get(&self, path: &str, role: Role) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(self.key(role))
            .send()
            .await
            .unwrap()
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        role: Role,
        body: &Value,
    ) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(self.key(role))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn push(&self, lines: &str, key: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url("/api/v1/ingest?format=canonical"))
            .bearer_auth(self.key(Role::Ingest))
            .body(lines.to_owned());
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.unwrap()
    }

    /// Pushes, expects the batch committed, and waits until what it changes
    /// is derived (rollups, alerts, budgets, gateway views).
    pub async fn push_ok(&self, lines: &str) -> Value {
        let response = self.push(lines, None).await;
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["outcome"], "committed", "{answer}");
        self.derived(answer["watermark"].as_i64().unwrap()).await;
        answer
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// The server's `/api/v1/freshness` answer.
    pub async fn freshness(&self) -> Value {
        let response = self.get("/api/v1/freshness", Role::Ingest).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Waits until derived answers cover the manifest `watermark`, at most 30 s.
    pub async fn derived(&self, watermark: i64) {
        for _ in 0..600 {
            if self.freshness().await["derived_watermark"]
                .as_i64()
                .unwrap()
                >= watermark
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("derived data did not reach watermark {watermark} in 30 s");
    }

    /// Waits until derived answers cover everything committed so far.
    pub async fn settled(&self) {
        let committed = self.freshness().await["committed_watermark"]
            .as_i64()
            .unwrap();
        self.derived(committed).await;
    }

    /// The gateway key's view of its gateway.
    pub async fn pull(&self) -> Value {
        let response = self
            .get(
                &format!("/api/v1/gateways/{GATEWAY}/budgets"),
                Role::Gateway,
            )
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Shuts the server down (requests in flight finish) and hands back the
    /// store, whose database lives as long as it does.
    pub async fn stop(mut self) -> TestStore {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
        self.store
    }
}

/// Canonical lines: `n` requests of `subscription` through the test gateway at
/// `time` (RFC 3339), each with `prompt` and `completion` tokens.
pub fn requests(
    id: &str,
    time: &str,
    subscription: &str,
    n: usize,
    prompt: i64,
    completion: i64,
) -> String {
    (0..n)
        .map(|i| {
            json!({
                "request_id": format!("{id}-{i}"),
                "time": time,
                "gateway_kind": "apim",
                "gateway_id": GATEWAY,
                "region": "East US",
                "subscription": subscription,
                "product": "gold",
                "api": "azure-openai",
                "backend": "payg-eastus",
                "status_code": 200,
                "backend_status_code": 200,
                "total_latency_ms": 400,
                "deployment": "gpt-4o",
                "model": "gpt-4o",
                "prompt_tokens": prompt,
                "cached_tokens": 0,
                "completion_tokens": completion,
            })
            .to_string()
                + "\n"
        })
        .collect()
}

/// A budget of `quota` tokens a month on `subscription`.
pub fn token_budget(name: &str, subscription: &str, quota: i64, action: &str) -> Value {
    let mut budget = json!({
        "name": name,
        "scope": "subscription",
        "scope_id": subscription,
        "token_quota": quota,
        "tokens_per_minute": 10_000,
        "action": action,
    });
    if action == "throttle" {
        budget["throttle_tokens_per_minute"] = json!(1000);
    }
    budget
}

/// Polls until `check` holds (background work: webhooks), at most 10 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
