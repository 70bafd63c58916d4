//! Issue #12: access-log records, routed as JSON objects whose values are
//! all strings, load into the shipped typed schemas (`schemas/`): the
//! columns marked `x-logrouter-from-text` hold integers and numbers parsed
//! from the strings, on SQLite, PostgreSQL and Redshift (the Data API test
//! server); a string that is not one is a reject like any other. Issue #25:
//! their `timestamp` column (UTC, from the router) answers a time range on
//! every warehouse.

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

/// A CloudFront standard log of hour `hour`: AWS's documented example
/// (its `#Version`/`#Fields` header and 33 fields) as `n` requests whose
/// `sc-bytes` is 1000 + i, then one record with a field missing (the router
/// quarantines it) and one whose `sc-bytes` is no number (the loader
/// rejects it).
fn cloudfront_log(hour: u32, n: u32) -> String {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/logs/cloudfront-EMLARXS9EXAMPLE.2019-12-04-21.example"),
    )
    .unwrap();
    let mut lines = example.lines();
    let mut out = format!("{}\n{}\n", lines.next().unwrap(), lines.next().unwrap());
    let record: Vec<&str> = lines.next().unwrap().split('\t').collect();
    assert_eq!(record.len(), 33);
    let with = |i: u32, bytes: &str| {
        let mut r = record.clone();
        let (date, time) = (
            "2015-01-20".to_owned(),
            format!("{hour:02}:{:02}:00", i % 60),
        );
        r[0] = &date;
        r[1] = &time;
        r[3] = bytes;
        r.join("\t")
    };
    for i in 0..n {
        out += &with(i, &(1000 + i).to_string());
        out.push('\n');
    }
    out += &record[..32].join("\t");
    out.push('\n');
    out += &with(n, "12x");
    out.push('\n');
    out
}

/// Issue #12 end to end on real protocols: CloudFront logs land in (moto)
/// S3 → bucket notifications → `router run --format cloudfront --type
/// cloudfront` (in process) → parts and manifests in S3 → `loader load` into
/// PostgreSQL and SQLite with the shipped `schemas/cloudfront.json`: typed
/// rows, as many as the manifests say less the rejects, every line
/// accounted for; a second load adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue12_cloudfront_logs_in_s3_become_typed_rows_in_postgres_and_sqlite() {
    use logrouter::manifest::Manifest;
    use logrouter::queue::RunStats;

    let s3 = s3().await;
    let sqs = sqs().await;
    let bucket = unique("cf");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let queue = create_queue(&sqs, "cf").await;
    notify_on_prefixes(&s3, &sqs, &bucket, &[(&queue, "cf/")]).await;
    for hour in [13, 14] {
        s3.put_object()
            .bucket(&bucket)
            .key(format!("cf/EMLARXS9EXAMPLE.2015-01-20-{hour}.a1b2c3d4.gz"))
            .body(ByteStream::from(gzip(cloudfront_log(hour, 40).as_bytes())))
            .send()
            .await
            .unwrap();
    }

    let mut config = test_config();
    config.route.format = logrouter::config::LineFormat::Cloudfront;
    config.route.fixed_type = Some("cloudfront".into());
    config.validate().unwrap();
    let stats = router::service::run(
        &config,
        queue.clone(),
        &Location::S3 {
            bucket: bucket.clone(),
            key: "routed".into(),
        },
        true,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(RunStats::get(&stats.objects_done), 2);
    let mut manifests = 0;
    for key in list_keys(&s3, &bucket).await {
        if key.starts_with("routed/_manifests/") {
            let m: Manifest = serde_json::from_slice(&get(&s3, &bucket, &key).await).unwrap();
            // 2 header lines (blank), 41 routed, 1 quarantined.
            assert_eq!(
                (
                    m.lines.read,
                    m.lines.routed,
                    m.lines.quarantined,
                    m.lines.blank
                ),
                (44, 41, 1, 2),
                "{key}"
            );
            assert_eq!(m.types.keys().collect::<Vec<_>>(), ["cloudfront"], "{key}");
            assert_eq!(m.quarantine.by_reason.get("malformed_record"), Some(&1));
            manifests += 1;
        }
    }
    assert_eq!(manifests, 2);

    let schema = unique_schema("cfe2e");
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", dir.path().join("w.db").display());
    let root = format!("s3://{bucket}/routed");
    let at_moto = || {
        let mut cmd = loader_in(&schema);
        cmd.env("AWS_ENDPOINT_URL", moto())
            .env("LOGROUTER_AWS__FORCE_PATH_STYLE", "true");
        cmd
    };
    for url in [database_url(), sqlite.clone()] {
        let out = run(&mut at_moto(), &["load", "--warehouse", &url, &root]);
        assert!(
            out.status.success()
                && text(&out).contains("loaded 2 files (80 rows)")
                && text(&out).contains("2 lines rejected"),
            "{url}: {}",
            text(&out)
        );
        let table = if url == sqlite {
            "cloudfront".to_owned()
        } else {
            format!("\"{schema}\".cloudfront")
        };
        let typed = if url == sqlite {
            "SELECT typeof(sc_bytes) || ' ' || typeof(sc_status) || ' ' || typeof(time_taken)"
        } else {
            "SELECT pg_typeof(sc_bytes)::text || ' ' || pg_typeof(sc_status)::text || ' ' || pg_typeof(time_taken)::text"
        };
        let got = query(
            &mut loader_in(&schema),
            &url,
            &format!(
                "{typed}, count(*), sum(sc_bytes), min(cs_user_agent) FROM {table} GROUP BY 1"
            ),
        );
        let want_types = if url == sqlite {
            "integer integer real"
        } else {
            "bigint smallint double precision"
        };
        // Two hours of sc-bytes 1000..=1039; the user agent percent-decoded.
        assert_eq!(
            got,
            [format!("{want_types}\t80\t{}\tMozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/78.0.3904.108 Safari/537.36", 2 * (1000..1040).sum::<u32>())],
            "{url}"
        );
        let out = run(&mut at_moto(), &["load", "--warehouse", &url, &root]);
        assert!(
            text(&out).contains("loaded 0 files (0 rows), 2 already loaded"),
            "{url}: {}",
            text(&out)
        );
        let out = run(&mut at_moto(), &["verify", "--warehouse", &url, &root]);
        assert!(out.status.success(), "{url}: {}", text(&out));
    }
}

