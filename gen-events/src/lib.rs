//! `gen-events`: a deterministic generator of synthetic event logs.
//!
//! It writes JSON lines (one event object per line, `\n`-terminated) that look
//! like the analytics events of a video/web product: every event has its type
//! in the top-level key `event_type`, common fields (`ts`, `event_id`,
//! `session_id`, nested `user` and `device` objects) and type-specific fields,
//! some of them optional. Some strings need JSON escaping (quotes, newlines,
//! non-ASCII letters) now and then, as real data does.
//!
//! It is used for:
//! - demo data for the main command shown in the README
//!   (`gen-events --gzip --out events.jsonl.gz`, then `router route`),
//! - test data (`--dirty` adds about one bad line in 500: truncated JSON,
//!   arrays, missing or non-string `event_type`, oddly spelled types, blank
//!   lines),
//! - the input of the `bench/router` throughput benchmark (about 1 GB,
//!   `--types 50`, gzipped).
//!
//! `--format cloudfront|s3_access|alb` writes AWS access logs instead (see
//! `access.rs`: CloudFront standard logs, S3 server access logs with an
//! optional `--payload` event in the query string, ALB access logs).
//! `--format github` writes JSON lines of another shape: GitHub-archive-like
//! events, deeply nested, with long, varied and non-ASCII strings (see
//! `github.rs`; the second corpus of `bench/router`).
//!
//! The output is deterministic: the same arguments give byte-identical output
//! on every machine and with every run (plain or gzipped). It uses its own
//! seeded PRNG (splitmix64) and integer arithmetic only (floats are produced as
//! `integer / 1000.0` and printed with serde_json's shortest round-trip
//! formatting), and no clock, environment or hash-map ordering.
//!
//! It is a crate of its own (issue #25), a library with a thin binary:
//! [`main`] is the `gen-events` command, and [`output`] runs the same
//! command in process, which is how the router's integration tests get
//! their input (cargo gives `CARGO_BIN_EXE_<name>` only to the tests of the
//! binary's own package). It depends on `router` for the access-log formats'
//! documented field lists; the router depends on it only for its tests.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::ser::{SerializeMap, Serializer as _};
use serde::Serialize;

mod access;
mod github;
use access::{AccessGen, Format};
use github::GithubGen;

/// Lines written when neither `--lines` nor `--bytes` is given.
const DEFAULT_LINES: u64 = 10_000;
/// One line in `DIRTY_ONE_IN` is bad input when `--dirty` is given.
const DIRTY_ONE_IN: u64 = 500;
/// Number of concurrently "active" users (and sessions) events are drawn from.
const USER_POOL: usize = 4096;

/// Generate deterministic synthetic JSON-lines event logs.
#[derive(Debug, Clone, Parser)]
#[command(name = "gen-events", version)]
struct Args {
    /// Stop after N lines [default: 10000, unless --bytes is given].
    #[arg(long, value_name = "N")]
    lines: Option<u64>,

    /// Stop once at least B uncompressed bytes were written (suffixes K, M,
    /// G, T are powers of 1024: 64K, 500M, 1G). With --lines too, stop at
    /// whichever limit comes first.
    #[arg(long, value_name = "B", value_parser = parse_size)]
    bytes: Option<u64>,

    /// Number of distinct event types (1 to 64); the first ones are much more
    /// frequent than the last ones (Zipf-like).
    #[arg(long, value_name = "T", default_value_t = 12,
          value_parser = clap::value_parser!(u8).range(1..=64))]
    types: u8,

    /// Seed of the PRNG: the same seed (and arguments) gives the same bytes.
    #[arg(long, value_name = "S", default_value_t = 42)]
    seed: u64,

    /// First hour of the timestamps, as YYYY-MM-DDTHH (UTC); the events are
    /// spread over that hour.
    #[arg(long, value_name = "YYYY-MM-DDTHH", default_value = "2015-01-20T13",
          value_parser = parse_start)]
    start: Start,

    /// Compress the output with gzip (level 6).
    #[arg(long)]
    gzip: bool,

    /// Make about one line in 500 bad input of a random kind.
    #[arg(long)]
    dirty: bool,

    /// Write to FILE instead of stdout (and print a summary line on stderr).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,

    /// What to write: JSON lines of analytics events, JSON lines of
    /// GitHub-archive-like events (`github`: at most 50 types), or an AWS access log
    /// (with --lines N: N records; CloudFront's two header lines come first).
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,

    /// Access logs: write the first N of the format's documented fields
    /// (CloudFront 24, 26 or 33 [default]; s3_access 18 to 26 [default];
    /// alb 18 to 30 [default]), as files of that vintage have.
    #[arg(long, value_name = "N")]
    fields: Option<usize>,

    /// s3_access: every request is a GET of the object `tick` carrying one
    /// event as the pipe-delimited `data` query value
    /// (|event_timestamp|event_guid|user_id|user_type|consumer|country|event_type|video_type|content_id|start|end|).
    #[arg(long)]
    payload: bool,
}

/// The validated `--start` hour, kept as the timestamp prefix `YYYY-MM-DDTHH:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Start([u8; 14]);

/// Parses a size such as `1000`, `64K`, `500M`, `1G`, `1.5GiB` (binary units).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("unknown size suffix in {s:?} (use K, M, G or T)")),
    };
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(1u64 << shift)
            .ok_or_else(|| format!("size {s:?} is too large"));
    }
    match num.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 && x * ((1u64 << shift) as f64) < 1.8e19 => {
            Ok((x * (1u64 << shift) as f64).round() as u64)
        }
        _ => Err(format!(
            "invalid size {s:?} (expected e.g. 1000, 64K, 500M, 1G)"
        )),
    }
}

/// Parses `YYYY-MM-DDTHH` (an optional trailing `Z` is accepted).
fn parse_start(s: &str) -> Result<Start, String> {
    let err = || format!("invalid start hour {s:?} (expected YYYY-MM-DDTHH, e.g. 2015-01-20T13)");
    let t = s.strip_suffix('Z').unwrap_or(s).as_bytes();
    if t.len() != 13 || t[4] != b'-' || t[7] != b'-' || t[10] != b'T' {
        return Err(err());
    }
    let num = |r: std::ops::Range<usize>| -> Result<u32, String> {
        let part = &t[r];
        if part.iter().all(u8::is_ascii_digit) {
            Ok(part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
        } else {
            Err(err())
        }
    };
    let (year, month, day, hour) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(err()),
    };
    if day == 0 || day > days || hour > 23 {
        return Err(err());
    }
    let mut prefix = [b':'; 14];
    prefix[..13].copy_from_slice(t);
    Ok(Start(prefix))
}

// ---------------------------------------------------------------------------
// PRNG

/// splitmix64: tiny, fast, and good enough for synthetic data.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift (no modulo bias to speak of).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `pct` percent.
    fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Zipf-like weights of `n` types (type `i` weighs `1 / (i + 1)`),
/// cumulative: the first types are much more frequent than the last ones.
#[derive(Debug, Clone)]
struct Zipf(Vec<u64>);

impl Zipf {
    fn new(n: usize) -> Self {
        let mut total = 0;
        Zipf(
            (0..n)
                .map(|i| {
                    total += 1_000_000 / (i as u64 + 1);
                    total
                })
                .collect(),
        )
    }

