//! PostgreSQL over TLS (`sslmode`, `sslrootcert`) against the test cluster,
//! which `scripts/test` starts with a certificate from a CA of its own; and
//! a password that never shows in what the loader prints or serves.

use loader::warehouse::postgres::{PgTarget, SslMode};

use crate::support::*;

fn env(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!("{name} is not set: run the tests with scripts/test, whose PostgreSQL cluster has TLS on (with DATABASE_URL, set DATABASE_CA and DATABASE_WRONG_CA to CA files)")
        })
}

/// The test database's URL with `params` added.
fn url_with(params: &str) -> String {
    let url = database_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// What the server says of a connection made through the loader's
/// connector: (TLS in use, protocol version).
async fn session(url: &str) -> Result<(bool, Option<String>), String> {
    let target = PgTarget::parse(url)?;
    let (client, conn) = target
        .config
        .connect(target.tls.clone())
        .await
        .map_err(|e| loader::warehouse::postgres::describe(&e))?;
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    Ok((row.get(0), row.get(1)))
}

#[tokio::test]
async fn issue13_postgres_sslmodes_against_a_cluster_with_its_own_ca() {
    let ca = env("TEST_DATABASE_CA");
    let wrong = env("TEST_DATABASE_WRONG_CA");
    let tls13 = Ok((true, Some("TLSv1.3".to_owned())));

    assert_eq!(
        session(&url_with("sslmode=disable")).await,
        Ok((false, None))
    );
    // libpq's default: TLS when offered, unverified.
    assert_eq!(session(&database_url()).await, tls13);
    assert_eq!(session(&url_with("sslmode=require")).await, tls13);
    assert_eq!(
        session(&url_with(&format!("sslmode=verify-full&sslrootcert={ca}"))).await,
        tls13
    );

    // The wrong CA: refused, and the message says what to do.
    for mode in ["verify-full", "verify-ca", "require"] {
        let e = session(&url_with(&format!("sslmode={mode}&sslrootcert={wrong}")))
            .await
            .unwrap_err();
        assert!(e.contains("UnknownIssuer"), "{mode}: {e}");
    }
    // No CA given: the system's roots do not know the test CA.
    let e = session(&url_with("sslmode=verify-full")).await.unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");

    // A name the certificate does not carry (connected by address):
    // verify-full refuses it, verify-ca only checks the chain.
    let port = database_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .unwrap()
        .to_owned();
    let by_name = |mode: &str| {
        format!(
            "host=db.example.invalid hostaddr=127.0.0.1 port={port} user=postgres dbname=postgres sslmode={mode} sslrootcert={ca}"
        )
    };
    let e = session(&by_name("verify-full")).await.unwrap_err();
    assert!(
        e.contains("not valid for name \"db.example.invalid\""),
        "{e}"
    );
    assert_eq!(session(&by_name("verify-ca")).await, tls13);
    assert_eq!(
        PgTarget::parse(&by_name("require")).unwrap().mode,
        SslMode::VerifyCa,
        "require with a root certificate verifies the chain, as libpq does"
    );
}

#[tokio::test]
async fn issue13_loader_loads_over_verify_full_and_a_wrong_ca_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    route_local(dir.path(), "app-2015-01-20-13.log.gz", &events(300, 1)).await;
    let routed = dir.path().join("routed");
    let schema = unique_schema("tls");
    let load = |params: String| {
        let mut cmd = loader();
        cmd.env("LOGROUTER_LOAD__DB_SCHEMA", &schema);
        run(
            &mut cmd,
            &[
                "load",
                "--warehouse",
                &url_with(&params),
                routed.to_str().unwrap(),
            ],
        )
    };
    let ca = env("TEST_DATABASE_CA");
    let wrong = env("TEST_DATABASE_WRONG_CA");

    let bad = load(format!("sslmode=verify-full&sslrootcert={wrong}"));
    assert!(!bad.status.success());
    let said = text(&bad);
    assert!(
        said.contains("sslmode=verify-full")
            && said.contains("UnknownIssuer")
            && said.contains(&format!("sslrootcert={wrong}"))
            && said.contains("sslmode=require to encrypt without verifying"),
        "{said}"
    );
    let made: i64 = pg()
        .await
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(made, 0, "nothing was written before the handshake failed");

    let missing = load("sslmode=verify-full&sslrootcert=/no/such/ca.pem".into());
    assert_eq!(missing.status.code(), Some(2), "a bad URL is a usage error");
    assert!(
        text(&missing).contains("sslrootcert=/no/such/ca.pem: cannot read it"),
        "{}",
        text(&missing)
    );

    let ok = load(format!("sslmode=verify-full&sslrootcert={ca}"));
    assert!(ok.status.success(), "{}", text(&ok));
    assert_eq!(pg_counts(&schema).await, manifest_counts(&routed));
}