/// One access-log format of issue #25's test: its sample log's record
/// (tests/data/logs/) with other times, routed by the router, and the rows
/// a `"timestamp" BETWEEN from AND to` query must find.
struct TimeCase {
    format: logrouter::config::LineFormat,
    /// The fixed type, and so the table.
    table: &'static str,
    /// The source object's key.
    key: &'static str,
    log: String,
    /// The column that tells the lines apart.
    id: &'static str,
    from: &'static str,
    to: &'static str,
    /// `id`, then the timestamp as `YYYY-MM-DD HH:MM:SS.ffffff`, by time.
    want: &'static [&'static str],
}

impl TimeCase {
    /// Its log's records (not its header lines).
    fn records(&self) -> usize {
        self.log.lines().filter(|l| !l.starts_with('#')).count()
    }
}

/// The sample log `name`'s header (its first `header` lines) and its first
/// record once per entry of `lines`, with the record's time (`time`) and
/// id (`id`) replaced by the entry's.
fn sample_lines(
    name: &str,
    header: usize,
    (time, id): (&str, &str),
    lines: &[(&str, &str)],
) -> String {
    let sample = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/data/logs")
            .join(name),
    )
    .unwrap();
    let mut it = sample.lines();
    let mut out: String = it.by_ref().take(header).map(|h| format!("{h}\n")).collect();
    let record = it.next().unwrap();
    assert!(record.contains(time) && record.contains(id), "{record}");
    for (t, i) in lines {
        out += &record.replacen(time, t, 1).replacen(id, i, 1);
        out.push('\n');
    }
    out
}