    /// A type's index, drawn by its weight.
    fn pick(&self, rng: &mut Rng) -> usize {
        let total = *self.0.last().expect("at least one type");
        let x = rng.below(total);
        self.0.partition_point(|&c| c <= x)
    }
}

/// The splitmix64 finaliser; also used to derive stable attributes from ids.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_into(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = HEX[(v & 15) as usize];
        v >>= 4;
    }
}

/// A version-4 UUID string built from 128 PRNG bits.
fn uuid(rng: &mut Rng) -> [u8; 36] {
    let hi = (rng.next_u64() & !0xF000) | 0x4000; // version 4
    let lo = (rng.next_u64() & !(0b11 << 62)) | (0b10 << 62); // RFC 4122 variant
    let mut hex = [0u8; 32];
    hex_into(&mut hex[..16], hi);
    hex_into(&mut hex[16..], lo);
    let mut out = [b'-'; 36];
    out[0..8].copy_from_slice(&hex[0..8]);
    out[9..13].copy_from_slice(&hex[8..12]);
    out[14..18].copy_from_slice(&hex[12..16]);
    out[19..23].copy_from_slice(&hex[16..20]);
    out[24..36].copy_from_slice(&hex[20..32]);
    out
}

/// Bytes that we built from ASCII only.
fn ascii(b: &[u8]) -> &str {
    std::str::from_utf8(b).expect("generated ASCII")
}

// ---------------------------------------------------------------------------
// Vocabulary

/// What type-specific fields an event type gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    VideoPlay,
    VideoPause,
    VideoProgress,
    VideoComplete,
    VideoSeek,
    VideoBuffer,
    VideoError,
    VideoQuality,
    VideoToggle,
    Subtitle,
    Cast,
    Live,
    PageView,
    Scroll,
    Click,
    FormSubmit,
    Search,
    Signup,
    Login,
    Logout,
    PasswordReset,
    AdImpression,
    AdClick,
    Cart,
    Purchase,
    Refund,
    PaymentFailed,
    Coupon,
    Trial,
    PlanChange,
    Gift,
    Share,
    Comment,
    Reaction,
    Subscribe,
    Rating,
    Chat,
    Playlist,
    Survey,
    Download,
    Message,
    EmailClick,
    Profile,
    Settings,
    AppOpen,
    AppClose,
    AppCrash,
    Error,
    Heartbeat,
    Experiment,
}

/// All event types, most frequent first. Every name matches
/// `^[a-z][a-z0-9_]{0,62}$`.
const TYPES: [(&str, Kind); 64] = [
    ("video_play", Kind::VideoPlay),
    ("video_pause", Kind::VideoPause),
    ("video_progress", Kind::VideoProgress),
    ("video_complete", Kind::VideoComplete),
    ("page_view", Kind::PageView),
    ("click", Kind::Click),
    ("search", Kind::Search),
    ("signup", Kind::Signup),
    ("login", Kind::Login),
    ("logout", Kind::Logout),
    ("ad_impression", Kind::AdImpression),
    ("ad_click", Kind::AdClick),
    ("add_to_cart", Kind::Cart),
    ("purchase", Kind::Purchase),
    ("share", Kind::Share),
    ("comment", Kind::Comment),
    ("like", Kind::Reaction),
    ("dislike", Kind::Reaction),
    ("subscribe", Kind::Subscribe),
    ("unsubscribe", Kind::Subscribe),
    ("video_seek", Kind::VideoSeek),
    ("video_buffer", Kind::VideoBuffer),
    ("video_error", Kind::VideoError),
    ("video_quality_change", Kind::VideoQuality),
    ("video_fullscreen", Kind::VideoToggle),
    ("video_mute", Kind::VideoToggle),
    ("playlist_add", Kind::Playlist),
    ("playlist_remove", Kind::Playlist),
    ("playlist_create", Kind::Playlist),
    ("download_start", Kind::Download),
    ("download_complete", Kind::Download),
    ("remove_from_cart", Kind::Cart),
    ("checkout_start", Kind::Purchase),
    ("payment_failed", Kind::PaymentFailed),
    ("refund", Kind::Refund),
    ("coupon_apply", Kind::Coupon),
    ("wishlist_add", Kind::Cart),
    ("notification_open", Kind::Message),
    ("email_open", Kind::Message),
    ("email_click", Kind::EmailClick),
    ("push_open", Kind::Message),
    ("profile_update", Kind::Profile),
    ("password_reset", Kind::PasswordReset),
    ("settings_change", Kind::Settings),
    ("app_open", Kind::AppOpen),
    ("app_close", Kind::AppClose),
    ("app_crash", Kind::AppCrash),
    ("app_background", Kind::AppClose),
    ("scroll", Kind::Scroll),
    ("form_submit", Kind::FormSubmit),
    ("error", Kind::Error),
    ("heartbeat", Kind::Heartbeat),
    ("cast_start", Kind::Cast),
    ("cast_stop", Kind::Cast),
    ("subtitle_toggle", Kind::Subtitle),
    ("live_join", Kind::Live),
    ("live_leave", Kind::Live),
    ("chat_message", Kind::Chat),
    ("rating_submit", Kind::Rating),
    ("trial_start", Kind::Trial),
    ("plan_change", Kind::PlanChange),
    ("gift_redeem", Kind::Gift),
    ("survey_response", Kind::Survey),
    ("experiment_exposure", Kind::Experiment),
];

