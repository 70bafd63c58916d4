//! Issue #12: access-log records, routed as JSON objects whose values are
//! all strings, load into the shipped typed schemas (`schemas/`): the
//! columns marked `x-logrouter-from-text` hold integers and numbers parsed
//! from the strings, on SQLite, PostgreSQL and Redshift (the Data API test
//! server); a string that is not one is a reject like any other.

use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use logrouter::location::Location;

use crate::support::*;

/// CloudFront records as the router writes them (values strings, `-` as
/// null), one with a JSON number, and two bad ones (lines 3 and 4).
const LINES: [&str; 5] = [
    r#"{"date":"2015-01-20","time":"13:00:00","x_edge_location":"FRA56-P3","sc_bytes":"392","c_ip":"192.0.2.10","cs_method":"GET","sc_status":"200","cs_bytes":"746","time_taken":"0.082","c_port":"52180","time_to_first_byte":"0.035","sc_content_len":null}"#,
    r#"{"date":"2015-01-20","time":"13:20:00","sc_bytes":"1363829","sc_status":"304","cs_bytes":"423","time_taken":"0.757","c_port":"443","sc_content_len":"1363429"}"#,
    r#"{"date":"2015-01-20","time":"13:30:00","sc_bytes":"39x2","sc_status":"200"}"#,
    r#"{"date":"2015-01-20","time":"13:35:00","sc_bytes":"12","sc_status":"70000"}"#,
    r#"{"date":"2015-01-20","time":"13:40:00","sc_bytes":5}"#,
];

/// The rows, by sc_bytes: sc_bytes, sc_status, cs_bytes, time_taken,
/// c_port, sc_content_len.
const ROWS: [&str; 3] = [
    "5\tNULL\tNULL\tNULL\tNULL\tNULL",
    "392\t200\t746\t0.082\t52180\tNULL",
    "1363829\t304\t423\t0.757\t443\t1363429",
];
const VALUES: &str = "SELECT sc_bytes, sc_status, cs_bytes, time_taken, c_port, sc_content_len FROM {t} ORDER BY sc_bytes";
/// The rejects: line, reason, column.
const REJECTS: [&str; 2] = ["3 wrong_type sc_bytes", "4 out_of_range sc_status"];

fn shipped_schemas() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

/// Placeholder CloudFront events for the router to route (it counts them in
/// the manifest); the test then puts its own lines in the part.
fn placeholders() -> String {
    (0..LINES.len())
        .map(|i| format!("{{\"event_type\":\"cloudfront\",\"date\":\"2015-01-20\",\"time\":\"13:0{i}:00\"}}\n"))
        .collect()
}

fn body() -> String {
    LINES.join("\n") + "\n"
}

fn loader_in(schema: &str) -> std::process::Command {
    let mut cmd = loader();
    cmd.env("LOGROUTER_LOAD__SCHEMAS_DIR", shipped_schemas())
        .env("LOGROUTER_LOAD__DB_SCHEMA", schema);
    cmd
}

fn query(cmd: &mut std::process::Command, url: &str, sql: &str) -> Vec<String> {
    let out = run(cmd, &["query", "--warehouse", url, sql]);
    assert!(out.status.success(), "{url}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn rejects_of(lines: Vec<String>) -> Vec<String> {
    lines
        .iter()
        .map(|r| r.split('\t').collect::<Vec<_>>().join(" "))
        .collect()
}

#[tokio::test]
async fn issue12_access_log_strings_load_typed_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    route_local(dir.path(), "cf-2015-01-20-13.log.gz", &placeholders()).await;
    let routed = dir.path().join("routed");
    let part = routed
        .join("cloudfront")
        .join(files_under(&routed.join("cloudfront")).remove(0));
    std::fs::write(&part, gzip(body().as_bytes())).unwrap();
    let schema = unique_schema("cftyped");
    let sqlite = format!("sqlite:{}", dir.path().join("w.db").display());
    for url in [sqlite.clone(), database_url()] {
        let out = run(
            &mut loader_in(&schema),
            &["load", "--warehouse", &url, routed.to_str().unwrap()],
        );
        assert!(out.status.success(), "{url}: {}", text(&out));
        assert!(
            text(&out).contains("loaded 1 files (3 rows)")
                && text(&out).contains("2 lines rejected"),
            "{url}: {}",
            text(&out)
        );
        let (table, rejects, types) = if url == sqlite {
            (
                "cloudfront".to_owned(),
                "_logrouter_rejects".to_owned(),
                "SELECT typeof(sc_bytes), typeof(sc_status), typeof(time_taken), typeof(c_port) FROM cloudfront WHERE sc_bytes = 392".to_owned(),
            )
        } else {
            (
                format!("\"{schema}\".cloudfront"),
                format!("\"{schema}\"._logrouter_rejects"),
                format!("SELECT pg_typeof(sc_bytes)::text, pg_typeof(sc_status)::text, pg_typeof(time_taken)::text, pg_typeof(c_port)::text FROM \"{schema}\".cloudfront WHERE sc_bytes = 392"),
            )
        };
        let want_types = if url == sqlite {
            "integer\tinteger\treal\tinteger"
        } else {
            "bigint\tsmallint\tdouble precision\tinteger"
        };
        assert_eq!(
            query(&mut loader_in(&schema), &url, &types),
            [want_types],
            "{url}"
        );
        assert_eq!(
            query(
                &mut loader_in(&schema),
                &url,
                &VALUES.replace("{t}", &table)
            ),
            ROWS,
            "{url}"
        );
        let got = query(
            &mut loader_in(&schema),
            &url,
            &format!("SELECT line, reason, column_name FROM {rejects} ORDER BY line"),
        );
        assert_eq!(rejects_of(got), REJECTS, "{url}");
        // The message names the column and the value.
        let message = query(
            &mut loader_in(&schema),
            &url,
            &format!("SELECT message FROM {rejects} WHERE line = 3"),
        );
        assert!(
            message[0].contains("expected an integer, or one as text")
                && message[0].contains("\"39x2\""),
            "{url}: {message:?}"
        );
        let out = run(
            &mut loader_in(&schema),
            &["verify", "--warehouse", &url, routed.to_str().unwrap()],
        );
        assert!(
            out.status.success() && text(&out).contains("= 3 rows + 2 rejects)"),
            "{url}: {}",
            text(&out)
        );
    }
}