fn time_cases() -> Vec<TimeCase> {
    use logrouter::config::LineFormat;
    // CloudFront: a pair around midnight in the range; the sample's
    // 21:02:31 before it; the first one's time of day a day later, after it.
    let cloudfront = sample_lines(
        "cloudfront-EMLARXS9EXAMPLE.2019-12-04-21.example",
        2,
        (
            "2019-12-04\t21:02:31",
            "SOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==",
        ),
        &[
            ("2019-12-04\t21:02:31", "cf-before"),
            ("2019-12-04\t23:59:59", "cf-last-second"),
            ("2019-12-05\t00:00:01", "cf-next-day"),
            ("2019-12-05\t23:59:59", "cf-a-day-later"),
        ],
    );
    // S3: times at +0000 and at other offsets, converted to UTC.
    let s3 = sample_lines(
        "s3-access-2019-02-06-00-01-57-EXAMPLE",
        0,
        ("[06/Feb/2019:00:01:57 +0000]", "DD6CC733AEXAMPLE"),
        &[
            ("[06/Feb/2019:00:01:57 +0000]", "s3-utc"),
            // 00:30:00 UTC, written at +0200.
            ("[06/Feb/2019:02:30:00 +0200]", "s3-east"),
            // 00:15:00 UTC on the 6th, written on the 5th at -0500.
            ("[05/Feb/2019:19:15:00 -0500]", "s3-west-day-before"),
            // 01:30:00 UTC: out, though its local time is in the range.
            ("[06/Feb/2019:00:30:00 -0100]", "s3-local-in-utc-out"),
            ("[05/Feb/2019:23:59:59 +0000]", "s3-before"),
        ],
    );
    // ALB: the last microsecond in the range, and the first after it.
    let alb = sample_lines(
        "alb-example.log",
        0,
        (
            "2018-07-02T22:23:00.186641Z",
            "Root=1-58337262-36d228ad5d99923122bbe354",
        ),
        &[
            ("2018-07-02T22:23:00.186641Z", "Root=alb-sample"),
            ("2018-07-02T22:59:59.999999Z", "Root=alb-last"),
            ("2018-07-02T23:00:00.000001Z", "Root=alb-after"),
            ("2018-07-02T21:59:59.999999Z", "Root=alb-before"),
        ],
    );
    vec![
        TimeCase {
            format: LineFormat::Cloudfront,
            table: "cloudfront",
            key: "logs/cf/EMLARXS9EXAMPLE.2019-12-04-23.a1b2c3d4.gz",
            log: cloudfront,
            id: "x_edge_request_id",
            from: "2019-12-04 23:59:00",
            to: "2019-12-05 00:01:00",
            want: &[
                "cf-last-second\t2019-12-04 23:59:59.000000",
                "cf-next-day\t2019-12-05 00:00:01.000000",
            ],
        },
        TimeCase {
            format: LineFormat::S3Access,
            table: "s3_access",
            key: "logs/s3/2019-02-06-00-01-57-EXAMPLE",
            log: s3,
            id: "request_id",
            from: "2019-02-06 00:00:00",
            to: "2019-02-06 01:00:00",
            want: &[
                "s3-utc\t2019-02-06 00:01:57.000000",
                "s3-west-day-before\t2019-02-06 00:15:00.000000",
                "s3-east\t2019-02-06 00:30:00.000000",
            ],
        },
        TimeCase {
            format: LineFormat::Alb,
            table: "alb",
            key: "logs/alb/123456789012_elasticloadbalancing_us-east-2_app.my-loadbalancer.50dc6c495c0c9188_20180702T2225Z_10.0.0.1_abc.log.gz",
            log: alb,
            id: "trace_id",
            from: "2018-07-02 22:00:00",
            to: "2018-07-02 23:00:00",
            want: &[
                "Root=alb-sample\t2018-07-02 22:23:00.186641",
                "Root=alb-last\t2018-07-02 22:59:59.999999",
            ],
        },
    ]
}