/// Repeated entries make the common countries more frequent.
const COUNTRIES: &[&str] = &[
    "US", "US", "US", "US", "US", "GB", "GB", "DE", "DE", "FR", "FR", "BR", "BR", "IN", "IN", "CA",
    "JP", "MX", "ES", "IT", "AU", "NL", "SE", "PL", "KR", "AR", "TR", "ZA", "NG", "ID", "PH", "CO",
    "CH", "BE", "IE", "NZ",
];
const PLANS: &[&str] = &[
    "free", "free", "free", "basic", "basic", "standard", "standard", "premium", "family",
];
const DEVICES: &[(&str, &[&str])] = &[
    ("iOS 17.4", &["iPhone15,2", "iPhone14,5", "iPad13,18"]),
    ("iOS 16.7", &["iPhone12,1", "iPhone13,2"]),
    ("Android 14", &["Pixel 8", "SM-S911B", "SM-A546B"]),
    ("Android 13", &["Pixel 6a", "SM-G991B", "moto g54"]),
    ("Android 12", &["Redmi Note 11", "SM-A127F"]),
    ("Windows 11", &["Chrome 123", "Edge 123", "Firefox 124"]),
    ("Windows 10", &["Chrome 122", "Firefox 115"]),
    ("macOS 14.4", &["Safari 17.4", "Chrome 123"]),
    ("tvOS 17.2", &["AppleTV14,1"]),
    ("Roku OS 12.5", &["Roku Ultra", "Roku Express"]),
    ("Tizen 7.0", &["Samsung QN90B"]),
    ("webOS 6.0", &["LG OLED55C1"]),
    ("Fire OS 7", &["AFTMM", "AFTKA"]),
    ("Linux", &["Firefox 124"]),
];
const APP_VERSIONS: &[&str] = &[
    "5.12.3",
    "5.12.3",
    "5.12.2",
    "5.11.0",
    "5.10.7",
    "4.9.1",
    "6.0.0-beta.2",
];
/// Video titles; a few need JSON escaping or are not ASCII.
const VIDEO_TITLES: &[&str] = &[
    "The Last Lighthouse",
    "Ocean Deep: Episode 4",
    "Cooking with Fire",
    "Le Café \"Secret\" (Saison 2)",
    "Midnight Express Line",
    "Mountains of Patagonia",
    "Street Food: Bangkok",
    "Crème Brûlée in 5 Minutes",
    "The Quiet Detective",
    "Space Race, Part 1",
    "Kids Corner: Colors",
    "Champions League Highlights",
    "Ñandú: la película",
    "Tokyo Nights 東京",
    "Inside the Algorithm",
    "Weekend Workout",
    "Jazz at the Blue Room",
    "Mystery of the \"Red Door\"",
    "Stand-up Special",
    "A Day in Reykjavík",
];
const BITRATES: &[u32] = &[235, 375, 560, 750, 1050, 1750, 2350, 3000, 4300, 5800, 8000];
const QUALITIES: &[&str] = &["240p", "360p", "480p", "720p", "1080p", "1440p", "2160p"];
const PLAY_SOURCES: &[&str] = &[
    "home_row",
    "search",
    "continue_watching",
    "autoplay_next",
    "deep_link",
];
const CDNS: &[&str] = &["akamai", "cloudfront", "fastly", "edge-eu-3"];
const VIDEO_ERRORS: &[(&str, &str)] = &[
    ("MEDIA_ERR_NETWORK", "segment 42 timed out"),
    ("MEDIA_ERR_DECODE", "decoder error: unsupported profile"),
    ("DRM_LICENSE_EXPIRED", "license expired, please renew"),
    ("HTTP_403", "manifest request failed: \"403 Forbidden\""),
    ("PLAYER_STALL", "playback stalled\nretrying"),
];
const LANGUAGES: &[&str] = &["en", "es", "fr", "de", "pt-BR", "ja", "ko", "it"];
const RECEIVERS: &[&str] = &["Chromecast", "AirPlay", "Fire TV", "Roku"];
const PAGES: &[(&str, &str)] = &[
    ("/", "Home | Streamly"),
    ("/browse", "Browse | Streamly"),
    ("/browse/originals", "Originals | Streamly"),
    ("/browse/kids", "Kids | Streamly"),
    ("/live", "Live TV | Streamly"),
    ("/account", "Your account | Streamly"),
    ("/pricing", "Plans & pricing | Streamly"),
    (
        "/help/articles",
        "Help centre: \"Can't play videos?\" | Streamly",
    ),
    ("/fr/catalogue", "Catalogue — Séries | Streamly"),
];
const REFERRERS: &[&str] = &[
    "https://www.google.com/",
    "https://www.google.com/",
    "https://duckduckgo.com/",
    "https://t.co/x8Ka1Lq",
    "https://www.facebook.com/",
    "https://www.streamly.example/browse",
    "android-app://com.google.android.gm",
];
const ELEMENTS: &[(&str, &str)] = &[
    ("button#play", "Play"),
    ("button.subscribe", "Subscribe"),
    ("a.nav-home", "Home"),
    ("a.nav-search", "Search"),
    ("img.thumbnail", ""),
    ("button.trailer", "Watch trailer"),
    ("a.cta-signup", "Sign up – it's free"),
    ("div.card", "Continue watching"),
    ("button.menu", "Menu"),
];
const QUERIES: &[&str] = &[
    "stranger things",
    "stranger things\n",
    "cooking",
    "\"the office\" season 3",
    "café society",
    "documentaries 2014",
    "kids movies",
    "live football",
    "película de terror",
    "how to train your dragon",
    "jazz",
    "crème brûlée",
    "naruto",
    "space race",
    "weekend workout",
];
const SIGNUP_METHODS: &[&str] = &["email", "email", "google", "apple", "facebook"];
const AUTH_ERRORS: &[&str] = &[
    "invalid_password",
    "account_locked",
    "mfa_required",
    "unknown_user",
];
const CAMPAIGNS: &[&str] = &[
    "spring_sale_2015",
    "new_originals",
    "retarget_q1",
    "brand_awareness",
    "kids_week",
];
const AD_PLACEMENTS: &[&str] = &[
    "preroll", "preroll", "midroll", "postroll", "banner", "overlay",
];
const ADVERTISERS: &[&str] = &["Acme Corp", "Globex", "Initech", "Umbrella Café", "Soylent"];
/// Catalogue of things to buy: (sku, name, price in cents).
const PRODUCTS: &[(&str, &str, u64)] = &[
    ("SUB-1M-STD", "Standard plan, 1 month", 999),
    ("SUB-1M-PRM", "Premium plan, 1 month", 1499),
    ("SUB-12M-PRM", "Premium plan, 12 months", 14999),
    ("RENT-HD", "Movie rental (HD)", 399),
    ("RENT-4K", "Movie rental (4K)", 599),
    ("BUY-HD", "Movie purchase (HD)", 1499),
    ("GIFT-25", "Gift card $25", 2500),
    ("MERCH-MUG", "Mug \"Le Café\"", 1250),
    ("MERCH-TEE", "T-shirt, size M", 2200),
];
const PAYMENT_METHODS: &[&str] = &[
    "card",
    "card",
    "card",
    "paypal",
    "apple_pay",
    "google_pay",
    "gift_card",
];
const PAYMENT_ERRORS: &[&str] = &[
    "card_declined",
    "insufficient_funds",
    "expired_card",
    "3ds_failed",
];
const REFUND_REASONS: &[&str] = &[
    "accidental_purchase",
    "playback_issue",
    "duplicate",
    "other",
];
const COUPONS: &[&str] = &["WELCOME10", "SPRING15", "KIDSWEEK", "FRIENDS20"];
const SHARE_CHANNELS: &[&str] = &[
    "copy_link",
    "whatsapp",
    "twitter",
    "facebook",
    "email",
    "sms",
];
const COMMENTS: &[&str] = &[
    "Loved it!",
    "Best episode so far",
    "Who else is watching in 2015?",
    "The ending \"twist\" was obvious...",
    "Magnifique, très bien filmé",
    "Can't wait for season 3",
    "Audio is out of sync at 12:30",
    "First!\nSecond line of my comment",
    "meh",
    "¡Qué buena serie!",
];
const PLAYLIST_NAMES: &[&str] = &[
    "Watch later",
    "Favourites",
    "Kids",
    "Road trip",
    "Films français",
];
const SURVEY_QUESTIONS: &[(&str, &[&str])] = &[
    (
        "How likely are you to recommend us?",
        &["9", "10", "7", "3"],
    ),
    (
        "What should we add next?",
        &[
            "More anime",
            "Live sports",
            "Better \"kids\" profiles",
            "Rien",
        ],
    ),
    (
        "How was the video quality?",
        &["Great", "OK", "Blurry at night"],
    ),
];
const DOWNLOAD_QUALITIES: &[&str] = &["standard", "high"];
const NETWORKS: &[&str] = &["wifi", "wifi", "wifi", "cellular", "ethernet"];
const PROFILE_FIELDS: &[&str] = &["display_name", "avatar", "language", "birth_year", "email"];
const SETTINGS: &[(&str, &str, &str)] = &[
    ("autoplay", "on", "off"),
    ("subtitles_language", "en", "fr"),
    ("data_saver", "off", "on"),
    ("maturity_rating", "16+", "12+"),
    ("theme", "dark", "light"),
];
const CRASHES: &[(&str, &str)] = &[
    (
        "NullPointerException",
        "at com.streamly.player.Renderer.draw(Renderer.java:212)\nat android.os.Handler.dispatchMessage(Handler.java:106)",
    ),
    (
        "EXC_BAD_ACCESS",
        "0 Streamly 0x0000000100a3c1f4 PlayerView.layout + 84\n1 UIKitCore 0x00000001a2b3c4d5",
    ),
    ("OutOfMemoryError", "Failed to allocate a 8294412 byte allocation"),
];
const ERRORS: &[(&str, &str)] = &[
    (
        "E_NETWORK",
        "request to /api/v2/rows failed: timeout after 10000 ms",
    ),
    (
        "E_STORAGE",
        "cannot write C:\\Users\\Public\\Streamly\\cache.db",
    ),
    ("E_PARSE", "unexpected token '<' in \"rows.json\""),
    ("E_AUTH", "token expired"),
];
const EXPERIMENTS: &[(&str, &[&str])] = &[
    (
        "home_row_order_v3",
        &["control", "trending_first", "personalised"],
    ),
    ("trailer_autoplay", &["control", "muted", "off"]),
    ("pricing_page_2015q1", &["control", "annual_highlight"]),
];