/// On Redshift, COPY converts the text itself (a string of digits loads
/// into an INTEGER column, as the Data API test server does it): the typed
/// columns load the same rows, and the bad lines are the same rejects
/// (through MAXERROR and the load error view; Redshift's own messages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue12_access_log_strings_load_typed_on_redshift() {
    const ROLE: &str = "arn:aws:iam::123456789012:role/logrouter-copy";
    let url = format!("redshift://test-cluster/dev?db_user=loader&iam_role={ROLE}");
    let s3 = s3().await;
    let bucket = unique("rscf");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let key = "logs/cf-2015-01-20-13.log.gz";
    s3.put_object()
        .bucket(&bucket)
        .key(key)
        .body(ByteStream::from(gzip(placeholders().as_bytes())))
        .send()
        .await
        .unwrap();
    let at = |key: &str| Location::S3 {
        bucket: bucket.clone(),
        key: key.to_owned(),
    };
    route(&at(key), &at("routed"), true).await;
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("routed/cloudfront/")
        .send()
        .await
        .unwrap();
    let part = listed.contents()[0].key().unwrap().to_owned();
    s3.put_object()
        .bucket(&bucket)
        .key(&part)
        .body(ByteStream::from(gzip(body().as_bytes())))
        .send()
        .await
        .unwrap();
    let root = format!("s3://{bucket}/routed");
    let schema = unique_schema("rscftyped");
    let rs = || {
        let mut cmd = loader_in(&schema);
        cmd.env("AWS_ENDPOINT_URL", moto())
            .env("LOGROUTER_AWS__FORCE_PATH_STYLE", "true")
            .env("AWS_ENDPOINT_URL_REDSHIFT_DATA", redshift_data());
        cmd
    };
    let out = run(&mut rs(), &["load", "--warehouse", &url, &root]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("loaded 1 files (3 rows)") && text(&out).contains("2 lines rejected"),
        "{}",
        text(&out)
    );
    assert_eq!(
        query(
            &mut rs(),
            &url,
            &VALUES.replace("{t}", &format!("\"{schema}\".cloudfront"))
        ),
        ROWS
    );
    let got = query(
        &mut rs(),
        &url,
        &format!(
            "SELECT line, reason, column_name FROM \"{schema}\"._logrouter_rejects ORDER BY line"
        ),
    );
    assert_eq!(rejects_of(got), REJECTS);
    let message = query(
        &mut rs(),
        &url,
        &format!("SELECT message FROM \"{schema}\"._logrouter_rejects WHERE line = 3"),
    );
    assert_eq!(message, ["Invalid digit, Value 'x', Pos 2, Type: Long"]);
    // The columns' types, as the test server's PostgreSQL holds them.
    let types: Vec<String> = pg()
        .await
        .query(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'cloudfront' AND column_name IN ('sc_bytes', 'sc_status', 'time_taken', 'c_port') ORDER BY column_name",
            &[&schema],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // By name: c_port, sc_bytes, sc_status, time_taken.
    assert_eq!(types, ["integer", "bigint", "smallint", "double precision"]);
}
