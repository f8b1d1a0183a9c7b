//! `tollgate alerts` and `tollgate report sla` on the generator's month: the
//! CLI's ingest judges the rules, the episodes list at their hours, a replay
//! finds them again, the SLA report prices the incidents, and bad input is
//! named.

use tollgate_store::testing::TestStore;

use super::{generate_estate, stderr, stdout, tollgate};

tollgate_store::backend_tests!(the_cli_ingest_raises_the_months_alerts_and_reports_the_sla);

async fn the_cli_ingest_raises_the_months_alerts_and_reports_the_sla(store: TestStore) {
    let out = generate_estate(&store, 100_000);
    let mut args: Vec<String> = vec!["ingest".into(), "--format".into(), "apim".into()];
    for category in ["gateway-logs", "llm-logs"] {
        let mut files: Vec<_> = std::fs::read_dir(out.join(category))
            .unwrap()
            .map(|e| e.unwrap().path().to_str().unwrap().to_owned())
            .collect();
        files.sort();
        args.extend(files);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ingested = tollgate(&store, &args, &[]);
    assert!(ingested.status.success(), "{}", stderr(&ingested));

    let listed = tollgate(
        &store,
        &[
            "alerts",
            "list",
            "--rule",
            "backend-429-rate",
            "--format",
            "csv",
        ],
        &[],
    );
    assert!(listed.status.success(), "{}", stderr(&listed));
    let text = stdout(&listed);
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert!(rows[0].contains("aoai-eastus-ptu"), "{text}");
    assert!(
        rows[0].contains("2026-10-14T10:00:00Z,2026-10-14T10:00:00Z,2026-10-14T13:00:00Z"),
        "{text}"
    );

    let replayed = tollgate(
        &store,
        &[
            "alerts",
            "replay",
            "--from",
            "2026-10-21",
            "--to",
            "2026-10-22",
        ],
        &[],
    );
    assert!(replayed.status.success(), "{}", stderr(&replayed));
    assert!(
        stdout(&replayed)
            .contains("rules judged from 2026-10-21T00:00:00Z to 2026-10-22T00:00:00Z"),
        "{}",
        stdout(&replayed)
    );

    let sla = tollgate(&store, &["report", "sla", "--month", "2026-10"], &[]);
    assert!(sla.status.success(), "{}", stderr(&sla));
    let text = stdout(&sla);
    for expected in [
        "aoai-eastus-ptu",
        "error_budget_used",
        "incidents (alert episodes) and their error-budget cost:",
        "latency-p95 aoai-swedencentral-paygo 2026-10-21T14:00:00Z .. 2026-10-21T16:00:00Z",
        "availability-slo[1h/5m] aoai-eastus-ptu 2026-10-14T10:00:00Z",
        "backend-429-rate aoai-eastus-ptu 2026-10-14T10:00:00Z .. 2026-10-14T13:00:00Z",
    ] {
        assert!(text.contains(expected), "{expected} missing from\n{text}");
    }
    assert!(stderr(&sla).contains("SLO 99.50% good"), "{}", stderr(&sla));

    let bad = tollgate(
        &store,
        &["report", "sla", "--month", "2026-10", "--by", "colour"],
        &[],
    );
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("no dimension \"colour\""),
        "{}",
        stderr(&bad)
    );
    let bad = tollgate(
        &store,
        &[
            "alerts",
            "replay",
            "--from",
            "yesterday",
            "--to",
            "2026-10-02",
        ],
        &[],
    );
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("expected RFC 3339 or YYYY-MM-DD"),
        "{}",
        stderr(&bad)
    );

    // A rule in the config file that does not check stops the command, named.
    let config = store.dir.path().join("tollgate.toml");
    std::fs::write(
        &config,
        "[[alerts.rule]]\nname = \"slow\"\nkind = \"percentile_above\"\nmetric = \"latency_p95\"\nwindow = \"forever\"\n",
    )
    .unwrap();
    let refused = tollgate(
        &store,
        &["--config", config.to_str().unwrap(), "alerts", "rules"],
        &[],
    );
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(message.contains("alert rule \"slow\" refused"), "{message}");
    assert!(
        message.contains("window:") && message.contains("threshold:"),
        "{message}"
    );
}