/// `(old, new)` pairs for `plan_change`.
const PLAN_CHANGES: &[(&str, &str)] = &[
    ("free", "basic"),
    ("basic", "standard"),
    ("standard", "premium"),
    ("premium", "standard"),
    ("standard", "family"),
];

fn currency(country: &str) -> &'static str {
    match country {
        "US" | "CA" | "AU" | "NZ" => "USD",
        "GB" => "GBP",
        "DE" | "FR" | "ES" | "IT" | "NL" | "BE" | "IE" => "EUR",
        "JP" => "JPY",
        "BR" => "BRL",
        "IN" => "INR",
        "SE" => "SEK",
        "PL" => "PLN",
        "CH" => "CHF",
        _ => "USD",
    }
}

// ---------------------------------------------------------------------------
// Nested objects

#[derive(Serialize)]
struct UserObj<'a> {
    id: u64,
    country: &'a str,
    plan: &'a str,
}

#[derive(Serialize)]
struct DeviceObj<'a> {
    os: &'a str,
    app_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
}

#[derive(Serialize)]
struct VideoObj {
    id: u64,
    title: &'static str,
    duration_s: f64,
    position_s: f64,
    bitrate_kbps: u32,
}

#[derive(Serialize, Clone, Copy)]
struct Item {
    sku: &'static str,
    name: &'static str,
    qty: u64,
    price: f64,
    #[serde(skip)]
    cents: u64,
}

/// An active user: their attributes stay the same across their events.
#[derive(Debug, Clone)]
struct User {
    id: u64,
    country: &'static str,
    plan: &'static str,
    os: &'static str,
    model: Option<&'static str>,
    app_version: &'static str,
    session: [u8; 16],
}

impl User {
    fn new(rng: &mut Rng) -> User {
        let (os, models) = rng.pick(DEVICES);
        User {
            id: rng.range(1_000, 49_999_999),
            country: rng.pick(COUNTRIES),
            plan: rng.pick(PLANS),
            os,
            model: if rng.pct(70) {
                Some(rng.pick(models))
            } else {
                None
            },
            app_version: rng.pick(APP_VERSIONS),
            session: new_session(rng),
        }
    }
}

fn new_session(rng: &mut Rng) -> [u8; 16] {
    let mut s = [0u8; 16];
    hex_into(&mut s, rng.next_u64());
    s
}

/// How the `event_type` key is written (bad input uses the other variants).
enum TypeField<'a> {
    Str(&'a str),
    Int(u64),
    Missing,
}

// ---------------------------------------------------------------------------
// Generator

/// Counts of what was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Stats {
    lines: u64,
    bytes: u64,
    /// Bit `i` is set when type `TYPES[i]` appeared.
    types_seen: u64,
}

struct Gen {
    rng: Rng,
    /// Decides which lines are bad, and how, separately from the content.
    dirty_rng: Rng,
    dirty: bool,
    /// Cumulative Zipf-like weights of the first `--types` types.
    cumulative: Zipf,
    users: Vec<User>,
    start: Start,
    scratch: String,
}

impl Gen {
    fn new(args: &Args) -> Gen {
        let mut rng = Rng(args.seed);
        let dirty_rng = Rng(mix64(args.seed ^ 0xD1B5_4A32_D192_ED03));
        let cumulative = Zipf::new(usize::from(args.types));
        let users = (0..USER_POOL).map(|_| User::new(&mut rng)).collect();
        Gen {
            rng,
            dirty_rng,
            dirty: args.dirty,
            cumulative,
            users,
            start: args.start,
            scratch: String::with_capacity(256),
        }
    }

    fn pick_type(&mut self) -> usize {
        self.cumulative.pick(&mut self.rng)
    }

    /// Appends one line (without its `\n`) to `line`; returns the type index
    /// when the line is a valid event.
    fn next_line(&mut self, line: &mut Vec<u8>, ts_ms: u64) -> Option<usize> {
        let ty = self.pick_type();
        let name = TYPES[ty].0;
        if !(self.dirty && self.dirty_rng.below(DIRTY_ONE_IN) == 0) {
            self.event(line, ty, TypeField::Str(name), ts_ms);
            return Some(ty);
        }
        match self.dirty_rng.below(6) {
            0 => {
                // Truncated object, cut on a UTF-8 character boundary.
                self.event(line, ty, TypeField::Str(name), ts_ms);
                let mut cut = 1 + self.dirty_rng.below(line.len() as u64 - 2) as usize;
                while line[cut] & 0xC0 == 0x80 {
                    cut -= 1;
                }
                line.truncate(cut);
            }
            1 => {
                line.push(b'[');
                self.event(line, ty, TypeField::Str(name), ts_ms);
                line.push(b']');
            }
            2 => self.event(line, ty, TypeField::Missing, ts_ms),
            3 => {
                let n = self.dirty_rng.below(100);
                self.event(line, ty, TypeField::Int(n), ts_ms);
            }
            4 => {
                // Still routable once normalised: "Video Play", "video.play"...
                let style = self.dirty_rng.below(4);
                let mangled: String = name
                    .split('_')
                    .enumerate()
                    .map(|(i, word)| {
                        let sep = if i == 0 {
                            ""
                        } else {
                            [" ", ".", "-", "_"][style as usize]
                        };
                        let word = match style {
                            0 | 3 => word[..1].to_ascii_uppercase() + &word[1..],
                            2 => word.to_ascii_uppercase(),
                            _ => word.to_string(),
                        };
                        format!("{sep}{word}")
                    })
                    .collect();
                self.event(line, ty, TypeField::Str(&mangled), ts_ms);
            }
            _ => {} // blank line
        }
        None
    }

