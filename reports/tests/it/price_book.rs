use tollgate_reports::ReportsError;
use tollgate_reports::price_book::import;
use tollgate_store::testing::TestStore;

use crate::write;

tollgate_store::backend_tests!(
    the_generated_price_book_imports_and_lists,
    a_bad_book_changes_nothing,
);

const HEADER: &str = "model,deployment_type,region,currency,unit,input_rate,cached_input_rate,output_rate,effective_from,effective_to\n";

async fn the_generated_price_book_imports_and_lists(store: TestStore) {
    let book = format!(
        "{HEADER}gpt-4o,GlobalStandard,any,USD,1M,2.50,1.25,10.00,2026-01-01,\n\
         gpt-4o-mini,DataZoneStandard,swedencentral,USD,1M,0.165,0.0825,0.66,2026-01-01,2026-10-16\n\
         gpt-4o-mini,DataZoneStandard,swedencentral,USD,1M,0.15,0.075,0.60,2026-10-16,\n"
    );
    let imported = import(&store.db, &write(&store, "prices.csv", &book))
        .await
        .unwrap();
    assert_eq!(imported.len(), 3);
    let stored = store.db.price_book().await.unwrap();
    assert_eq!(stored, imported, "stored exactly as read, in book order");
    assert_eq!(stored[2].effective_from, "2026-10-16");
    assert_eq!(stored[2].input_rate_pico, 150_000_000_000);

    // A second import replaces the book.
    let smaller = format!("{HEADER}gpt-4.1,GlobalStandard,any,USD,1M,2.00,0.50,8.00,2026-01-01,\n");
    import(&store.db, &write(&store, "prices-2.csv", &smaller))
        .await
        .unwrap();
    let stored = store.db.price_book().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].model, "gpt-4.1");
    assert!(
        stored[0].source.ends_with("prices-2.csv:2"),
        "{}",
        stored[0].source
    );
}

async fn a_bad_book_changes_nothing(store: TestStore) {
    let good = format!("{HEADER}gpt-4o,GlobalStandard,any,USD,1M,2.50,1.25,10.00,2026-01-01,\n");
    import(&store.db, &write(&store, "good.csv", &good))
        .await
        .unwrap();
    let bad = format!(
        "{HEADER}gpt-4o,GlobalStandard,any,USD,1M,2.00,1.00,8.00,2026-01-01,\n\
         gpt-4o,GlobalStandard,any,USD,,2.00,1.00,8.00,2026-06-01,\n"
    );
    let err = import(&store.db, &write(&store, "bad.csv", &bad))
        .await
        .unwrap_err();
    assert!(matches!(err, ReportsError::Invalid { .. }));
    let message = err.to_string();
    assert!(
        message.contains("bad.csv: refused, nothing was stored (1 problem)"),
        "{message}"
    );
    assert!(
        message.contains("line 3, field `unit`: missing"),
        "{message}"
    );
    let stored = store.db.price_book().await.unwrap();
    assert_eq!(
        (stored.len(), stored[0].input_rate_pico),
        (1, 2_500_000_000_000)
    );

    let missing = store.dir.path().join("nowhere.csv");
    let err = import(&store.db, &missing).await.unwrap_err();
    assert!(err.to_string().contains("nowhere.csv"), "{err}");
}
