//! DLP events: their own table, bad lines quarantined by line and field, a
//! re-export adds nothing, and the `security_hits` view shows them beside the
//! requests gateways blocked for content safety.

use tollgate_fixtures::{GenerateOptions, generate};
use tollgate_ingest::Format;
use tollgate_store::testing::TestStore;

use crate::helpers::{csv_of, ingest_as, lines, sample, scalar, write};

tollgate_store::backend_tests!(
    dlp_events_ingest_and_show_beside_gateway_blocks,
    a_generated_months_dlp_file_ingests_whole_and_names_its_requests,
);

async fn dlp_events_ingest_and_show_beside_gateway_blocks(store: TestStore) {
    // Recognised by `auto`, as any log is.
    let report = ingest_as(&store, &sample("purview-dlp-events.jsonl"), Format::Auto).await;
    let c = report.counts;
    assert_eq!(
        (c.read, c.written, c.duplicate, c.quarantined),
        (8, 3, 1, 4)
    );
    let quarantined: Vec<(i64, String)> = store
        .db
        .quarantined_lines(report.batch_id)
        .await
        .unwrap()
        .into_iter()
        .map(|q| (q.line_number, q.reason))
        .collect();
    assert_eq!(
        quarantined,
        vec![
            (
                5,
                r#"field `Action`: "Quarantine" is not audit, block_with_override, block"#.into()
            ),
            (
                6,
                r#"field `Severity`: "Critical" is not low, medium, high"#.into()
            ),
            (7, "missing field `PolicyName` (or `policy`)".into()),
            (
                8,
                r#"field `CreationTime`: "yesterday" is not a time"#.into()
            ),
        ]
    );
    assert_eq!(
        csv_of(
            &store,
            "SELECT time, source, policy, rule, severity, action, sensitive_info_types, label, \
             agent, app, user_id, request_id, resource_namespace, resource_name \
             FROM dlp_hits ORDER BY time"
        )
        .await,
        "time,source,policy,rule,severity,action,sensitive_info_types,label,agent,app,user_id,request_id,resource_namespace,resource_name
2026-10-05T14:03:27Z,purview,Contoso PII in AI interactions,U.S. SSN,high,block_with_override,\"[\"\"U.S. Social Security Number (SSN)\"\",\"\"All Full Names\"\"]\",Highly Confidential,hr-assistant,apim-contoso,user-17,req-05-ok,contoso,hr-employee-db
2026-10-05T15:10:00Z,purview,Contoso financial data in AI interactions,Bank account numbers,medium,audit,\"[\"\"International Banking Account Number (IBAN)\"\"]\",Highly Confidential,finance-copilot,apim-contoso,user-4,,contoso,finance-ledger
2026-10-06T09:30:00Z,purview,Contoso confidential data in AI interactions,Payment cards,medium,block,\"[\"\"Credit Card Number\"\"]\",Confidential,sales-briefing,apim-contoso,user-9,req-06-litellm,contoso,crm-accounts
"
    );
    // The event's id when it has one, a digest of the event when not.
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM dlp_hits WHERE hit_id IN ('dlp-0001', 'dlp-0002') \
             OR (request_id = 'req-06-litellm' AND length(hit_id) = 32)"
        )
        .await,
        3
    );

    // The same events exported again under the other field names: nothing new.
    let again = write(
        store.dir.path(),
        "again.jsonl",
        &lines(&[
            r#"{"id":"dlp-0002","time":"2026-10-05T15:10:00Z","policy":"Contoso financial data in AI interactions","action":"audit"}"#.to_owned(),
            r#"{"resource":{"name":"crm-accounts","namespace":"contoso"},"request_id":"req-06-litellm","user":"user-9","app":"apim-contoso","agent":"sales-briefing","label":"Confidential","sensitive_info_types":[{"name":"Credit Card Number"}],"action":["audit","Block"],"severity":"MEDIUM","rule":"Payment cards","policy":"Contoso confidential data in AI interactions","time":"2026-10-06T09:30:00Z"}"#.to_owned(),
        ]),
    );
    let c = ingest_as(&store, &again, Format::PurviewDlp).await.counts;
    assert_eq!((c.read, c.written, c.duplicate), (2, 0, 2));

    // The gateways' side: two content-safety blocks, a LiteLLM guardrail, and a
    // token-limit 429 that is no security hit.
    let canonical = write(
        store.dir.path(),
        "gateway.jsonl",
        &lines(&[
            r#"{"request_id":"req-05-ok","time":"2026-10-05T14:03:26Z","status_code":200,"agent":"hr-assistant","user_id":"user-17"}"#.to_owned(),
            r#"{"request_id":"req-05-cs","time":"2026-10-05T16:00:00Z","status_code":403,"agent":"support-triage","user_id":"user-3","error_source":"llm-content-safety","error_reason":"ContentFiltered"}"#.to_owned(),
            r#"{"request_id":"req-06-aoai","time":"2026-10-06T08:00:00Z","status_code":400,"agent":"research-agent","error_source":"backend","error_reason":"content_filter"}"#.to_owned(),
            r#"{"request_id":"req-06-429","time":"2026-10-06T08:30:00Z","status_code":429,"agent":"research-agent","error_source":"llm-token-limit","error_reason":"TokenLimitExceeded"}"#.to_owned(),
        ]),
    );
    ingest_as(&store, &canonical, Format::Canonical).await;
    let litellm = write(
        store.dir.path(),
        "litellm.jsonl",
        &lines(&[r#"{"request_id":"req-06-litellm","startTime":"2026-10-06T09:29:59Z","status":"failure","agent_id":"sales-briefing","user":"user-9","metadata":{"error_information":{"error_code":"400","error_class":"BlockedPiiEntityError"}}}"#.to_owned()]),
    );
    ingest_as(&store, &litellm, Format::LiteLlm).await;

    assert_eq!(
        csv_of(
            &store,
            "SELECT source, policy, rule, severity, action, agent, user_id, request_id, \
             resource_name FROM security_hits ORDER BY time, source"
        )
        .await,
        "source,policy,rule,severity,action,agent,user_id,request_id,resource_name
purview,Contoso PII in AI interactions,U.S. SSN,high,block_with_override,hr-assistant,user-17,req-05-ok,hr-employee-db
purview,Contoso financial data in AI interactions,Bank account numbers,medium,audit,finance-copilot,user-4,,finance-ledger
gateway,llm-content-safety,ContentFiltered,,block,support-triage,user-3,req-05-cs,
gateway,backend,content_filter,,block,research-agent,,req-06-aoai,
gateway,failure,BlockedPiiEntityError,,block,sales-briefing,user-9,req-06-litellm,
purview,Contoso confidential data in AI interactions,Payment cards,medium,block,sales-briefing,user-9,req-06-litellm,crm-accounts
"
    );
    assert_eq!(
        scalar(&store, "SELECT COUNT(*) FROM security_hits").await,
        6,
        "three events and three gateway blocks; the 429 and the allowed request are not hits"
    );
    // A hit leads to the request it was raised on, whichever system saw it.
    assert_eq!(
        csv_of(
            &store,
            "SELECT h.source, h.request_id, r.status_code FROM security_hits h \
             JOIN requests r ON h.request_id = r.request_id ORDER BY h.time, h.source"
        )
        .await,
        "source,request_id,status_code\npurview,req-05-ok,200\ngateway,req-05-cs,403\ngateway,req-06-aoai,400\ngateway,req-06-litellm,400\npurview,req-06-litellm,400\n"
    );
}

async fn a_generated_months_dlp_file_ingests_whole_and_names_its_requests(store: TestStore) {
    let out = store.dir.path().join("estate");
    let generated = generate(&GenerateOptions {
        year: 2026,
        month: 10,
        requests: 3_000,
        seed: 42,
        traffic_seed: None,
        until: None,
        out: out.clone(),
        scale: Default::default(),
    })
    .unwrap();
    let events = out.join("dlp/dlp-events.jsonl");
    let report = ingest_as(&store, &events, Format::Auto).await;
    let c = report.counts;
    assert!(generated.dlp_events > 100, "{}", generated.dlp_events);
    assert_eq!(
        (c.read, c.written, c.duplicate, c.quarantined),
        (
            generated.dlp_events as i64,
            generated.dlp_events as i64,
            0,
            0
        )
    );

    let mut days: Vec<_> = std::fs::read_dir(out.join("gateway-logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    days.sort();
    for day in &days {
        assert_eq!(
            ingest_as(&store, day, Format::Auto)
                .await
                .counts
                .quarantined,
            0
        );
    }
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM dlp_hits h LEFT JOIN requests r ON h.request_id = r.request_id \
             WHERE h.request_id IS NOT NULL AND r.request_id IS NULL"
        )
        .await,
        0,
        "every hit's request id is a generated request"
    );
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM dlp_hits h JOIN requests r ON h.request_id = r.request_id \
             WHERE h.agent <> r.agent OR h.user_id <> r.user_id"
        )
        .await,
        0,
        "a hit names its request's agent and user"
    );
    let blocked = scalar(
        &store,
        "SELECT COUNT(*) FROM requests WHERE error_source = 'llm-content-safety'",
    )
    .await;
    assert!(blocked > 0);
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM security_hits WHERE source = 'gateway'"
        )
        .await,
        blocked
    );
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM security_hits WHERE source = 'purview'"
        )
        .await,
        generated.dlp_events as i64
    );
}