    /// Serialises one event object into `line`.
    fn event(&mut self, line: &mut Vec<u8>, ty: usize, type_field: TypeField, ts_ms: u64) {
        let Gen {
            rng,
            users,
            start,
            scratch,
            ..
        } = self;
        // Users come and go, sessions restart.
        let slot = rng.below(users.len() as u64) as usize;
        if rng.below(300) == 0 {
            users[slot] = User::new(rng);
        } else if rng.below(150) == 0 {
            users[slot].session = new_session(rng);
        }
        let user = &users[slot];

        let mut ts = [0u8; 24];
        ts[..14].copy_from_slice(&start.0);
        let (min, sec, ms) = (ts_ms / 60_000 % 60, ts_ms / 1000 % 60, ts_ms % 1000);
        for (i, d) in [
            min / 10,
            min % 10,
            10,
            sec / 10,
            sec % 10,
            11,
            ms / 100,
            ms / 10 % 10,
            ms % 10,
            12,
        ]
        .into_iter()
        .enumerate()
        {
            ts[14 + i] = b"0123456789:.Z"[d as usize];
        }
        let event_id = uuid(rng);

        let mut ser = serde_json::Serializer::new(&mut *line);
        let result = (|| {
            let mut m = ser.serialize_map(None)?;
            m.serialize_entry("ts", ascii(&ts))?;
            m.serialize_entry("event_id", ascii(&event_id))?;
            match type_field {
                TypeField::Str(s) => m.serialize_entry("event_type", s)?,
                TypeField::Int(n) => m.serialize_entry("event_type", &n)?,
                TypeField::Missing => {}
            }
            m.serialize_entry("session_id", ascii(&user.session))?;
            m.serialize_entry(
                "user",
                &UserObj {
                    id: user.id,
                    country: user.country,
                    plan: user.plan,
                },
            )?;
            m.serialize_entry(
                "device",
                &DeviceObj {
                    os: user.os,
                    app_version: user.app_version,
                    model: user.model,
                },
            )?;
            specific(&mut m, TYPES[ty].1, rng, scratch, user)?;
            SerializeMap::end(m)
        })();
        result.expect("serialising into a Vec cannot fail");
    }
}

