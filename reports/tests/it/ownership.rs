use tollgate_reports::ownership::{Ownership, UNALLOCATED, import};
use tollgate_store::testing::TestStore;

use crate::write;

tollgate_store::backend_tests!(ownership_imports_replaces_and_survives_a_bad_file);

const FIRST: &str = r#"
[cost_centres]
"cc-hr" = { name = "Human Resources" }
"cc-rnd" = { name = "Research and Development" }

[subscriptions]
"sub-hr-01" = "cc-hr"

[agents]
"research-agent" = "cc-rnd"
"#;

async fn ownership_imports_replaces_and_survives_a_bad_file(store: TestStore) {
    import(&store.db, &write(&store, "first.toml", FIRST))
        .await
        .unwrap();
    assert_eq!(store.db.cost_centres().await.unwrap().len(), 2);
    let o = Ownership::load(&store.db).await.unwrap();
    assert_eq!(o.cost_centre(Some("sub-hr-01"), None, None), "cc-hr");
    assert_eq!(
        o.cost_centre(Some("sub-9"), Some("research-agent"), None),
        "cc-rnd"
    );

    // Replaced whole: the agent mapping is gone, cc-rnd too.
    let second = "[cost_centres]\n\"cc-hr\" = { name = \"HR\" }\n[subscriptions]\n\"sub-hr-01\" = \"cc-hr\"\n";
    import(&store.db, &write(&store, "second.toml", second))
        .await
        .unwrap();
    let o = Ownership::load(&store.db).await.unwrap();
    assert_eq!(
        o.cost_centre(Some("sub-9"), Some("research-agent"), None),
        UNALLOCATED
    );
    let centres = store.db.cost_centres().await.unwrap();
    assert_eq!((centres.len(), centres[0].name.as_str()), (1, "HR"));

    // A bad file is refused and the mapping stays.
    let bad = "[cost_centres]\n\"cc-a\" = { name = \"A\" }\n[agents]\n\"x\" = \"cc-b\"\n";
    let err = import(&store.db, &write(&store, "bad.toml", bad))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("bad.toml: refused, nothing was stored"),
        "{err}"
    );
    assert_eq!(store.db.ownership().await.unwrap().len(), 1);
}