/// A role of the test cluster that must give its password (SCRAM):
/// scripts/lib/postgres.sh puts it first in pg_hba.conf.
async fn password_role(password: &str) -> String {
    let c = pg().await;
    c.batch_execute(&format!(
        "DO $$ BEGIN CREATE ROLE logrouter_pw LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
         ALTER ROLE logrouter_pw PASSWORD '{password}';
         GRANT CREATE ON DATABASE postgres TO logrouter_pw;"
    ))
    .await
    .unwrap();
    let url = database_url();
    url.replacen("postgres@", &format!("logrouter_pw:{password}@"), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_a_password_never_appears_in_logs_errors_or_metrics() {
    let password = format!("Pw-{}", unique("secret"));
    let url = password_role(&password).await;
    assert!(
        url.contains(&password) && url.contains("logrouter_pw"),
        "{url}"
    );
    let dir = tempfile::tempdir().unwrap();
    route_local(dir.path(), "app-2015-01-20-13.log.gz", &events(200, 2)).await;
    let routed = dir.path().join("routed");
    let schema = unique_schema("pw");
    let mut seen = String::new();
    let mut load = |url: &str| {
        let mut cmd = loader();
        cmd.env("RUST_LOG", "trace")
            .env("LOGROUTER_LOAD__DB_SCHEMA", &schema);
        let out = run(
            &mut cmd,
            &["load", "--warehouse", url, routed.to_str().unwrap()],
        );
        seen.push_str(&text(&out));
        out
    };

    // The right password: loads (so the password was really used).
    let ok = load(&url);
    assert!(ok.status.success());
    assert_eq!(pg_counts(&schema).await, manifest_counts(&routed));
    // A wrong one, in the user info and as a parameter: refused, by name.
    let wrong = url.replace(&password, &format!("{password}-wrong"));
    let bad = load(&wrong);
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("password authentication failed"),
        "{}",
        text(&bad)
    );
    let as_param = format!(
        "{}?password={password}-wrong",
        wrong.replace(&format!(":{password}-wrong@"), "@")
    );
    assert!(!load(&as_param).status.success());
    // From the config file's key, not the flag.
    let config = dir.path().join("loader.toml");
    std::fs::write(&config, format!("[load]\nwarehouse = \"{wrong}\"\n")).unwrap();
    let mut cmd = loader();
    cmd.env("RUST_LOG", "trace")
        .env("LOGROUTER_LOAD__DB_SCHEMA", &schema);
    let out = run(
        &mut cmd,
        &[
            "load",
            "--config",
            config.to_str().unwrap(),
            routed.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    seen.push_str(&text(&out));

    // The service: its logs at trace, /metrics and /healthz.
    let sqs = sqs().await;
    let queue = create_queue(&sqs, "loader-pw").await;
    let port = free_port();
    let service = Service::start(
        loader_at_moto()
            .env("RUST_LOG", "trace")
            .env("LOGROUTER_LOAD__DB_SCHEMA", &schema)
            .env("LOGROUTER_QUEUE__WAIT_TIME_SECS", "1")
            .env("LOGROUTER_METRICS__HEALTH_CHECK_SECS", "1")
            .args(["run", "--queue-url", &queue, "--warehouse", &url])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")]),
    );
    wait_for(60, "the service ready", || {
        http_get(port, "/healthz").filter(|(s, _)| *s == 200)
    });
    for path in ["/metrics", "/healthz", "/livez"] {
        seen.push_str(&http_get(port, path).unwrap().1);
    }
    let log = service.stderr();
    service.stop();
    seen.push_str(&log);

    assert!(
        seen.contains("logrouter_pw:***@") && seen.contains("logrouter_loader_"),
        "the output checked is the real one:\n{seen}"
    );
    assert!(
        !seen.contains(&password),
        "the password shows:\n{}",
        seen.lines()
            .filter(|l| l.contains(&password))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
