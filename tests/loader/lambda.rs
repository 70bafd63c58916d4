//! Issue #23: `loader lambda` under cargo-lambda's Runtime API emulator
//! (`cargo lambda watch --only-lambda-apis`, `cargo lambda invoke
//! --data-file`), into PostgreSQL and through the Redshift Data API test
//! server: one event of manifest notifications, a duplicate, a manifest
//! that cannot be read, a body that is no notification and a test event;
//! exactly those that did not complete are failures, the tables equal the
//! manifests, a redelivery loads nothing, and the EMF lines add up to the
//! rows.
//!
//! `TEST_LAMBDA_LOADER` runs another binary instead of the one cargo built
//! (the `bootstrap` of `scripts/package`'s zip).

use std::collections::BTreeMap;

use logrouter::location::Location;
use logrouter::manifest::Manifest;

use crate::support::*;

/// Three hours routed into `s3://bucket/routed`: (bucket, manifest keys,
/// rows per table).
async fn routed_hours() -> (String, Vec<String>, BTreeMap<String, i64>) {
    let s3 = s3().await;
    let bucket = unique("lambda");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut want = BTreeMap::new();
    for h in 13..16u64 {
        let src = dir.path().join(format!("app-2015-01-20-{h}.log.gz"));
        std::fs::write(&src, gzip(events(200 + h, h).as_bytes())).unwrap();
        let m: Manifest = route(
            &Location::Local(src),
            &Location::S3 {
                bucket: bucket.clone(),
                key: "routed".into(),
            },
            true,
        )
        .await;
        for (t, o) in m.types {
            *want.entry(t).or_default() += o.lines as i64;
        }
    }
    let manifests: Vec<String> = list_keys(&s3, &bucket)
        .await
        .into_iter()
        .filter(|k| k.starts_with("routed/_manifests/"))
        .collect();
    assert_eq!(manifests.len(), 3);
    (bucket, manifests, want)
}

/// The loader as Lambda starts a zip's `bootstrap` (or the binary
/// `TEST_LAMBDA_LOADER` names), with the test schemas.
fn start_function(emulator: &LambdaEmulator, env: &[(&str, &str)]) -> Service {
    let schemas = schemas_dir();
    let mut env = env.to_vec();
    env.push(("LOGROUTER_LOAD__SCHEMAS_DIR", schemas.to_str().unwrap()));
    start_lambda_function(
        env!("CARGO_BIN_EXE_loader"),
        "TEST_LAMBDA_LOADER",
        &emulator.runtime_api(),
        &env,
    )
}

/// Invokes the function twice with the same event; checks the failures,
/// the rows (`counts` reads them), `loader verify`, and the EMF lines.
async fn check_twice(
    warehouse: &str,
    extra: &[(&str, &str)],
    counts: impl Fn(
        String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = BTreeMap<String, i64>>>>,
) -> String {
    let (bucket, manifests, want) = routed_hours().await;
    let schema = unique_schema("lambda");
    let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2015-01-20T13:00:00.000Z","Bucket":"b","RequestId":"r","HostId":"h"}"#;
    let bodies: Vec<String> = manifests.iter().map(|k| s3_created(&bucket, k)).collect();
    let missing = s3_created(
        &bucket,
        "routed/_manifests/dt=2015-01-20/hour=23/gone-0123abcd.json",
    );
    let quarantine = s3_created(
        &bucket,
        "routed/_rejected/dt=2015-01-20/hour=13/x.part-00000.json.gz",
    );
    let event = sqs_event(&[
        ("m-13", &bodies[0]),
        ("m-14", &bodies[1]),
        ("m-15", &bodies[2]),
        ("duplicate", &bodies[0]),
        ("missing", &missing),
        ("garbage", "{\"not\":\"a notification\"}"),
        ("test-event", test_event),
        ("quarantine", &quarantine),
    ]);
    let emulator = LambdaEmulator::start();
    let mut env = vec![
        ("LOGROUTER_LOAD__WAREHOUSE", warehouse),
        ("LOGROUTER_LOAD__DB_SCHEMA", schema.as_str()),
    ];
    env.extend_from_slice(extra);
    let function = start_function(&emulator, &env);

    let response = emulator.invoke(&event);
    assert_eq!(
        failed_ids(&response),
        ["garbage", "missing"],
        "{response}\n{}",
        function.stderr()
    );
    assert_eq!(counts(schema.clone()).await, want);

    let again = emulator.invoke(&event);
    assert_eq!(failed_ids(&again), ["garbage", "missing"]);
    assert_eq!(
        counts(schema.clone()).await,
        want,
        "a redelivery loads nothing"
    );

    let mut verify = loader_at_moto();
    for (k, v) in extra {
        verify.env(k, v);
    }
    verify.env("LOGROUTER_LOAD__DB_SCHEMA", &schema);
    let out = run(
        &mut verify,
        &[
            "verify",
            "--warehouse",
            warehouse,
            &format!("s3://{bucket}/routed"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    let sums = emf_sums(&function.stdout());
    for (table, rows) in &want {
        let key = format!("logrouter_loader_rows_loaded_total{{table={table}}}");
        assert_eq!(sums.get(&key), Some(&(*rows as f64)), "{key}: {sums:#?}");
    }
    assert_eq!(sums["logrouter_queue_messages_received_total"], 16.0);
    assert_eq!(sums["logrouter_queue_messages_unknown_total"], 2.0);
    assert_eq!(sums["logrouter_queue_messages_retried_total"], 2.0);
    schema
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue23_loader_lambda_into_postgres() {
    check_twice(&database_url(), &[], |schema| {
        Box::pin(async move { pg_counts(&schema).await })
    })
    .await;
}

/// On Redshift the files of one invocation commit in one batch per table,
/// as `loader run` gathers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue23_loader_lambda_through_the_redshift_data_api() {
    let url = "redshift://test-cluster/dev?db_user=loader&iam_role=arn:aws:iam::123456789012:role/logrouter-copy";
    let endpoint = redshift_data();
    let schema = check_twice(
        url,
        &[
            ("AWS_ENDPOINT_URL_REDSHIFT_DATA", endpoint.as_str()),
            ("LOGROUTER_LAMBDA__BATCH_GATHER_MS", "3000"),
        ],
        |schema| Box::pin(async move { pg_counts(&schema).await }),
    )
    .await;
    let commits = crate::redshift::commits_per_table(&schema).await;
    assert_eq!(
        commits,
        [("click".to_owned(), 1), ("play".to_owned(), 1)].into(),
        "one commit per table for the invocation's six files"
    );
}