/// A video from the catalogue: its title and duration depend on its id only.
fn video(rng: &mut Rng) -> VideoObj {
    let id = rng.range(100_000, 999_999);
    let h = mix64(id);
    let duration_ms = 30_000 + h % 7_170_000;
    VideoObj {
        id,
        title: VIDEO_TITLES[(h >> 32) as usize % VIDEO_TITLES.len()],
        duration_s: duration_ms as f64 / 1000.0,
        position_s: rng.below(duration_ms) as f64 / 1000.0,
        bitrate_kbps: rng.pick(BITRATES),
    }
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn money(cents: u64) -> f64 {
    cents as f64 / 100.0
}

/// Writes the type-specific fields of an event.
fn specific<M: SerializeMap>(
    m: &mut M,
    kind: Kind,
    rng: &mut Rng,
    s: &mut String,
    user: &User,
) -> Result<(), M::Error> {
    match kind {
        Kind::VideoPlay => {
            m.serialize_entry("video", &video(rng))?;
            if rng.pct(60) {
                m.serialize_entry("autoplay", &rng.pct(30))?;
            }
            if rng.pct(70) {
                m.serialize_entry("source", rng.pick(PLAY_SOURCES))?;
            }
        }
        Kind::VideoPause => m.serialize_entry("video", &video(rng))?,
        Kind::VideoProgress => {
            let v = video(rng);
            let pct = (v.position_s * 100.0 / v.duration_s) as u64;
            m.serialize_entry("video", &v)?;
            m.serialize_entry("progress_pct", &pct)?;
        }
        Kind::VideoComplete => {
            let mut v = video(rng);
            v.position_s = v.duration_s;
            m.serialize_entry("video", &v)?;
            m.serialize_entry("watch_time_s", &secs(rng.range(10_000, 9_000_000)))?;
        }
        Kind::VideoSeek => {
            let v = video(rng);
            let from = rng.below((v.duration_s * 1000.0) as u64);
            m.serialize_entry("video", &v)?;
            m.serialize_entry("from_s", &secs(from))?;
        }
        Kind::VideoBuffer => {
            m.serialize_entry("video", &video(rng))?;
            m.serialize_entry("buffer_ms", &rng.range(50, 12_000))?;
            if rng.pct(50) {
                m.serialize_entry("cdn", rng.pick(CDNS))?;
            }
        }
        Kind::VideoError => {
            let (code, message) = rng.pick(VIDEO_ERRORS);
            m.serialize_entry("video", &video(rng))?;
            m.serialize_entry("error_code", code)?;
            m.serialize_entry("message", message)?;
            m.serialize_entry("fatal", &rng.pct(20))?;
        }
        Kind::VideoQuality => {
            m.serialize_entry("video", &video(rng))?;
            m.serialize_entry("from_quality", rng.pick(QUALITIES))?;
            m.serialize_entry("to_quality", rng.pick(QUALITIES))?;
        }
        Kind::VideoToggle => {
            m.serialize_entry("video", &video(rng))?;
            m.serialize_entry("enabled", &rng.pct(60))?;
        }
        Kind::Subtitle => {
            m.serialize_entry("video", &video(rng))?;
            m.serialize_entry("language", rng.pick(LANGUAGES))?;
            m.serialize_entry("enabled", &rng.pct(70))?;
        }
        Kind::Cast => {
            m.serialize_entry("video", &video(rng))?;
            m.serialize_entry("receiver", rng.pick(RECEIVERS))?;
        }
        Kind::Live => {
            s.clear();
            let _ = write!(s, "live-{}", rng.range(1, 40));
            m.serialize_entry("stream_id", s.as_str())?;
            m.serialize_entry("viewers", &rng.range(10, 250_000))?;
            if rng.pct(40) {
                m.serialize_entry("latency_ms", &rng.range(800, 30_000))?;
            }
        }
        Kind::PageView | Kind::Scroll => {
            let (path, title) = rng.pick(PAGES);
            s.clear();
            let _ = write!(s, "https://www.streamly.example{path}");
            if rng.pct(30) {
                let _ = write!(s, "?utm_source={}", rng.pick(CAMPAIGNS));
            }
            m.serialize_entry("url", s.as_str())?;
            if kind == Kind::Scroll {
                m.serialize_entry("depth_pct", &(rng.range(1, 20) * 5))?;
            } else {
                let referrer = if rng.pct(35) {
                    None
                } else {
                    Some(rng.pick(REFERRERS))
                };
                m.serialize_entry("referrer", &referrer)?;
                m.serialize_entry("title", title)?;
                if rng.pct(50) {
                    m.serialize_entry("load_ms", &rng.range(80, 4_000))?;
                }
            }
        }
        Kind::Click => {
            let (element, text) = rng.pick(ELEMENTS);
            let (path, _) = rng.pick(PAGES);
            m.serialize_entry("element", element)?;
            if !text.is_empty() {
                m.serialize_entry("text", text)?;
            }
            m.serialize_entry("page", path)?;
            if rng.pct(50) {
                m.serialize_entry("x", &rng.below(1920))?;
                m.serialize_entry("y", &rng.below(1080))?;
            }
        }
        Kind::FormSubmit => {
            m.serialize_entry(
                "form_id",
                rng.pick(&["signup", "contact", "payment", "feedback"]),
            )?;
            m.serialize_entry("fields", &rng.range(2, 12))?;
            m.serialize_entry("valid", &rng.pct(85))?;
        }
        Kind::Search => {
            m.serialize_entry("query", rng.pick(QUERIES))?;
            let results = if rng.pct(8) { 0 } else { rng.range(1, 480) };
            m.serialize_entry("results_count", &results)?;
            if rng.pct(30) {
                m.serialize_entry("filter", rng.pick(&["movies", "series", "kids", "live"]))?;
            }
            if rng.pct(20) {
                m.serialize_entry("page", &rng.range(2, 5))?;
            }
        }
        Kind::Signup => {
            m.serialize_entry("method", rng.pick(SIGNUP_METHODS))?;
            m.serialize_entry("marketing_opt_in", &rng.pct(40))?;
            if rng.pct(30) {
                m.serialize_entry("referral_code", rng.pick(COUPONS))?;
            }
        }
        Kind::Login => {
            m.serialize_entry("method", rng.pick(SIGNUP_METHODS))?;
            let success = rng.pct(92);
            m.serialize_entry("success", &success)?;
            if !success {
                m.serialize_entry("error", rng.pick(AUTH_ERRORS))?;
            }
        }
        Kind::Logout => {
            m.serialize_entry(
                "reason",
                rng.pick(&["user", "user", "timeout", "token_revoked"]),
            )?;
            m.serialize_entry("session_length_s", &rng.range(5, 20_000))?;
        }
        Kind::PasswordReset => {
            m.serialize_entry("step", rng.pick(&["request", "email_sent", "complete"]))?;
        }
        Kind::AdImpression | Kind::AdClick => {
            s.clear();
            let _ = write!(s, "ad-{:06}", rng.below(1_000_000));
            m.serialize_entry("ad_id", s.as_str())?;
            m.serialize_entry("campaign", rng.pick(CAMPAIGNS))?;
            m.serialize_entry("advertiser", rng.pick(ADVERTISERS))?;
            m.serialize_entry("placement", rng.pick(AD_PLACEMENTS))?;
            if kind == Kind::AdImpression {
                if rng.pct(60) {
                    m.serialize_entry("cpm_usd", &secs(rng.range(500, 45_000)))?;
                }
            } else if rng.pct(50) {
                m.serialize_entry(
                    "destination",
                    "https://ads.example.com/landing?c=42&src=streamly",
                )?;
            }
        }
        Kind::Cart => {
            let (sku, name, cents) = rng.pick(PRODUCTS);
            let item = Item {
                sku,
                name,
                qty: rng.range(1, 3),
                price: money(cents),
                cents,
            };
            m.serialize_entry("item", &item)?;
            m.serialize_entry("cart_size", &rng.range(0, 6))?;
        }
        Kind::Purchase => {
            let n = rng.range(1, 4) as usize;
            let items: [Item; 4] = std::array::from_fn(|_| {
                let (sku, name, cents) = rng.pick(PRODUCTS);
                Item {
                    sku,
                    name,
                    qty: if rng.pct(85) { 1 } else { rng.range(2, 3) },
                    price: money(cents),
                    cents,
                }
            });
            let total: u64 = items[..n].iter().map(|it| it.qty * it.cents).sum();
            s.clear();
            let _ = write!(s, "ord_{:012x}", rng.next_u64() >> 16);
            m.serialize_entry("order_id", s.as_str())?;
            m.serialize_entry("amount", &money(total))?;
            m.serialize_entry("currency", currency(user.country))?;
            m.serialize_entry("items", &items[..n])?;
            m.serialize_entry("payment_method", rng.pick(PAYMENT_METHODS))?;
            if rng.pct(15) {
                m.serialize_entry("coupon", rng.pick(COUPONS))?;
            }
        }
        Kind::Refund => {
            s.clear();
            let _ = write!(s, "ord_{:012x}", rng.next_u64() >> 16);
            m.serialize_entry("order_id", s.as_str())?;
            m.serialize_entry("amount", &money(rng.pick(PRODUCTS).2))?;
            m.serialize_entry("currency", currency(user.country))?;
            m.serialize_entry("reason", rng.pick(REFUND_REASONS))?;
        }
        Kind::PaymentFailed => {
            m.serialize_entry("amount", &money(rng.pick(PRODUCTS).2))?;
            m.serialize_entry("currency", currency(user.country))?;
            m.serialize_entry("reason", rng.pick(PAYMENT_ERRORS))?;
            m.serialize_entry("attempt", &rng.range(1, 3))?;
        }
        Kind::Coupon => {
            m.serialize_entry("code", rng.pick(COUPONS))?;
            m.serialize_entry("discount_pct", &(rng.range(1, 5) * 5))?;
            m.serialize_entry("valid", &rng.pct(75))?;
        }
        Kind::Trial => {
            m.serialize_entry("trial_plan", rng.pick(&["standard", "premium"]))?;
            m.serialize_entry("trial_days", &rng.pick(&[7u64, 14, 30]))?;
        }
        Kind::PlanChange => {
            let (from, to) = rng.pick(PLAN_CHANGES);
            m.serialize_entry("from_plan", from)?;
            m.serialize_entry("to_plan", to)?;
            if rng.pct(50) {
                m.serialize_entry("prorated", &true)?;
            }
        }
        Kind::Gift => {
            s.clear();
            let _ = write!(s, "GIFT-{:08X}", rng.next_u64() >> 32);
            m.serialize_entry("code", s.as_str())?;
            m.serialize_entry("months", &rng.pick(&[1u64, 3, 6, 12]))?;
        }
        Kind::Share => {
            m.serialize_entry("video_id", &rng.range(100_000, 999_999))?;
            m.serialize_entry("channel", rng.pick(SHARE_CHANNELS))?;
        }
        Kind::Comment => {
            m.serialize_entry("video_id", &rng.range(100_000, 999_999))?;
            m.serialize_entry("text", rng.pick(COMMENTS))?;
            if rng.pct(30) {
                m.serialize_entry("parent_id", &rng.range(1, 90_000_000))?;
            }
        }
        Kind::Reaction => {
            m.serialize_entry("video_id", &rng.range(100_000, 999_999))?;
            if rng.pct(30) {
                m.serialize_entry("position_s", &secs(rng.below(7_200_000)))?;
            }
        }
        Kind::Subscribe => {
            m.serialize_entry("channel_id", &rng.range(1, 5_000))?;
            if rng.pct(50) {
                m.serialize_entry("notifications", &rng.pct(50))?;
            }
        }
        Kind::Rating => {
            m.serialize_entry("video_id", &rng.range(100_000, 999_999))?;
            m.serialize_entry("stars", &rng.range(1, 5))?;
            if rng.pct(25) {
                m.serialize_entry("review", rng.pick(COMMENTS))?;
            }
        }
        Kind::Chat => {
            s.clear();
            let _ = write!(s, "live-{}", rng.range(1, 40));
            m.serialize_entry("stream_id", s.as_str())?;
            m.serialize_entry("text", rng.pick(COMMENTS))?;
            if rng.pct(10) {
                m.serialize_entry("mentions", &rng.range(1, 3))?;
            }
        }
        Kind::Playlist => {
            m.serialize_entry("playlist_id", &rng.range(1, 10_000_000))?;
            if rng.pct(60) {
                m.serialize_entry("name", rng.pick(PLAYLIST_NAMES))?;
            }
            m.serialize_entry("video_id", &rng.range(100_000, 999_999))?;
        }
        Kind::Survey => {
            let (question, answers) = rng.pick(SURVEY_QUESTIONS);
            m.serialize_entry("survey_id", &rng.range(1, 20))?;
            m.serialize_entry("question", question)?;
            m.serialize_entry("answer", rng.pick(answers))?;
        }
        Kind::Download => {
            let v = video(rng);
            m.serialize_entry("video_id", &v.id)?;
            m.serialize_entry("quality", rng.pick(DOWNLOAD_QUALITIES))?;
            m.serialize_entry("size_mb", &secs((v.duration_s * 1000.0) as u64 / 6))?;
        }
        Kind::Message | Kind::EmailClick => {
            m.serialize_entry("campaign", rng.pick(CAMPAIGNS))?;
            s.clear();
            let _ = write!(s, "msg-{:016x}", rng.next_u64());
            m.serialize_entry("message_id", s.as_str())?;
            if kind == Kind::EmailClick {
                m.serialize_entry(
                    "link",
                    "https://www.streamly.example/watch?utm_medium=email",
                )?;
            } else if rng.pct(40) {
                m.serialize_entry("delay_s", &rng.range(1, 86_400))?;
            }
        }
        Kind::Profile => {
            let a = rng.below(PROFILE_FIELDS.len() as u64) as usize;
            let b = rng.range(a as u64 + 1, PROFILE_FIELDS.len() as u64) as usize;
            m.serialize_entry("fields_changed", &PROFILE_FIELDS[a..b])?;
        }
        Kind::Settings => {
            let (setting, old, new) = rng.pick(SETTINGS);
            m.serialize_entry("setting", setting)?;
            m.serialize_entry("old_value", old)?;
            m.serialize_entry("new_value", new)?;
        }
        Kind::AppOpen => {
            m.serialize_entry("cold_start", &rng.pct(40))?;
            m.serialize_entry("launch_ms", &rng.range(150, 6_000))?;
            m.serialize_entry("network", rng.pick(NETWORKS))?;
        }
        Kind::AppClose => {
            m.serialize_entry("foreground_s", &secs(rng.range(1_000, 10_800_000)))?;
        }
        Kind::AppCrash => {
            let (exception, stack) = rng.pick(CRASHES);
            m.serialize_entry("exception", exception)?;
            m.serialize_entry("stack", stack)?;
            m.serialize_entry("thread", rng.pick(&["main", "player", "network-2"]))?;
        }
        Kind::Error => {
            let (code, message) = rng.pick(ERRORS);
            m.serialize_entry("code", code)?;
            m.serialize_entry("message", message)?;
            m.serialize_entry("fatal", &rng.pct(5))?;
        }
        Kind::Heartbeat => {
            m.serialize_entry("uptime_s", &rng.range(30, 36_000))?;
            m.serialize_entry("network", rng.pick(NETWORKS))?;
            if rng.pct(40) {
                m.serialize_entry("battery_pct", &rng.range(3, 100))?;
            }
        }
        Kind::Experiment => {
            let (experiment, variants) = rng.pick(EXPERIMENTS);
            m.serialize_entry("experiment", experiment)?;
            m.serialize_entry("variant", rng.pick(variants))?;
        }
    }
    Ok(())
}

/// Writes the events described by `args` (uncompressed) to `out`.
fn generate<W: Write>(args: &Args, out: &mut W) -> io::Result<Stats> {
    let (max_lines, max_bytes) = match (args.lines, args.bytes) {
        (None, None) => (Some(DEFAULT_LINES), None),
        limits => limits,
    };
    const HOUR_MS: u128 = 3_600_000;
    let mut access = access_gen(args).map_err(io::Error::other)?;
    // JSON lines need the user pool; access logs do not.
    let mut gen = (args.format == Format::Json).then(|| Gen::new(args));
    let mut github =
        (args.format == Format::Github).then(|| GithubGen::new(args.types, args.seed, args.start));
    let mut line = Vec::with_capacity(4096);
    let mut stats = Stats::default();
    if let Some(a) = &access {
        a.header(&mut line);
        out.write_all(&line)?;
        stats.bytes += line.len() as u64;
    }
    loop {
        // Timestamps advance with the fraction of the output written so far,
        // so that they span the hour whatever the limit.
        let mut ts_ms = 0;
        if let Some(n) = max_lines {
            if stats.lines >= n {
                break;
            }
            ts_ms = u128::from(stats.lines) * HOUR_MS / u128::from(n);
        }
        if let Some(b) = max_bytes {
            if stats.bytes >= b {
                break;
            }
            ts_ms = ts_ms.max(u128::from(stats.bytes) * HOUR_MS / u128::from(b));
        }
        line.clear();
        match (&mut gen, &mut access, &mut github) {
            (Some(gen), _, _) => {
                if let Some(ty) = gen.next_line(&mut line, ts_ms as u64) {
                    stats.types_seen |= 1 << ty;
                }
            }
            (None, Some(a), _) => a.record(&mut line, ts_ms as u64),
            (None, None, Some(g)) => stats.types_seen |= 1 << g.record(&mut line, ts_ms as u64),
            (None, None, None) => unreachable!("one generator"),
        }
        line.push(b'\n');
        out.write_all(&line)?;
        stats.lines += 1;
        stats.bytes += line.len() as u64;
    }
    Ok(stats)
}

/// The access-log generator `args` ask for, if any; the error is a usage error.
fn access_gen(args: &Args) -> Result<Option<AccessGen>, String> {
    if matches!(args.format, Format::Json | Format::Github) {
        if args.format == Format::Github && args.dirty {
            return Err("--dirty is for --format json".into());
        }
        if args.fields.is_some() || args.payload {
            return Err(
                "--fields and --payload are for access logs (--format cloudfront|s3_access|alb)"
                    .into(),
            );
        }
        return Ok(None);
    }
    if args.dirty {
        return Err("--dirty is for --format json".into());
    }
    AccessGen::new(
        args.format,
        args.fields,
        args.payload,
        args.seed,
        args.start,
    )
    .map(Some)
}

/// Writes the output to `sink`, gzipped if asked, and flushes it.
fn write_output<W: Write>(args: &Args, sink: W) -> io::Result<Stats> {
    const BUF: usize = 1 << 20;
    if args.gzip {
        let mut w = BufWriter::with_capacity(BUF, GzEncoder::new(sink, Compression::new(6)));
        let stats = generate(args, &mut w)?;
        let encoder = w.into_inner().map_err(io::IntoInnerError::into_error)?;
        encoder.finish()?.flush()?;
        Ok(stats)
    } else {
        let mut w = BufWriter::with_capacity(BUF, sink);
        let stats = generate(args, &mut w)?;
        w.into_inner()
            .map_err(io::IntoInnerError::into_error)?
            .flush()?;
        Ok(stats)
    }
}

/// Runs the command: writes to `args.out`, or else to `stdout`.
fn run<W: Write>(args: &Args, stdout: W) -> Result<()> {
    // Usage errors before any output file is created.
    access_gen(args).map_err(anyhow::Error::msg)?;
    match &args.out {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            let stats = write_output(args, file)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let what = match args.format {
                Format::Json | Format::Github => {
                    format!("{} event types", stats.types_seen.count_ones())
                }
                f => format!("{f:?} access log records"),
            };
            eprintln!(
                "gen-events: wrote {} lines, {} bytes (uncompressed), {what} to {}{}",
                stats.lines,
                stats.bytes,
                path.display(),
                if args.gzip { " (gzip)" } else { "" }
            );
        }
        None => {
            write_output(args, stdout).context("cannot write to stdout")?;
        }
    }
    Ok(())
}