/// Issue #25: every access-log table has a `timestamp` column (UTC), filled
/// from the `timestamp` the router writes into every object of the three
/// formats, so one query finds a time range on every warehouse: real
/// CloudFront, S3 access and ALB lines, routed by the router from (moto)
/// S3, into tables built by the shipped migrations (0003 adds the column to
/// the tables 0002 made) on SQLite, PostgreSQL and Redshift (the Data API
/// test server), answer `"timestamp" BETWEEN … AND …` with exactly the
/// expected rows: a CloudFront pair around midnight (its `date` and `time`
/// joined), S3 times written at +0000 and at other offsets (converted to
/// UTC: a line whose local time is in the range but whose UTC time is not
/// is left out), ALB's microseconds at the range's ends. `timestamp` is a
/// reserved word in Redshift: the query quotes it, as the loader's DDL,
/// COPY and INSERT column lists do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue25_access_log_tables_answer_a_time_range_on_every_warehouse() {
    use logrouter::manifest::Manifest;

    const ROLE: &str = "arn:aws:iam::123456789012:role/logrouter-copy";
    let s3 = s3().await;
    let bucket = unique("ts");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let at = |key: &str| Location::S3 {
        bucket: bucket.clone(),
        key: key.to_owned(),
    };
    let cases = time_cases();
    let mut lines = 0;
    for case in &cases {
        let body = if case.key.ends_with(".gz") {
            gzip(case.log.as_bytes())
        } else {
            case.log.clone().into_bytes()
        };
        s3.put_object()
            .bucket(&bucket)
            .key(case.key)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
        let mut config = test_config();
        config.route.format = case.format;
        config.route.fixed_type = Some(case.table.into());
        config.validate().unwrap();
        let router = router::route::Router::new(
            &config,
            &at("routed"),
            std::sync::Arc::new(logrouter::aws::AwsClients::new(config.aws.clone())),
        )
        .await
        .unwrap();
        let manifest: Manifest = match router.route_object(&at(case.key), false).await.unwrap() {
            router::route::RouteOutcome::Routed { manifest, .. } => *manifest,
            other => panic!("{}: {other:?}", case.key),
        };
        assert_eq!(
            (manifest.lines.routed, manifest.lines.quarantined),
            (case.records() as u64, 0),
            "{}",
            case.key
        );
        assert_eq!(
            manifest.types.keys().collect::<Vec<_>>(),
            [case.table],
            "{}",
            case.key
        );
        lines += manifest.lines.routed;
    }
    assert_eq!(lines, 13);

    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", dir.path().join("w.db").display());
    let redshift = format!("redshift://test-cluster/dev?db_user=loader&iam_role={ROLE}");
    let root = format!("s3://{bucket}/routed");
    let migrations = shipped_schemas().join("../migrations");
    // A schema each: the Data API test server runs on the same PostgreSQL,
    // and its migrations are Redshift's.
    for (url, schema) in [
        (sqlite.clone(), unique_schema("ts25")),
        (database_url(), unique_schema("ts25")),
        (redshift, unique_schema("rsts25")),
    ] {
        let cmd = || {
            let mut cmd = loader_in(&schema);
            cmd.env("AWS_ENDPOINT_URL", moto())
                .env("LOGROUTER_AWS__FORCE_PATH_STYLE", "true")
                .env("AWS_ENDPOINT_URL_REDSHIFT_DATA", redshift_data());
            cmd
        };
        let out = run(
            &mut cmd(),
            &[
                "migrate",
                "--warehouse",
                &url,
                "--migrations",
                migrations.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success() && text(&out).contains("0003_add_access_log_timestamp"),
            "{url}: {}",
            text(&out)
        );
        let out = run(&mut cmd(), &["load", "--warehouse", &url, &root]);
        assert!(
            out.status.success() && text(&out).contains(&format!("loaded 3 files ({lines} rows)")),
            "{url}: {}",
            text(&out)
        );
        // SQLite keeps the loader's UTC text, which sorts as time.
        let stamp = if url == sqlite {
            "\"timestamp\""
        } else {
            "to_char(\"timestamp\", 'YYYY-MM-DD HH24:MI:SS.US')"
        };
        let qualify = |t: &str| {
            if url == sqlite {
                format!("\"{t}\"")
            } else {
                format!("\"{schema}\".\"{t}\"")
            }
        };
        for case in &cases {
            let table = qualify(case.table);
            let got = query(
                &mut cmd(),
                &url,
                &format!(
                    "SELECT {id}, {stamp} FROM {table} WHERE \"timestamp\" BETWEEN '{from}' AND '{to}' ORDER BY \"timestamp\"",
                    id = case.id,
                    from = case.from,
                    to = case.to,
                ),
            );
            assert_eq!(got, case.want, "{url}: {}", case.table);
            // Every row has its timestamp.
            let got = query(
                &mut cmd(),
                &url,
                &format!("SELECT count(*), count(\"timestamp\") FROM {table}"),
            );
            let n = case.records();
            assert_eq!(got, [format!("{n}\t{n}")], "{url}: {}", case.table);
        }
    }
}
