//! `logrouter::config::Config` from TOML text, read the way `Config::load`
//! reads its file (the `config` crate's TOML source, then
//! `try_deserialize`), then `validate()`. A configuration that validates
//! must build everything start-up builds from it without a panic (the
//! type pointer, the compression level, the router's `RouteRules`, whose
//! regex and formats are `expect`ed as "validated at start-up").
#![no_main]

use libfuzzer_sys::fuzz_target;
use logrouter::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let built = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build();
    let Ok(built) = built else { return };
    let Ok(cfg) = built.try_deserialize::<Config>() else {
        return;
    };
    if cfg.validate().is_err() {
        return;
    }
    let _ = cfg.type_pointer();
    let _ = cfg.compression_level();
    let _ = cfg.queue.heartbeat_secs();
    let rules = router::lines::RouteRules::new(&cfg);
    assert!(!rules.is_replay());
    if rules.format != logrouter::config::LineFormat::Json
        && rules.format != logrouter::config::LineFormat::Auto
    {
        assert!(router::format::Converter::new(rules.format, rules.payload.as_ref()).is_some());
    }
});
