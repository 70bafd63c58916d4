//! A PostgreSQL warehouse URL, parsed once at start-up: the connection
//! settings for tokio-postgres plus the TLS settings it does not know.
//!
//! tokio-postgres understands `sslmode=disable|prefer|require` only and
//! verifies nothing itself; managed PostgreSQL (RDS, Aurora, Cloud SQL)
//! wants TLS, and a production loader wants the server's certificate
//! checked. So `sslmode` (libpq's five values) and `sslrootcert` are taken
//! out of the URL here, with libpq's meanings, and [`super::tls`] makes the
//! rustls connector that enforces them.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::tls;

/// libpq's `sslmode` values, with libpq's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, unverified; plain TCP otherwise
    /// (libpq's default, and ours).
    Prefer,
    /// TLS or no connection; the certificate is verified like `verify-ca`
    /// when `sslrootcert` is given (as libpq does), not otherwise.
    Require,
    /// TLS, and the server's certificate chains to a trusted CA.
    VerifyCa,
    /// `verify-ca`, and the certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    const NAMES: [(&'static str, SslMode); 5] = [
        ("disable", SslMode::Disable),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("verify-full", SslMode::VerifyFull),
    ];

    fn parse(value: &str) -> Result<Self, String> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == value)
            .map(|(_, m)| *m)
            .ok_or_else(|| {
                format!("sslmode={value:?} is not a mode: write disable, prefer, require, verify-ca or verify-full")
            })
    }

    pub fn name(self) -> &'static str {
        Self::NAMES.iter().find(|(_, m)| *m == self).unwrap().0
    }
}

/// Where the trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// The operating system's store (`sslrootcert=system`, and the default
    /// of the verifying modes).
    System,
    /// A PEM file of one or more CA certificates (`sslrootcert=PATH`; for
    /// RDS, the region's bundle).
    File(PathBuf),
}

/// A parsed `postgres://…` (or `host=… dbname=…`) warehouse.
#[derive(Clone)]
pub struct PgTarget {
    pub config: tokio_postgres::Config,
    pub mode: SslMode,
    pub roots: RootCerts,
    /// The connector, built at parse time so that an unreadable CA file
    /// fails at start-up, not at the first load.
    pub tls: tls::MakeRustls,
    /// The URL as given, password hidden: what messages show.
    pub shown: String,
}

impl PartialEq for PgTarget {
    fn eq(&self, other: &Self) -> bool {
        (&self.config, self.mode, &self.roots) == (&other.config, other.mode, &other.roots)
    }
}

impl Eq for PgTarget {}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTarget")
            .field("url", &self.shown)
            .field("sslmode", &self.mode)
            .field("roots", &self.roots)
            .finish()
    }
}

/// How long connecting may take unless the URL sets `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long sent data may go unacknowledged before the connection is
/// dropped (`TCP_USER_TIMEOUT`), unless the URL sets `tcp_user_timeout`.
pub const DEFAULT_TCP_USER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

