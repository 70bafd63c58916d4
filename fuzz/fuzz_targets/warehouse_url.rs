//! `loader::warehouse::WarehouseUrl::parse` (`--warehouse`,
//! `load.warehouse`), which for PostgreSQL also takes libpq's `sslmode` and
//! `sslrootcert` out and parses the rest with `tokio_postgres::Config`:
//! never a panic, and the printable form never shows the password.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loader::warehouse::WarehouseUrl;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match WarehouseUrl::parse(text) {
        Ok(WarehouseUrl::Sqlite(path)) => assert!(!path.as_os_str().is_empty()),
        Ok(WarehouseUrl::Postgres(t)) => {
            // What messages show has the password masked: read again as a
            // connection string, it has no password but `***`; and a URL's
            // credentials, split where tokio-postgres splits them, end in
            // `:***`.
            if t.config.get_password().is_some() {
                if let Ok(again) = t.shown.parse::<tokio_postgres::Config>() {
                    let pw = again.get_password().map(String::from_utf8_lossy);
                    assert!(
                        pw.as_deref().is_none_or(|p| p == "***"),
                        "{} shows {pw:?}",
                        t.shown
                    );
                }
                let url = ["postgres://", "postgresql://"]
                    .iter()
                    .find_map(|p| t.shown.strip_prefix(p));
                if let Some(creds) = url.and_then(|rest| rest.split_once('@')).map(|(c, _)| c) {
                    if let Some((_, pw)) = creds.split_once(':') {
                        assert_eq!(pw, "***", "{}", t.shown);
                    }
                }
            }
        }
        Ok(WarehouseUrl::Redshift(t)) => {
            assert!(t.iam_role.starts_with("arn:aws") && t.iam_role.contains(":role/"));
            assert!(t.cluster.is_some() != t.workgroup.is_some());
            assert!(t.workgroup.is_some() || t.db_user.is_some() || t.secret_arn.is_some());
            assert!(!t.database.is_empty());
        }
        Err(e) => assert!(!e.is_empty()),
    }
});
