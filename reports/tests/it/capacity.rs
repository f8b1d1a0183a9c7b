use tollgate_reports::capacity::{import_backends, import_ptu};
use tollgate_store::testing::TestStore;

use crate::write;

tollgate_store::backend_tests!(backends_and_ptu_reservations_import_whole);

async fn backends_and_ptu_reservations_import_whole(store: TestStore) {
    let backends = "backend,deployment_type,region\n\
                    aoai-eastus-ptu,ProvisionedManaged,eastus\n\
                    aoai-eastus2-paygo,GlobalStandard,eastus2\n";
    import_backends(&store.db, &write(&store, "backends.csv", backends))
        .await
        .unwrap();
    let stored = store.db.backends().await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        (
            stored[0].backend.as_str(),
            stored[0].deployment_type.as_str()
        ),
        ("aoai-eastus-ptu", "ProvisionedManaged")
    );

    tollgate_reports::ownership::import(
        &store.db,
        &write(
            &store,
            "own.toml",
            "[cost_centres]\n\"cc-rnd\" = { name = \"R&D\" }\n",
        ),
    )
    .await
    .unwrap();
    let ptu = "backend,deployment,ptus,cost_per_ptu_hour,currency,output_token_weight,idle_charged_to,effective_from,effective_to\n\
               aoai-eastus-ptu,gpt-4o,50,1.00,USD,4,spread,2026-01-01,2026-11-01\n\
               aoai-eastus-ptu,gpt-4o,80,0.90,USD,4,cc-rnd,2026-11-01,\n";
    import_ptu(&store.db, &write(&store, "ptu.csv", ptu))
        .await
        .unwrap();
    let stored = store.db.ptu_reservations().await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        (
            stored[1].ptus,
            stored[1].cost_pico,
            stored[1].idle_charged_to.as_str(),
            stored[1].effective_to.as_deref()
        ),
        (80, 900_000_000_000, "cc-rnd", None)
    );

    // What a reservation names must exist; a pay-as-you-go backend would be
    // charged twice, and `Spread` is not `spread`.
    let dangling = "backend,deployment,ptus,cost_per_ptu_hour,currency,output_token_weight,idle_charged_to,effective_from,effective_to\n\
               aoai-eastus2-paygo,gpt-4.1,10,1.00,USD,4,spread,2026-01-01,\n\
               aoai-west-ptu,gpt-4o,10,1.00,USD,4,Spread,2026-01-01,\n";
    let err = import_ptu(&store.db, &write(&store, "dangling.csv", dangling))
        .await
        .unwrap_err();
    let tollgate_reports::ReportsError::Invalid { problems, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(
        problems,
        vec![
            "line 2, field `backend`: \"aoai-eastus2-paygo\" is a GlobalStandard backend, not a provisioned one",
            "line 3, field `backend`: \"aoai-west-ptu\" is not a known backend (import backends first)",
            "line 3, field `idle_charged_to`: \"Spread\" is neither `spread` nor a declared cost centre",
        ]
    );
    assert_eq!(store.db.ptu_reservations().await.unwrap().len(), 2);

    // A refused file changes nothing.
    let bad = "backend,deployment_type,region\nb1,Premium,eastus\n";
    let err = import_backends(&store.db, &write(&store, "bad.csv", bad))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("line 2, field `deployment_type`"),
        "{err}"
    );
    assert_eq!(store.db.backends().await.unwrap().len(), 2);
}
