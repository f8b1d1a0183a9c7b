//! The web pages over HTTP on two generated days of the fictional
//! organisation: each role logs in and sees its pages; sessions, CSRF checks
//! and role checks hold; the HTML of the key pages is snapshotted.

use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;
use tollgate_ingest::{Format, IngestOptions, NoProgress, ingest_file};
use tollgate_lineage::{LineageMode, Taxonomy, parse_catalog, save_import};
use tollgate_store::testing::TestStore;
use tollgate_web::Role::{self, *};

use crate::helpers::TestApp;

/// October 1st and 2nd of the generated organisation, with its reference data,
/// budgets and lineage catalog.
async fn fixture(store: &TestStore) {
    let out = store.dir.path().join("generated");
    let report = tollgate_fixtures::generate(&tollgate_fixtures::GenerateOptions {
        year: 2026,
        month: 10,
        requests: 30_000,
        seed: 42,
        traffic_seed: None,
        until: Some("2026-10-03T00:00:00Z".parse().unwrap()),
        out: out.clone(),
        scale: Default::default(),
    })
    .unwrap();
    let reference = out.join("reference");
    let db = &store.db;
    tollgate_reports::price_book::import(db, &reference.join("prices.csv"))
        .await
        .unwrap();
    tollgate_reports::capacity::import_backends(db, &reference.join("backends.csv"))
        .await
        .unwrap();
    tollgate_reports::capacity::import_ptu(db, &reference.join("ptu-reservations.csv"))
        .await
        .unwrap();
    tollgate_reports::ownership::import(db, &reference.join("ownership.toml"))
        .await
        .unwrap();
    let options = IngestOptions {
        format: Format::Auto,
        ..IngestOptions::default()
    };
    for file in report.files.iter().filter(|f| !f.starts_with(&reference)) {
        ingest_file(store, file, &options, Arc::new(NoProgress))
            .await
            .unwrap();
    }
    tollgate_reports::budgets::import(store, &reference.join("budgets.toml"), "test")
        .await
        .unwrap();
    let taxonomy = Taxonomy::default();
    let catalog = std::fs::read_to_string(reference.join("catalog.yaml")).unwrap();
    let import = parse_catalog(&catalog, "catalog.yaml", &taxonomy).unwrap();
    save_import(db, &import, &taxonomy, "test", LineageMode::Replace)
        .await
        .unwrap();
    // Judged before the server starts, so its own first evaluation finds
    // nothing new and every page shows the same episodes.
    tollgate_reports::alerts::install_rules(store, &[])
        .await
        .unwrap();
    let options = tollgate_reports::alerts::AlertOptions::default();
    tollgate_reports::alerts::evaluate_live(store, &options, false)
        .await
        .unwrap();
}

/// A browser's view of the server: no redirects followed, the session cookie
/// kept by hand.
pub(crate) struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookie: Option<String>,
}

impl<'a> Browser<'a> {
    pub(crate) fn new(app: &'a TestApp) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            app,
            client,
            cookie: None,
        }
    }

    async fn login_with(&mut self, key: &str) -> reqwest::Response {
        let response = self
            .client
            .post(self.app.url("/login"))
            .form(&[("key", key), ("next", "")])
            .send()
            .await
            .unwrap();
        if let Some(set) = response.headers().get(SET_COOKIE) {
            let set = set.to_str().unwrap().to_owned();
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
        }
        response
    }

    /// Logs in as `role`; returns where the login leads.
    pub(crate) async fn login(&mut self, role: Role) -> String {
        let key = self.app.key(role).to_owned();
        let response = self.login_with(&key).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{role:?}");
        let set = response.headers()[SET_COOKIE].to_str().unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure"),
            "{set}"
        );
        response.headers()[LOCATION].to_str().unwrap().to_owned()
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        let mut request = self.client.get(self.app.url(path));
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    /// A page that must answer 200; its HTML.
    pub(crate) async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        response.text().await.unwrap()
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.client.post(self.app.url(path)).form(form);
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send().await.unwrap()
    }
}

/// The CSRF token a page's forms carry.
fn csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    html[at..at + 64].to_owned()
}

/// The page with what changes from run to run (the CSRF token) masked.
fn stable(html: &str) -> String {
    const MARK: &str = "name=\"csrf\" value=\"";
    let mut parts = html.split(MARK);
    let mut out = parts.next().unwrap_or_default().to_owned();
    for part in parts {
        out.push_str(MARK);
        out.push_str("[csrf]");
        out.push_str(part.get(64..).unwrap_or(part));
    }
    out
}

