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
            // What messages show has the password hidden: it occurs there
            // fewer times than in the URL (it may also be, say, the host's
            // name, which stays).
            if let Some(pw) = t.config.get_password() {
                let pw = String::from_utf8_lossy(pw);
                let given = text.matches(pw.as_ref()).count();
                // Only a password written as it is (not percent-encoded:
                // `%65` is `e`, which may be in the user's name too).
                let literal =
                    text.contains(&format!(":{pw}@")) || text.contains(&format!("password={pw}"));
                if !pw.is_empty() && given > 0 && literal {
                    // Our own `***` masks are not the password (even when
                    // it is `*`), nor are matches across one.
                    let shown: usize = t
                        .shown
                        .split("***")
                        .map(|piece| piece.matches(pw.as_ref()).count())
                        .sum();
                    assert!(shown < given, "{} shows {pw:?}", t.shown);
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
