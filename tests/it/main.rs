//! The `tollgate` binary end to end: the README's flow, a crash mid-ingest, and the
//! errors a user sees. Runs on SQLite, and on Postgres when configured.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tollgate_store::testing::TestStore;

mod alerts;
mod lineage;

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/samples/canonical-small.jsonl")
}

/// Runs the binary with the store's data dir and (for Postgres) database URL.
fn tollgate(store: &TestStore, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    cmd.arg("--data-dir").arg(&store.config.data_dir);
    if let Some(url) = &store.config.database_url {
        cmd.arg("--database-url").arg(url.expose());
    }
    cmd.args(args)
        .env_remove("TOLLGATE_DATABASE_URL")
        .env_remove("TOLLGATE_DATA_DIR")
        .env_remove("TOLLGATE_CONFIG")
        .env_remove("TOLLGATE_NOW")
        .current_dir(store.dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run tollgate")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn count_requests(store: &TestStore) -> String {
    let out = tollgate(
        store,
        &[
            "sql",
            "SELECT COUNT(*) AS n FROM requests",
            "--format",
            "csv",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().nth(1).unwrap_or_default().to_owned()
}

/// Runs `tollgate fixtures generate` for October 2026 into the test's directory.
fn generate_estate(store: &TestStore, requests: u32) -> PathBuf {
    let out = store.dir.path().join("estate");
    let requests = requests.to_string();
    let generated = tollgate(
        store,
        &[
            "fixtures",
            "generate",
            "--month",
            "2026-10",
            "--requests",
            &requests,
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(generated.status.success(), "{}", stderr(&generated));
    assert!(
        stdout(&generated).starts_with(&format!("wrote {requests} requests")),
        "{}",
        stdout(&generated)
    );
    out
}

tollgate_store::backend_tests!(
    readme_flow_ingests_and_queries,
    a_crash_before_commit_leaves_nothing_visible,
    sql_that_writes_is_refused,
    a_generated_month_ingests_whole_in_either_order,
    the_generated_reference_data_loads_and_a_bad_book_is_refused,
    budgets_move_as_the_cli_ingests_side_by_side,
    keys_and_imports_from_the_cli_are_audited,
    the_demo_prepares_two_months_and_a_key_per_role,
);

async fn readme_flow_ingests_and_queries(store: TestStore) {
    let sample = sample();
    let out = tollgate(
        &store,
        &["ingest", "--format", "canonical", sample.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("committed: read 16 = written 14 + duplicate 1 + quarantined 1"),
        "{}",
        stdout(&out)
    );
    let out = tollgate(
        &store,
        &[
            "sql",
            "SELECT model, CAST(SUM(prompt_tokens) AS BIGINT) AS prompt FROM usage WHERE model IS NOT NULL GROUP BY model ORDER BY model",
            "--format",
            "json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 3, "{rows}");
    assert_eq!(rows[0]["model"], "gpt-4.1");

    let out = tollgate(&store, &["lake", "ls"], &[]);
    assert!(stdout(&out).contains("2026-10-02"), "{}", stdout(&out));
    let out = tollgate(&store, &["lake", "ls", "--files", "--format", "csv"], &[]);
    let files: Vec<String> = stdout(&out).lines().skip(1).map(str::to_owned).collect();
    assert_eq!(files.len(), 4, "{files:?}");
    for row in &files {
        let path = row.rsplit(',').next().unwrap();
        assert!(Path::new(path).is_file(), "{path}");
        assert!(path.contains("/date=2026-10-0"), "{path}");
    }
    let out = tollgate(&store, &["quarantine", "1", "--format", "csv"], &[]);
    assert!(stdout(&out).contains("16,"), "{}", stdout(&out));

    let again = tollgate(&store, &["ingest", sample.to_str().unwrap()], &[]);
    assert!(
        stdout(&again).contains("already ingested as batch 1"),
        "{}",
        stdout(&again)
    );
    assert_eq!(count_requests(&store), "14");
}

async fn a_crash_before_commit_leaves_nothing_visible(store: TestStore) {
    let sample = sample();
    let crashed = tollgate(
        &store,
        &["ingest", sample.to_str().unwrap()],
        &[("TOLLGATE_FAILPOINTS", "ingest.before_commit")],
    );
    assert!(
        !crashed.status.success(),
        "the failpoint must kill the process"
    );
    let lake = store.config.data_dir.join("lake/requests");
    let orphans = walk_parquet(&lake);
    assert!(
        !orphans.is_empty(),
        "the crashed batch had written its files"
    );
    assert_eq!(
        count_requests(&store),
        "0",
        "no partial batch may be visible"
    );

    let out = tollgate(&store, &["ingest", sample.to_str().unwrap()], &[]);
    assert!(
        stdout(&out).contains("written 14"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(count_requests(&store), "14");

    let out = tollgate(&store, &["lake", "gc", "--grace", "0s"], &[]);
    assert!(
        stdout(&out).contains("removed 4 unreferenced files"),
        "{}",
        stdout(&out)
    );
    for orphan in orphans {
        assert!(!orphan.exists());
    }
    assert_eq!(count_requests(&store), "14");
    let out = tollgate(&store, &["batches", "--format", "csv"], &[]);
    assert!(stdout(&out).contains(",abandoned,"), "{}", stdout(&out));
}

/// `--data-dir` relative to the working directory, as people type it.
#[test]
fn a_relative_data_dir_answers_sql() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .current_dir(dir.path())
            .args(["--data-dir", "data"])
            .args(args)
            .output()
            .unwrap()
    };
    let ingested = run(&["ingest", sample().to_str().unwrap()]);
    assert!(ingested.status.success(), "{}", stderr(&ingested));
    let answered = run(&[
        "sql",
        "SELECT COUNT(*) AS n FROM requests",
        "--format",
        "csv",
    ]);
    assert!(answered.status.success(), "{}", stderr(&answered));
    assert_eq!(stdout(&answered), "n\n14\n");
}

async fn sql_that_writes_is_refused(store: TestStore) {
    let out = tollgate(&store, &["sql", "DROP TABLE requests"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("only queries are allowed"),
        "{}",
        stderr(&out)
    );
    let out = tollgate(&store, &["ingest", "--format", "syslog", "x.log"], &[]);
    assert!(
        stderr(&out).contains("known formats: canonical"),
        "{}",
        stderr(&out)
    );
}

fn walk_parquet(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk_parquet(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            found.push(path);
        }
    }
    found
}

#[test]
fn a_broken_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tollgate.toml"), "data_dir = [").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["lake", "ls"])
        .current_dir(dir.path())
        .env_remove("TOLLGATE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("configuration tollgate.toml"),
        "{}",
        stderr(&out)
    );
}

async fn a_generated_month_ingests_whole_in_either_order(store: TestStore) {
    let out = generate_estate(&store, 3000);

    for name in [
        "prices.csv",
        "backends.csv",
        "ptu-reservations.csv",
        "ownership.toml",
        "budgets.toml",
        "catalog.yaml",
    ] {
        assert!(
            out.join("reference").join(name).is_file(),
            "reference/{name}"
        );
    }

    // The LLM logs first: their requests arrive later, in other files.
    for dir in ["llm-logs", "gateway-logs"] {
        let mut files: Vec<String> = std::fs::read_dir(out.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path().display().to_string())
            .collect();
        files.sort();
        let mut args = vec!["ingest", "--jobs", "2"];
        args.extend(files.iter().map(String::as_str));
        let ingested = tollgate(&store, &args, &[]);
        assert!(ingested.status.success(), "{}", stderr(&ingested));
        let reports: Vec<String> = stdout(&ingested).lines().map(str::to_owned).collect();
        assert_eq!(reports.len(), files.len());
        // Side by side, yet reported in the order given.
        for (line, file) in reports.iter().zip(&files) {
            assert!(line.starts_with(&format!("{file}: batch ")), "{line}");
            assert!(line.ends_with("quarantined 0"), "{line}");
        }
    }
    let sql = |q: &str| {
        let out = tollgate(&store, &["sql", q, "--format", "csv"], &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).lines().nth(1).unwrap_or_default().to_owned()
    };
    assert_eq!(sql("SELECT COUNT(*) FROM requests"), "3000");
    assert_eq!(
        sql(
            "SELECT COUNT(*) FROM token_usage t LEFT JOIN requests r ON t.request_id = r.request_id WHERE r.request_id IS NULL"
        ),
        "0",
        "every token row pairs with its request"
    );
    assert_eq!(
        sql("SELECT COUNT(*) - COUNT(DISTINCT request_id) FROM token_usage"),
        "0",
        "split LLM rows count once"
    );
    assert_eq!(
        sql("SELECT COUNT(*) FROM requests WHERE agent IS NULL"),
        "0"
    );
    let positive = |q: &str| sql(q).parse::<i64>().unwrap() > 0;
    assert!(positive(
        "SELECT COUNT(*) FROM requests WHERE error_source = 'llm-token-limit'"
    ));
    assert!(positive(
        "SELECT COUNT(*) FROM requests WHERE cache_status = 'hit'"
    ));
}

async fn the_generated_reference_data_loads_and_a_bad_book_is_refused(store: TestStore) {
    let out = generate_estate(&store, 50);
    let book = out.join("reference").join("prices.csv");
    let imported = tollgate(&store, &["prices", "import", book.to_str().unwrap()], &[]);
    assert!(imported.status.success(), "{}", stderr(&imported));
    assert!(
        stdout(&imported).ends_with("price book replaced: 11 rows\n"),
        "{}",
        stdout(&imported)
    );
    let listed = tollgate(&store, &["prices", "list", "--format", "csv"], &[]);
    assert!(
        stdout(&listed).contains(
            "gpt-4o-mini,DataZoneStandard,swedencentral,USD,1M,0.15,0.075,0.6,2026-10-16,\n"
        ),
        "{}",
        stdout(&listed)
    );

    let bad = store.dir.path().join("bad.csv");
    let text = std::fs::read_to_string(&book)
        .unwrap()
        .replace(",1K,", ",per token,");
    std::fs::write(&bad, text).unwrap();
    let refused = tollgate(&store, &["prices", "import", bad.to_str().unwrap()], &[]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("refused, nothing was stored (2 problems)"),
        "{}",
        stderr(&refused)
    );
    let listed_again = tollgate(&store, &["prices", "list", "--format", "csv"], &[]);
    assert_eq!(
        stdout(&listed_again),
        stdout(&listed),
        "the book is unchanged"
    );

    let owners = out.join("reference").join("ownership.toml");
    let imported = tollgate(
        &store,
        &["ownership", "import", owners.to_str().unwrap()],
        &[],
    );
    assert!(imported.status.success(), "{}", stderr(&imported));
    assert!(
        stdout(&imported).contains("ownership replaced: 8 cost centres"),
        "{}",
        stdout(&imported)
    );
    let listed = tollgate(&store, &["ownership", "list", "--format", "csv"], &[]);
    assert!(
        stdout(&listed).contains("agent,hr-assistant,cc-hr,Human Resources\n"),
        "{}",
        stdout(&listed)
    );

    for (verb, file, row) in [
        (
            "backends",
            "backends.csv",
            "aoai-eastus-ptu,ProvisionedManaged,eastus,/subscriptions/5b2f8c1d-9e47-4a36-b0d2-7c8e1f4a6b93/resourceGroups/rg-ai-models/providers/Microsoft.CognitiveServices/accounts/aoai-contoso-eastus\n",
        ),
        (
            "ptu",
            "ptu-reservations.csv",
            "aoai-eastus-ptu,gpt-4o,50,1,hour,USD,4,spread,2026-01-01,\n",
        ),
    ] {
        let path = out.join("reference").join(file);
        let imported = tollgate(&store, &[verb, "import", path.to_str().unwrap()], &[]);
        assert!(imported.status.success(), "{}", stderr(&imported));
        let listed = tollgate(&store, &[verb, "list", "--format", "csv"], &[]);
        assert!(stdout(&listed).contains(row), "{}", stdout(&listed));
    }

    // The month's chargeback: its rounded rows add up to its TOTAL row.
    let mut args = vec!["ingest".to_owned()];
    for dir in ["gateway-logs", "llm-logs"] {
        for entry in std::fs::read_dir(out.join(dir)).unwrap() {
            args.push(entry.unwrap().path().display().to_string());
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ingested = tollgate(&store, &args, &[]);
    assert!(ingested.status.success(), "{}", stderr(&ingested));
    let report = tollgate(
        &store,
        &[
            "report",
            "chargeback",
            "--month",
            "2026-10",
            "--by",
            "cost_centre",
            "--format",
            "csv",
        ],
        &[],
    );
    assert!(report.status.success(), "{}", stderr(&report));
    let text = stdout(&report);
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let at = header.iter().position(|c| *c == "total").unwrap();
    let cents = |line: &str| -> i64 {
        let total = line.split(',').nth(at).unwrap();
        total.replace('.', "").parse().unwrap()
    };
    let rows: Vec<&str> = text.lines().skip(1).collect();
    let (last, groups) = rows.split_last().unwrap();
    assert!(last.starts_with("TOTAL,50,"), "{text}");
    assert_eq!(
        groups.iter().map(|l| cents(l)).sum::<i64>(),
        cents(last),
        "{text}"
    );
    assert!(
        groups.iter().any(|l| l.starts_with("unallocated,")),
        "{text}"
    );

    let rebuilt = tollgate(&store, &["rollups", "rebuild"], &[]);
    assert!(rebuilt.status.success(), "{}", stderr(&rebuilt));
    assert!(stdout(&rebuilt).starts_with("rebuilt rollups: "));

    // Exports: exact Parquet, the CSV as reported, FOCUS; never over a file.
    let dir = store.dir.path();
    let export = |args: &[&str]| {
        let mut all = vec!["export"];
        all.extend(args);
        all.extend(["--month", "2026-10"]);
        tollgate(&store, &all, &[])
    };
    let parquet = dir.join("by-model.parquet");
    let out = export(&[
        "chargeback",
        "--by",
        "model",
        "--format",
        "parquet",
        "-o",
        parquet.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read(&parquet).unwrap().starts_with(b"PAR1"));
    let again = export(&[
        "chargeback",
        "--format",
        "csv",
        "-o",
        parquet.to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("by-model.parquet"),
        "{}",
        stderr(&again)
    );
    let focus = dir.join("focus.csv");
    let out = export(&["focus", "-o", focus.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let focus = std::fs::read_to_string(&focus).unwrap();
    assert!(focus.starts_with("AvailabilityZone,BilledCost,"), "{focus}");
    assert!(focus.contains(",Purchase,") && focus.contains(",Usage,"));

    // Close: the report says where it comes from; re-opening takes force.
    let closed = tollgate(&store, &["month", "close", "2026-10"], &[]);
    assert!(closed.status.success(), "{}", stderr(&closed));
    assert!(
        stdout(&closed).starts_with("closed 2026-10: total "),
        "{}",
        stdout(&closed)
    );
    let report = tollgate(&store, &["report", "chargeback", "--month", "2026-10"], &[]);
    assert!(report.status.success(), "{}", stderr(&report));
    assert!(
        stderr(&report).contains("2026-10 is closed"),
        "{}",
        stderr(&report)
    );
    let refused = tollgate(
        &store,
        &["month", "reopen", "2026-10", "--reason", "typo"],
        &[],
    );
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    let listed = tollgate(&store, &["month", "list", "--format", "csv"], &[]);
    assert!(
        stdout(&listed).contains("2026-10,close,"),
        "{}",
        stdout(&listed)
    );
}

/// Budgets are evaluated after every committed batch of a `--jobs 2` ingest,
/// beside the ingest (evaluating in its way once stalled it on the other
/// file's open transaction until SQLite gave up).
async fn budgets_move_as_the_cli_ingests_side_by_side(store: TestStore) {
    let out = generate_estate(&store, 3000);
    let reference = out.join("reference");
    for (what, file) in [
        ("ownership", "ownership.toml"),
        ("prices", "prices.csv"),
        ("backends", "backends.csv"),
    ] {
        let path = reference.join(file);
        let imported = tollgate(&store, &[what, "import", path.to_str().unwrap()], &[]);
        assert!(imported.status.success(), "{}", stderr(&imported));
    }
    let mut days: Vec<PathBuf> = std::fs::read_dir(out.join("gateway-logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    days.sort();
    let files = |days: &[PathBuf]| -> Vec<String> {
        days.iter()
            .flat_map(|d| {
                let name = d.file_name().unwrap();
                [d.clone(), out.join("llm-logs").join(name)]
            })
            .map(|p| p.to_str().unwrap().to_owned())
            .collect()
    };
    let first = files(&days[..1]);
    let mut args = vec!["ingest", "--format", "apim"];
    args.extend(first.iter().map(String::as_str));
    assert!(tollgate(&store, &args, &[]).status.success());
    let budgets = reference.join("budgets.toml");
    let imported = tollgate(
        &store,
        &["budgets", "import", budgets.to_str().unwrap()],
        &[],
    );
    assert!(imported.status.success(), "{}", stderr(&imported));

    let rest = files(&days[1..]);
    let mut args = vec!["ingest", "--format", "apim", "--jobs", "2"];
    args.extend(rest.iter().map(String::as_str));
    // Budgets follow the wall clock: as it was at the end of the month.
    let october = [("TOLLGATE_NOW", "2026-10-31T23:00:00Z")];
    let ingested = tollgate(&store, &args, &october);
    let (said, warned) = (stdout(&ingested), stderr(&ingested));
    assert!(ingested.status.success(), "{warned}");
    assert!(
        !said.contains("not evaluated") && !warned.contains("not evaluated"),
        "{said}{warned}"
    );
    // Batches committed while an evaluation runs are evaluated together, so a
    // budget may go from ok to exhausted in one step; it never goes back.
    let changes: Vec<&str> = said.lines().filter(|l| l.starts_with("budget ")).collect();
    let exhausted = changes
        .iter()
        .filter(|l| l.ends_with("-> exhausted"))
        .count();
    assert_eq!(exhausted, 2, "{said}");
    assert!(changes.iter().all(|l| !l.ends_with("-> ok")), "{said}");
    let listed = tollgate(&store, &["budgets", "list", "--format", "csv"], &october);
    assert_eq!(
        stdout(&listed).matches(",exhausted,").count(),
        2,
        "{}",
        stdout(&listed)
    );
}

async fn keys_and_imports_from_the_cli_are_audited(store: TestStore) {
    let created = tollgate(
        &store,
        &["keys", "create", "--role", "finops", "--name", "fin"],
        &[("USER", "ana")],
    );
    assert!(created.status.success(), "{}", stderr(&created));
    let secret = stdout(&created);
    assert!(
        secret.starts_with("tg_") && secret.trim().len() == 67,
        "{secret}"
    );
    let listed = stdout(&tollgate(&store, &["keys", "list", "--format", "csv"], &[]));
    assert!(listed.contains(",fin,finops,,tg_"), "{listed}");
    assert!(
        !listed.contains(secret.trim()),
        "the secret is never listed"
    );
    let refused = tollgate(&store, &["keys", "create", "--role", "gateway"], &[]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("gateways: a gateway key needs at least one gateway id"),
        "{}",
        stderr(&refused)
    );
    let revoked = tollgate(&store, &["keys", "revoke", "1"], &[("USER", "ana")]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let again = tollgate(&store, &["keys", "revoke", "1"], &[]);
    assert!(
        stderr(&again).contains("no live key with id 1"),
        "{}",
        stderr(&again)
    );
    let out = generate_estate(&store, 50);
    let book = out.join("reference").join("prices.csv");
    assert!(
        tollgate(
            &store,
            &["prices", "import", book.to_str().unwrap()],
            &[("USER", "ana")]
        )
        .status
        .success()
    );
    let entries = store.db.audit_log(None, 10).await.unwrap();
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("cli:ana", "prices.import"),
            ("cli:ana", "key.revoke"),
            ("cli:ana", "key.create")
        ]
    );
}

/// The README's first command, without serving: the previous month and the
/// current one up to "now", everything loaded, one key per role.
async fn the_demo_prepares_two_months_and_a_key_per_role(store: TestStore) {
    let keys = store.dir.path().join("keys.json");
    let args = [
        "demo",
        "--no-serve",
        "--requests",
        "6000",
        "--now",
        "2026-11-22T12:00:00Z",
        "--listen",
        "127.0.0.1:0",
        "--keys-file",
        keys.to_str().unwrap(),
    ];
    let out = tollgate(&store, &args, &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let said = stdout(&out);
    assert!(said.contains("[5/5] creating one key per role"), "{said}");
    assert!(
        said.contains("/finops?month=2026-10 (the month to close)"),
        "{said}"
    );
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&keys).unwrap()).unwrap();
    for role in ["admin", "finops", "operator", "security"] {
        let key = written["keys"][role].as_str().unwrap();
        assert!(key.starts_with("tg_") && said.contains(key), "{role}");
    }
    assert!(
        written["url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keys).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the keys file is the user's alone");
    }
    // Both months are in, the first with its reference data priced.
    let out = tollgate(
        &store,
        &[
            "report",
            "chargeback",
            "--month",
            "2026-10",
            "--format",
            "csv",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).lines().count() > 5, "{}", stdout(&out));
    let out = tollgate(
        &store,
        &[
            "sql",
            "SELECT max(time) < TIMESTAMP '2026-11-22T12:00:00Z' AS before_now, min(time) >= TIMESTAMP '2026-10-01T00:00:00Z' AS from_october FROM requests",
            "--format",
            "csv",
        ],
        &[],
    );
    assert_eq!(
        stdout(&out).lines().nth(1),
        Some("true,true"),
        "{}",
        stderr(&out)
    );

    // Again: nothing new to ingest; a keys file it cannot write is named.
    let mut again = args.to_vec();
    let bad = store.dir.path().join("missing/keys.json");
    let last = again.len() - 1;
    again[last] = bad.to_str().unwrap();
    let out = tollgate(&store, &again, &[]);
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("already ingested"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("missing/keys.json"),
        "{}",
        stderr(&out)
    );
    // The first run's keys were replaced by the second's.
    let out = tollgate(&store, &["keys", "list", "--format", "csv"], &[]);
    let listing = stdout(&out);
    let live: Vec<&str> = listing
        .lines()
        .filter(|l| l.contains(",demo-") && l.ends_with(','))
        .collect();
    assert_eq!(live.len(), 4, "{listing}");
}