/// The month's total as the API gives it, formatted as the pages do.
async fn api_total(app: &TestApp) -> String {
    let rows: Value = app
        .get(
            "/api/v1/reports/chargeback?month=2026-10&by=cost_centre",
            Finops,
        )
        .await
        .json()
        .await
        .unwrap();
    let total = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cost_centre"] == "TOTAL")
        .unwrap()["total"]
        .as_str()
        .unwrap()
        .to_owned();
    let (units, cents) = total.split_once('.').unwrap();
    let mut grouped = String::new();
    for (i, c) in units.chars().enumerate() {
        if i > 0 && (units.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("${grouped}.{cents}")
}

pub async fn each_role_logs_in_and_sees_its_pages(mut store: TestStore) {
    fixture(&store).await;
    // The clock just after the two generated days: budgets forecast from them.
    store.store.clock = tollgate_store::Clock::fixed(crate::helpers::at("2026-10-03T00:00:00Z"));
    let app = TestApp::spawn(store).await;

    let mut finops = Browser::new(&app);
    assert_eq!(finops.login(Finops).await, "/finops");
    let page = finops.page("/finops?month=2026-10").await;
    let total = api_total(&app).await;
    assert!(
        page.contains(&format!("data-testid=\"stat-total\"><div class=\"label\">Total spend</div><div class=\"value\">{total}")),
        "the FinOps page shows the API's total {total}"
    );
    assert!(page.contains("Daily spend by model, 2026-10"));
    assert!(page.contains("The numbers behind this chart"));
    insta::assert_snapshot!("finops_page", stable(&page));
    // The drill-down ends on days that add up to the cost centre.
    let drill = finops
        .page("/finops/drill?month=2026-10&cost_centre=cc-finance")
        .await;
    assert!(drill.contains("Subscription spend"));
    let sub = drill
        .split("subscription=")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let models = finops
        .page(&format!(
            "/finops/drill?month=2026-10&cost_centre=cc-finance&subscription={sub}"
        ))
        .await;
    assert!(models.contains("Model spend"));
    let model = models
        .split("model=")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let days = finops
        .page(&format!(
            "/finops/drill?month=2026-10&cost_centre=cc-finance&subscription={sub}&model={model}"
        ))
        .await;
    assert!(
        days.contains("Day spend") && days.contains("<th scope=\"row\">2026-10-0"),
        "{days}"
    );
    let nothing = finops
        .get("/finops/drill?month=2026-10&cost_centre=cc-nobody")
        .await;
    assert_eq!(nothing.status(), StatusCode::NOT_FOUND);
    let bad_month = finops.get("/finops?month=October").await;
    assert_eq!(bad_month.status(), StatusCode::BAD_REQUEST);
    assert!(bad_month.text().await.unwrap().contains("month:"));
    // A page asked without what it needs says so, as a page.
    let incomplete = finops.get("/finops/drill?month=2026-10").await;
    assert_eq!(incomplete.status(), StatusCode::BAD_REQUEST);
    let html = incomplete.text().await.unwrap();
    assert!(
        html.contains("<!doctype html>") && html.contains("cost_centre"),
        "{html}"
    );

    let mut operator = Browser::new(&app);
    assert_eq!(operator.login(Operator).await, "/operations");
    let ops = operator.page("/operations?month=2026-10").await;
    assert!(ops.contains("429s over time, by source"));
    assert!(ops.contains("aoai-eastus-ptu"), "latency per backend");
    insta::assert_snapshot!("operations_page", stable(&ops));

    let mut security = Browser::new(&app);
    assert_eq!(security.login(Security).await, "/security");
    let graph = security.page("/security").await;
    let reach: Value = app
        .get("/api/v1/lineage/reach?kinds=agent", Security)
        .await
        .json()
        .await
        .unwrap();
    for agent in reach.as_array().unwrap() {
        let name = agent["node"]["name"].as_str().unwrap();
        assert!(
            graph.contains(&format!(">{name}</a></th>")),
            "{name} listed"
        );
    }
    assert!(graph.contains("<svg") && graph.contains("graph-title"));
    insta::assert_snapshot!("security_page", stable(&graph));
    let node = security.page("/security/node?name=data-steward").await;
    assert!(node.contains("Why it is Highly Confidential"));
    insta::assert_snapshot!("security_node_page", stable(&node));
    let focused = security
        .page("/security?focus=finance-ledger&depth=3&highlight=blast")
        .await;
    assert!(focused.contains("Focused on"));
    assert_eq!(
        security.get("/security?focus=no-such-node").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        security.get("/security?depth=9").await.status(),
        StatusCode::BAD_REQUEST
    );
    let dlp = security
        .page("/security/dlp?label=Highly%20Confidential")
        .await;
    assert!(dlp.contains("data-testid=\"hits\"") || dlp.contains("No hit matches"));
    assert_eq!(
        security.get("/security/dlp?from=yesterday").await.status(),
        StatusCode::BAD_REQUEST
    );
    let console = security.page("/security/sql").await;
    let token = csrf(&console);
    let answer = security
        .post(
            "/security/sql",
            &[
                ("csrf", &token),
                ("sql", "SELECT count(*) AS n FROM requests"),
            ],
            None,
        )
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("<th scope=\"col\">n</th>")
    );
    let refused = security
        .post(
            "/security/sql",
            &[("csrf", &token), ("sql", "DROP TABLE requests")],
            None,
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("data-testid=\"sql-error\"")
    );

    let mut admin = Browser::new(&app);
    assert_eq!(admin.login(Admin).await, "/finops");
    let page = admin.page("/admin").await;
    for role in ["admin", "finops", "security"] {
        assert!(
            page.contains(&format!(">test {role}</th>")),
            "key {role} listed"
        );
    }
    assert!(page.contains("backend-429-rate") && page.contains("gpt-4o"));
    app.stop().await;
}

pub async fn sessions_forms_and_roles_are_guarded(store: TestStore) {
    let app = TestApp::spawn(store).await;
    let mut browser = Browser::new(&app);

    // No session: to the login, and back after it.
    let anonymous = browser.get("/finops?month=2026-10").await;
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        anonymous.headers()[LOCATION],
        "/login?next=%2Ffinops%3Fmonth%3D2026-10"
    );
    let refused = browser.login_with("tg_nonsense").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("unknown, revoked or expired")
    );
    let gateway = browser.login_with(app.key(Gateway)).await;
    assert_eq!(gateway.status(), StatusCode::FORBIDDEN);
    assert!(gateway.text().await.unwrap().contains("has no pages"));
    let elsewhere = browser
        .client
        .post(app.url("/login"))
        .header("origin", "https://evil.example")
        .form(&[("key", app.key(Admin))])
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN, "login CSRF");
    let next = browser
        .client
        .post(app.url("/login"))
        .form(&[("key", app.key(Finops)), ("next", "//evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(next.headers()[LOCATION], "/finops", "no open redirect");

    // A security key: its own pages, never FinOps or admin.
    assert_eq!(browser.login(Security).await, "/security");
    for path in [
        "/finops",
        "/finops/drill?cost_centre=x",
        "/admin",
        "/operations",
    ] {
        let response = browser.get(path).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        let html = response.text().await.unwrap();
        assert!(html.contains("may not open"), "{path}");
        assert!(
            html.contains("href=\"/security\""),
            "the user's own navigation"
        );
    }
    let page = browser.page("/security").await;
    assert!(!page.contains("href=\"/finops\"") && !page.contains("href=\"/admin\""));
    assert!(
        page.contains("Search for a node"),
        "an empty graph has nothing to draw"
    );
    for path in ["/security/dlp", "/security/sql"] {
        browser.page(path).await;
    }
    // The session reads the API (export links), but changes nothing through it.
    let read = browser.get("/api/v1/lineage/findings").await;
    assert_eq!(read.status(), StatusCode::OK);
    let write = browser
        .post("/api/v1/keys", &[("role", "admin")], None)
        .await;
    assert_eq!(write.status(), StatusCode::UNAUTHORIZED);

    // With no data yet, the operations page draws empty charts.
    let mut operator = Browser::new(&app);
    operator.login(Operator).await;
    assert!(operator.page("/operations").await.contains("No data"));

    // FinOps: a forged close and one from another site are refused; the real one works.
    let mut finops = Browser::new(&app);
    finops.login(Finops).await;
    let page = finops.page("/finops?month=2026-10").await;
    let token = csrf(&page);
    for (form_token, origin) in [
        ("forged", None),
        ("", None),
        (token.as_str(), Some("https://evil.example")),
    ] {
        let forged = finops
            .post(
                "/finops/close",
                &[("csrf", form_token), ("month", "2026-10")],
                origin,
            )
            .await;
        assert_eq!(
            forged.status(),
            StatusCode::FORBIDDEN,
            "{form_token:?} {origin:?}"
        );
        assert!(forged.text().await.unwrap().contains("CSRF"));
    }
    assert!(app.store.db.closed_months().await.unwrap().is_empty());
    let other_session = browser
        .post(
            "/finops/close",
            &[("csrf", &token), ("month", "2026-10")],
            None,
        )
        .await;
    assert_eq!(
        other_session.status(),
        StatusCode::FORBIDDEN,
        "another session's token"
    );
    app.set_clock("2026-11-05T00:00:00Z");
    let close = finops
        .post(
            "/finops/close",
            &[("csrf", &token), ("month", "2026-10")],
            Some(&app.url("")),
        )
        .await;
    assert_eq!(close.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.store.db.closed_months().await.unwrap().len(), 1);
    let audit = app.store.db.audit_log(None, 10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "month.close" && a.actor.contains("test finops"))
    );

    // Revoking the key ends its sessions; logging out ends one.
    let mut admin = Browser::new(&app);
    admin.login(Admin).await;
    let page = admin.page("/admin").await;
    let token = csrf(&page);
    let finops_id = app
        .store
        .db
        .api_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name == "test finops")
        .unwrap()
        .id;
    let revoked = admin
        .post(
            &format!("/admin/keys/{finops_id}/revoke"),
            &[("csrf", &token)],
            None,
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert_eq!(finops.get("/finops").await.status(), StatusCode::SEE_OTHER);
    let created = admin
        .post(
            "/admin/keys",
            &[
                ("csrf", &token),
                ("role", "operator"),
                ("name", "night shift"),
            ],
            None,
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let html = admin.page("/admin").await;
    assert!(html.contains("night shift</strong> created"), "{html}");
    let again = admin.page("/admin").await;
    assert!(
        !again.contains("night shift</strong> created"),
        "the secret is shown once"
    );
    let not_an_id = admin
        .post("/admin/keys/seven/revoke", &[("csrf", &token)], None)
        .await;
    assert_eq!(not_an_id.status(), StatusCode::BAD_REQUEST);
    let no_role = admin.post("/admin/keys", &[("csrf", &token)], None).await;
    assert_eq!(no_role.status(), StatusCode::BAD_REQUEST);
    assert!(no_role.text().await.unwrap().contains("role"));
    let bad_role = admin
        .post("/admin/keys", &[("csrf", &token), ("role", "root")], None)
        .await;
    assert_eq!(bad_role.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let logout = admin.post("/logout", &[("csrf", &token)], None).await;
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert!(
        logout.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(admin.get("/admin").await.status(), StatusCode::SEE_OTHER);

    // Behind a TLS proxy the cookie is Secure.
    let tls = browser
        .client
        .post(app.url("/login"))
        .header("x-forwarded-proto", "https")
        .form(&[("key", app.key(Operator))])
        .send()
        .await
        .unwrap();
    let set = tls.headers()[SET_COOKIE].to_str().unwrap();
    assert!(
        set.starts_with("__Host-tg_session=") && set.ends_with("; Secure"),
        "{set}"
    );
    // A form sent after the session ended logs in again to the start page,
    // not to the form's target.
    let expired = Browser::new(&app)
        .post(
            "/finops/close",
            &[("csrf", "x"), ("month", "2026-10")],
            None,
        )
        .await;
    assert_eq!(expired.headers()[LOCATION], "/login?next=%2F");

    // Unknown paths: a page for people, JSON for programs.
    let missing = browser.get("/nowhere").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.text().await.unwrap().contains("<!doctype html>"));
    let missing = app.get("/api/v1/nowhere", Admin).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"], "not_found");
    let css = browser.get("/assets/app.css").await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    app.stop().await;
}

/// A graph too large to list or draw whole: the first 100 agents are listed
/// with the count of all, and only the focused neighbourhood is drawn.
pub async fn a_large_graph_is_listed_in_part_and_drawn_around_its_focus(store: TestStore) {
    let mut catalog = String::from(
        "version: 1\nnodes:\n  - {kind: data_source, namespace: \"big\", name: \"vault\", label: \"Highly Confidential\"}\n",
    );
    for i in 0..150 {
        catalog.push_str(&format!(
            "  - {{kind: agent, namespace: \"big\", name: \"agent-{i:03}\"}}\n"
        ));
    }
    catalog.push_str("edges:\n");
    for i in 0..150 {
        catalog.push_str(&format!(
            "  - {{kind: reads, from: {{namespace: \"big\", name: \"vault\"}}, to: {{namespace: \"big\", name: \"agent-{i:03}\"}}}}\n"
        ));
    }
    let taxonomy = Taxonomy::default();
    let import = parse_catalog(&catalog, "big.yaml", &taxonomy).unwrap();
    save_import(&store.db, &import, &taxonomy, "test", LineageMode::Replace)
        .await
        .unwrap();
    let app = TestApp::spawn(store).await;
    let mut security = Browser::new(&app);
    security.login(Security).await;
    let page = security.page("/security").await;
    assert!(
        page.contains("the first 100 of 150"),
        "the count of all is given"
    );
    assert_eq!(page.matches(">draw</a>").count(), 100);
    // The default focus is the first agent; from the vault, 60 of 150 are drawn.
    let drawn = security.page("/security?focus=vault&depth=1").await;
    assert!(
        drawn.contains("61 nodes drawn; more lie beyond"),
        "capped per side"
    );
    app.stop().await;
}