/// `gen-events ARGS...` in this process, as the binary runs it: what it
/// writes to standard output (nothing with `--out FILE`, which it writes
/// instead, printing its summary line on standard error), or its usage or
/// write error. For other crates' tests, which cannot run the binary.
pub fn output<I, T>(args: I) -> Result<Vec<u8>>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let argv =
        std::iter::once(OsString::from("gen-events")).chain(args.into_iter().map(Into::into));
    let args = Args::try_parse_from(argv)?;
    let mut out = Vec::new();
    run(&args, &mut out)?;
    Ok(out)
}

/// The `gen-events` command (`src/main.rs`): arguments from the command
/// line, output to standard output or `--out`; exits 1 on an error (usage
/// errors: clap's exit status 2), 0 when the reader of a pipe goes away.
pub fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args, io::stdout().lock()) {
        // `gen-events | head` is fine: stop quietly when the reader goes away.
        let broken_pipe = e
            .chain()
            .filter_map(|c| c.downcast_ref::<io::Error>())
            .any(|io| io.kind() == io::ErrorKind::BrokenPipe);
        if broken_pipe {
            std::process::exit(0);
        }
        eprintln!("gen-events: error: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::io::Read;

    pub(super) fn args(extra: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("gen-events").chain(extra.iter().copied())).unwrap()
    }

    pub(super) fn output(extra: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        write_output(&args(extra), &mut out).unwrap();
        out
    }

    fn lines(out: &[u8]) -> Vec<&str> {
        let text = std::str::from_utf8(out).expect("output is UTF-8");
        assert!(text.ends_with('\n'));
        text[..text.len() - 1].split('\n').collect()
    }

    #[test]
    fn same_seed_gives_same_bytes() {
        for extra in [
            &["--lines", "3000"][..],
            &["--lines", "3000", "--dirty", "--types", "64"],
        ] {
            let a = output(extra);
            assert_eq!(a, output(extra));
            let other_seed: Vec<&str> = extra.iter().copied().chain(["--seed", "7"]).collect();
            assert_ne!(a, output(&other_seed));
        }
        let gz = ["--lines", "2000", "--gzip"];
        assert_eq!(output(&gz), output(&gz));
    }

    #[test]
    fn default_run_is_valid_events_of_known_types() {
        let out = output(&[]);
        let lines = lines(&out);
        assert_eq!(lines.len() as u64, DEFAULT_LINES);
        let names: Vec<&str> = TYPES[..12].iter().map(|t| t.0).collect();
        let mut last_ts = String::new();
        for line in &lines {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let obj = v.as_object().expect("an object");
            let ty = obj["event_type"].as_str().expect("a string event_type");
            assert!(names.contains(&ty), "unknown type {ty}");
            let ts = obj["ts"].as_str().unwrap();
            assert!(ts.starts_with("2015-01-20T13:") && ts.ends_with('Z') && ts.len() == 24);
            assert!(*ts >= *last_ts, "timestamps go down: {ts} < {last_ts}");
            last_ts = ts.to_string();
            assert_eq!(obj["event_id"].as_str().unwrap().len(), 36);
            assert!(obj["user"]["id"].is_u64() && obj["device"]["os"].is_string());
            if ty.starts_with("video_") {
                assert!(obj["video"]["duration_s"].is_f64());
            }
        }
        let average = out.len() / lines.len();
        assert!(
            (300..=600).contains(&average),
            "average line length {average}"
        );
        // Some strings need escaping.
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.contains(r#"\""#) && text.contains(r"\n") && text.contains('é'));
    }

    #[test]
    fn all_names_are_valid_and_distinct() {
        let names: BTreeSet<&str> = TYPES.iter().map(|t| t.0).collect();
        assert_eq!(names.len(), 64);
        for name in names {
            let b = name.as_bytes();
            assert!(b.len() <= 63 && b[0].is_ascii_lowercase(), "{name}");
            assert!(b
                .iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_'));
        }
    }

    #[test]
    fn types_50_gives_exactly_50_types() {
        let out = output(&["--types", "50", "--lines", "30000"]);
        let types: BTreeSet<String> = lines(&out)
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["event_type"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(types.len(), 50);
        let mut sink = Vec::new();
        let stats = generate(&args(&["--types", "50", "--lines", "30000"]), &mut sink).unwrap();
        assert_eq!(stats.types_seen.count_ones(), 50);
    }

    #[test]
    fn bytes_limit_and_gzip() {
        let plain = output(&["--bytes", "64K"]);
        assert!(plain.len() >= 65536 && plain.len() < 65536 + 2000);
        let gz = output(&["--bytes", "64K", "--gzip"]);
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, plain);
        // Whichever limit comes first.
        assert_eq!(
            lines(&output(&["--bytes", "1M", "--lines", "10"])).len(),
            10
        );
    }

    #[test]
    fn dirty_lines_are_rare_and_varied() {
        let out = output(&["--dirty", "--lines", "50000"]);
        let (mut blank, mut bad) = (0, 0);
        let mut odd_names = BTreeSet::new();
        for line in lines(&out) {
            match serde_json::from_str::<serde_json::Value>(line) {
                _ if line.is_empty() => blank += 1,
                Ok(serde_json::Value::Object(o)) => match o.get("event_type") {
                    Some(serde_json::Value::String(s)) if TYPES.iter().any(|t| t.0 == s) => {}
                    Some(serde_json::Value::String(s)) => {
                        odd_names.insert(s.clone());
                        bad += 1;
                    }
                    _ => bad += 1,
                },
                _ => bad += 1,
            }
        }
        let total = blank + bad;
        assert!((50..=150).contains(&total), "{total} bad lines");
        assert!(blank > 0 && odd_names.len() > 3, "{odd_names:?}");
    }

    /// The library's way in, for other crates' tests: the command's bytes,
    /// and its usage errors as errors.
    #[test]
    fn output_runs_the_command_in_process() {
        let extra = ["--lines", "500", "--format", "github", "--seed", "3"];
        assert_eq!(crate::output(extra).unwrap(), output(&extra));
        assert!(crate::output(["--format", "alb", "--dirty"]).is_err());
        assert!(crate::output(["--no-such-flag"]).is_err());
    }

    #[test]
    fn sizes_and_start_hours_parse() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1.5gib"), Ok(3 << 29));
        assert!(parse_size("12X").is_err() && parse_size("").is_err());
        assert_eq!(parse_start("2015-01-20T13").unwrap().0, *b"2015-01-20T13:");
        assert!(parse_start("2015-02-29T13").is_err() && parse_start("2015-01-20T24").is_err());
        assert!(parse_start("2016-02-29T00Z").is_ok());
    }
}