impl PgTarget {
    /// Parses a URL (`postgres://user:pw@host:port/db?sslmode=…`) or a
    /// key=value string (`host=… sslmode=…`). Every problem names the fix.
    pub fn parse(text: &str) -> Result<Self, String> {
        let shown = redact(text);
        let (rest, mode, root) = take_tls_params(text)?;
        let mut config = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| format!("{shown}: {}", parse_error(&e)))?;
        // libpq waits for ever by default, for a host that never answers the
        // connect and for data the network stopped acknowledging (a TCP
        // retransmission runs for about 15 minutes): bound both unless the
        // URL says otherwise (`connect_timeout=0` still means no bound).
        if !rest.contains("connect_timeout=") {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        if !rest.contains("tcp_user_timeout=") {
            config.tcp_user_timeout(DEFAULT_TCP_USER_TIMEOUT);
        }
        let mode = mode.unwrap_or(SslMode::Prefer);
        let roots = match root.as_deref() {
            None | Some("system") => RootCerts::System,
            Some(path) => RootCerts::File(PathBuf::from(path)),
        };
        // libpq: `require` with a root certificate verifies the chain.
        let mode = match (mode, &roots) {
            (SslMode::Require, RootCerts::File(_)) => SslMode::VerifyCa,
            _ => mode,
        };
        config.ssl_mode(match mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        let tls = tls::MakeRustls::new(mode, &roots).map_err(|e| format!("{shown}: {e}"))?;
        Ok(PgTarget {
            config,
            mode,
            roots,
            tls,
            shown,
        })
    }

    /// What to try when a connection failed in the TLS handshake.
    pub fn tls_hint(&self) -> String {
        match (self.mode, &self.roots) {
            (SslMode::VerifyCa | SslMode::VerifyFull, RootCerts::File(p)) => format!(
                "sslmode={}: the server's certificate must be signed by a CA in sslrootcert={} \
                 (for RDS, the region's certificate bundle){}; or write sslmode=require to \
                 encrypt without verifying",
                self.mode.name(),
                p.display(),
                if self.mode == SslMode::VerifyFull {
                    " and name the host in the URL"
                } else {
                    ""
                }
            ),
            (SslMode::VerifyCa | SslMode::VerifyFull, RootCerts::System) => format!(
                "sslmode={}: the server's certificate must be signed by a CA the system trusts; \
                 for a private CA (RDS, a self-signed server) add sslrootcert=PATH to its PEM file",
                self.mode.name()
            ),
            _ => "the server must accept TLS (ssl = on in postgresql.conf); or write \
                  sslmode=disable for a server that has none"
                .to_owned(),
        }
    }
}

/// tokio-postgres's reason for refusing a connection string, without
/// echoing the string: its "unknown option" quotes the key, which for a
/// string that is not key=value at all (`\npostgres://u:pw@h`) is the whole
/// URL, password included.
fn parse_error(e: &tokio_postgres::Error) -> String {
    let why = super::describe(e);
    match why.split_once("unknown option `") {
        Some((_, key)) if !is_key(key.trim_end_matches('`')) => {
            "invalid connection string: neither a postgres:// URL nor key=value pairs".to_owned()
        }
        _ => why,
    }
}

/// Whether `k` looks like a connection parameter's name.
fn is_key(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// Takes `sslmode` and `sslrootcert` out of a connection string, returning
/// what is left for tokio-postgres.
fn take_tls_params(text: &str) -> Result<(String, Option<SslMode>, Option<String>), String> {
    let mut mode = None;
    let mut root = None;
    let mut take = |key: &str, value: String| -> Result<bool, String> {
        match key {
            "sslmode" => mode = Some(SslMode::parse(&value)?),
            "sslrootcert" if value.is_empty() => {
                return Err("sslrootcert is empty: write sslrootcert=PATH to a PEM file of CA certificates, or sslrootcert=system".into())
            }
            "sslrootcert" => root = Some(value),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if let Some((_, _, _, query)) = url_parts(text) {
        match query {
            None => text.to_owned(),
            Some(query) => {
                let base = &text[..text.len() - query.len() - 1];
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let v = logrouter::percent::decode(v, false)
                        .ok_or_else(|| format!("{k}: not UTF-8 once percent-decoded"))?;
                    if !take(k, v.into_owned())? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        // A string that does not parse is left whole for tokio-postgres,
        // whose error then says what is wrong. Taken parameters are cut out
        // and the rest kept byte for byte, so that what tokio-postgres reads
        // is what was written (joined anew, `\npostgres://…` would turn into
        // a URL).
        let Ok(params) = kv_params(text) else {
            return Ok((text.to_owned(), mode, root));
        };
        let mut rest = String::with_capacity(text.len());
        let mut from = 0;
        for p in params {
            if take(p.key, p.value)? {
                rest.push_str(&text[from..p.span.start]);
                from = p.span.end;
            }
        }
        rest.push_str(&text[from..]);
        rest
    };
    Ok((rest, mode, root))
}

/// One `key = value` of a key=value connection string.
struct KvParam<'t> {
    key: &'t str,
    value: String,
    /// Where the whole parameter is in the string.
    span: std::ops::Range<usize>,
}

/// The parameters of a key=value string, read as tokio-postgres (and
/// libpq) read them: spaces around `=`, values quoted with `'` or bare,
/// `\` escaping the next character. `Err` where tokio-postgres would fail.
fn kv_params(text: &str) -> Result<Vec<KvParam<'_>>, ()> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let skip_ws = |i: &mut usize| {
        while let Some(c) = text[*i..].chars().next().filter(|c| c.is_whitespace()) {
            *i += c.len_utf8();
        }
    };
    loop {
        skip_ws(&mut i);
        let start = i;
        while let Some(c) = text[i..]
            .chars()
            .next()
            .filter(|&c| !c.is_whitespace() && c != '=')
        {
            i += c.len_utf8();
        }
        if i == start {
            return if i == b.len() { Ok(out) } else { Err(()) };
        }
        let key = &text[start..i];
        skip_ws(&mut i);
        if b.get(i) != Some(&b'=') {
            return Err(());
        }
        i += 1;
        skip_ws(&mut i);
        let mut value = String::new();
        let quoted = b.get(i) == Some(&b'\'');
        if quoted {
            i += 1;
        }
        let mut chars = text[i..].char_indices().peekable();
        let mut end = text.len() - i;
        let mut closed = false;
        while let Some((at, c)) = chars.next() {
            if (quoted && c == '\'') || (!quoted && c.is_whitespace()) {
                end = at;
                closed = true;
                break;
            }
            if c == '\\' {
                if let Some((_, c2)) = chars.next() {
                    value.push(c2);
                }
            } else {
                value.push(c);
            }
        }
        if quoted && !closed || !quoted && value.is_empty() {
            return Err(());
        }
        i += end + usize::from(quoted);
        out.push(KvParam {
            key,
            value,
            span: start..i,
        });
    }
}

/// A URL split where tokio-postgres splits it: the credentials run to the
/// first `@` after the scheme (wherever it is), the query starts at the
/// first `?` after them. `(scheme end, credentials, rest before the query,
/// query)`, the credentials `None` without an `@`.
fn url_parts(url: &str) -> Option<(usize, Option<&str>, &str, Option<&str>)> {
    // A URL exactly when tokio-postgres takes it for one: by its scheme (a
    // key=value string may hold `://` in a value).
    let scheme_end = ["postgres://", "postgresql://"]
        .iter()
        .find(|s| url.starts_with(*s))?
        .len();
    let after = &url[scheme_end..];
    let (creds, rest) = match after.find('@') {
        Some(at) => (Some(&after[..at]), &after[at..]),
        None => (None, after),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    Some((scheme_end, creds, rest, query))
}

/// Hides the password of a connection string: in the URL's user info, in a
/// `password=` query parameter, or in a `password=` key; split where
/// tokio-postgres splits it, so the part hidden is the part it reads as
/// the password.
pub fn redact(conninfo: &str) -> String {
    let hide_params = |s: &str| -> String {
        s.split('&')
            .map(|kv| match kv.split_once('=') {
                Some(("password", _)) => "password=***",
                _ => kv,
            })
            .collect::<Vec<_>>()
            .join("&")
    };
    let Some((scheme_end, creds, rest, query)) = url_parts(conninfo) else {
        return match kv_params(conninfo) {
            Ok(params) => params
                .iter()
                .map(|p| match p.key {
                    "password" => "password=***",
                    // Not a key at all (a URL pasted into a key=value
                    // string, say): shown as nothing of it.
                    k if !is_key(k) => "***",
                    _ => &conninfo[p.span.clone()],
                })
                .collect::<Vec<_>>()
                .join(" "),
            Err(()) => "(a key=value connection string that does not parse)".to_owned(),
        };
    };
    let mut out = conninfo[..scheme_end].to_owned();
    if let Some(creds) = creds {
        match creds.split_once(':') {
            Some((user, _)) => {
                out.push_str(user);
                out.push_str(":***");
            }
            None => out.push_str(creds),
        }
    }
    out.push_str(rest);
    if let Some(q) = query {
        out.push('?');
        out.push_str(&hide_params(q));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        for (given, shown) in [
            (
                "postgres://u:secret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            (
                "postgres://u@h/db?password=secret&sslmode=require",
                "postgres://u@h/db?password=***&sslmode=require",
            ),
            ("host=h password=secret", "host=h password=***"),
            ("postgres://h/db", "postgres://h/db"),
            // Found by fuzzing: tokio-postgres reads the credentials up to
            // the first `@`, even one past a `?`.
            (
                "postgresql://postgres::p dt:5432/db?x@host",
                "postgresql://postgres:***@host",
            ),
            ("postgres://u:pa?ss@h/db", "postgres://u:***@h/db"),
            (
                "host=h password = 'a b' user=u",
                "host=h password=*** user=u",
            ),
            ("host=h password=a\\ b", "host=h password=***"),
            // Found by fuzzing: a value may hold `://`.
            ("host=h password=x://y", "host=h password=***"),
            (
                "host=h password='unterminated",
                "(a key=value connection string that does not parse)",
            ),
        ] {
            assert_eq!(redact(given), shown);
        }
    }

    /// One check: what a connection string's TLS settings parse to, or the
    /// start of its error.
    fn check(text: &str, expected: Result<(SslMode, RootCerts, &str), &str>) {
        match (take_tls_params(text), expected) {
            (Ok(_), Ok((mode, roots, rest))) => {
                let t = PgTarget::parse(text).unwrap();
                assert_eq!((t.mode, &t.roots), (mode, &roots), "{text}");
                assert_eq!(take_tls_params(text).unwrap().0, rest, "{text}");
            }
            (Err(e), Err(start)) => assert!(e.starts_with(start), "{text}: {e}"),
            (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
        }
    }

    /// A warehouse that stops answering never hangs the loader for good:
    /// connecting and unacknowledged data are bounded unless the URL says
    /// otherwise, in either form.
    #[test]
    fn connect_and_tcp_user_timeouts_have_defaults_the_url_can_change() {
        use std::time::Duration;
        let timeouts = |text: &str| {
            let t = PgTarget::parse(text).unwrap();
            (
                t.config.get_connect_timeout().copied(),
                t.config.get_tcp_user_timeout().copied(),
            )
        };
        let defaults = (
            Some(DEFAULT_CONNECT_TIMEOUT),
            Some(DEFAULT_TCP_USER_TIMEOUT),
        );
        assert_eq!(timeouts("postgres://u@h/db"), defaults);
        assert_eq!(timeouts("host=h user=u"), defaults);
        assert_eq!(
            timeouts("postgres://u@h/db?connect_timeout=5&tcp_user_timeout=60"),
            (Some(Duration::from_secs(5)), Some(Duration::from_secs(60)))
        );
        assert_eq!(
            timeouts("host=h connect_timeout=0 tcp_user_timeout=0"),
            (None, None),
            "0 means no bound, as in libpq"
        );
    }

    #[test]
    fn sslmode_and_sslrootcert() {
        use SslMode::*;
        let pem = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/tls/any-ca.pem");
        check(
            "postgres://u@h/db",
            Ok((Prefer, RootCerts::System, "postgres://u@h/db")),
        );
        check(
            "postgres://u@h/db?sslmode=disable",
            Ok((Disable, RootCerts::System, "postgres://u@h/db")),
        );
        check(
            "postgres://u@h/db?connect_timeout=5&sslmode=verify-full",
            Ok((
                VerifyFull,
                RootCerts::System,
                "postgres://u@h/db?connect_timeout=5",
            )),
        );
        check(
            &format!("postgres://u@h/db?sslmode=require&sslrootcert={pem}"),
            Ok((VerifyCa, RootCerts::File(pem.into()), "postgres://u@h/db")),
        );
        check(
            &format!("host=h user=u sslmode=verify-ca sslrootcert={pem}"),
            Ok((VerifyCa, RootCerts::File(pem.into()), "host=h user=u  ")),
        );
        check(
            "host=h sslmode=verify-full sslrootcert=system",
            Ok((VerifyFull, RootCerts::System, "host=h  ")),
        );
        check(
            "postgres://h/db?sslmode=allow",
            Err("sslmode=\"allow\" is not a mode"),
        );
        // Found by fuzzing: what is not taken is kept byte for byte, so a
        // key=value string never turns into a URL (or the reverse).
        for text in ["\npostgres://u:pw@h/db", " host=h", "host=h\tport=1"] {
            assert_eq!(take_tls_params(text).unwrap().0, text);
        }
        check("host=h sslrootcert=''", Err("sslrootcert is empty"));
        check("postgres://h/db?sslrootcert=", Err("sslrootcert is empty"));
    }

    #[test]
    fn a_bad_ca_file_fails_at_parse_naming_it() {
        let e = PgTarget::parse("postgres://h/db?sslmode=verify-full&sslrootcert=/no/such.pem")
            .unwrap_err();
        assert!(
            e.contains("/no/such.pem") && e.contains("cannot read"),
            "{e}"
        );
        let not_pem = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let e = PgTarget::parse(&format!(
            "postgres://h/db?sslmode=verify-full&sslrootcert={not_pem}"
        ))
        .unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = PgTarget::parse("postgres://u:hunter2@h/db?sslcert=x").unwrap_err();
        assert!(!e.contains("hunter2") && e.contains("sslcert"), "{e}");
        let e = PgTarget::parse("\npostgres://u:hunter2@h/db").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let e = PgTarget::parse("host=h postgres://u:hunter2@h=1").unwrap_err();
        assert!(!e.contains("hunter2") && e.contains("neither"), "{e}");
    }
}
