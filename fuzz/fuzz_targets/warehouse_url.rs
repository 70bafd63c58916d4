//! `loader::warehouse::WarehouseUrl::parse` (`--warehouse`,
//! `load.warehouse`), and for a PostgreSQL URL what connecting does with it
//! first (`tokio_postgres::Config`'s parser): never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loader::warehouse::WarehouseUrl;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match WarehouseUrl::parse(text) {
        Ok(WarehouseUrl::Sqlite(path)) => assert!(!path.as_os_str().is_empty()),
        Ok(WarehouseUrl::Postgres(conninfo)) => {
            let _ = conninfo.parse::<tokio_postgres::Config>();
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
