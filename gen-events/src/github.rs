//! `--format github`: JSON lines shaped like the GitHub archive's events,
//! built to differ from the analytics events of `main.rs` wherever an
//! encoder might notice (issue #26):
//! - deeper nesting: `payload.pull_request.head.repo.owner`, arrays of
//!   commits, labels and steps;
//! - long, varied string values: commit messages, issue bodies and release
//!   notes of up to a few KB, drawn from a large vocabulary, with Markdown,
//!   URLs and 40-digit hex SHAs (which do not compress);
//! - non-ASCII text: about one word in eight is Cyrillic, Greek, Japanese,
//!   accented Latin or an emoji, and names are often not ASCII;
//! - 50 event types (the type in the top-level key `type`, as the archive
//!   has it: route with `--type-field /type`), whose shapes differ.
//!
//! `../shared/fixtures/logs/gharchive-*.jsonl` shows the shape it imitates.
//! Deterministic like the rest of `gen-events`: one seeded PRNG, no floats.

use serde_json::{json, Map, Value};

use super::{hex_into, mix64, Rng, Start, Zipf};

/// The event types, most frequent first: the archive's own, then webhook
/// event names to make fifty.
pub const TYPES: [&str; 50] = [
    "PushEvent",
    "CreateEvent",
    "WatchEvent",
    "PullRequestEvent",
    "IssueCommentEvent",
    "IssuesEvent",
    "DeleteEvent",
    "ForkEvent",
    "PullRequestReviewEvent",
    "PullRequestReviewCommentEvent",
    "ReleaseEvent",
    "CommitCommentEvent",
    "GollumEvent",
    "MemberEvent",
    "PublicEvent",
    "DiscussionEvent",
    "DiscussionCommentEvent",
    "SponsorshipEvent",
    "WorkflowRunEvent",
    "WorkflowJobEvent",
    "CheckRunEvent",
    "CheckSuiteEvent",
    "StatusEvent",
    "DeploymentEvent",
    "DeploymentStatusEvent",
    "PackageEvent",
    "RegistryPackageEvent",
    "LabelEvent",
    "MilestoneEvent",
    "ProjectEvent",
    "ProjectCardEvent",
    "ProjectColumnEvent",
    "RepositoryEvent",
    "StarEvent",
    "PageBuildEvent",
    "TeamAddEvent",
    "OrganizationEvent",
    "OrgBlockEvent",
    "InstallationEvent",
    "InstallationRepositoriesEvent",
    "MarketplacePurchaseEvent",
    "SecurityAdvisoryEvent",
    "CodeScanningAlertEvent",
    "DependabotAlertEvent",
    "SecretScanningAlertEvent",
    "BranchProtectionRuleEvent",
    "MergeGroupEvent",
    "RepositoryDispatchEvent",
    "WorkflowDispatchEvent",
    "DeployKeyEvent",
];

/// Syllables of the made-up words, per script; a word is 1 to 4 of them.
const LATIN: &[&str] = &[
    "ka", "ro", "ti", "len", "mar", "os", "ex", "ver", "pla", "con", "di", "stru", "ment", "ab",
    "sen", "qu", "ion", "ra", "te", "ul", "pro", "ce", "ss", "fi", "x", "ed", "ing", "un", "in",
    "de", "bug", "cach", "pars", "tok", "en", "er", "ly", "sync", "a", "o", "e", "i",
];
const ACCENTED: &[&str] = &[
    "é", "è", "ç", "ñ", "ü", "ö", "ä", "ø", "å", "ß", "ã", "ő", "ł", "ž", "š", "ą", "ę", "ì",
];
const CYRILLIC: &[&str] = &[
    "при", "вет", "ра", "бо", "та", "ис", "прав", "ле", "ние", "ош", "иб", "ка", "до", "бав",
    "ить", "фай", "л", "тест", "ы",
];
const GREEK: &[&str] = &[
    "αλ", "φα", "βη", "τα", "δι", "όρ", "θω", "ση", "λά", "θος", "νέ", "ο",
];
const JAPANESE: &[&str] = &[
    "修正",
    "追加",
    "削除",
    "テスト",
    "バグ",
    "の",
    "を",
    "に",
    "ファイル",
    "設定",
    "更新",
    "して",
    "ました",
    "変更",
    "対応",
    "実装",
    "環境",
    "ドキュメント",
];
const EMOJI: &[&str] = &[
    "🎉", "🐛", "✨", "🔥", "🚀", "♻️", "📝", "✅", "⚡", "🙏", "👍",
];
const PUNCT: &[&str] = &[".", ",", ":", "!", "?", ";", " -", " (", ")"];
const MARKDOWN: &[&str] = &[
    "\n\n", "\n- ", "\n- [ ] ", "\n- [x] ", "\n```\n", "\n> ", "\n## ", "**", "`", "\r\n",
];
const DOMAINS: &[&str] = &[
    "users.noreply.github.com",
    "gmail.com",
    "example.org",
    "mail.ru",
    "qq.com",
    "outlook.com",
];
const REF_TYPES: &[&str] = &["branch", "branch", "branch", "tag", "repository"];
const ACTIONS: &[&str] = &[
    "opened",
    "closed",
    "reopened",
    "created",
    "edited",
    "deleted",
    "started",
    "completed",
    "requested",
    "labeled",
    "synchronize",
    "published",
];
const STATES: &[&str] = &["open", "closed", "merged", "success", "failure", "pending"];
const LANGS: &[&str] = &[
    "Rust",
    "Go",
    "Python",
    "JavaScript",
    "TypeScript",
    "C++",
    "Java",
    "Ruby",
    "Haskell",
    "Shell",
];
const LABELS: &[(&str, &str)] = &[
    ("bug", "d73a4a"),
    ("enhancement", "a2eeef"),
    ("good first issue", "7057ff"),
    ("help wanted", "008672"),
    ("documentation", "0075ca"),
    ("wontfix", "ffffff"),
    ("priority: high", "b60205"),
    ("área: núcleo", "fbca04"),
];

const ACTORS: usize = 20_000;
const REPOS: usize = 8_000;

/// Generates GitHub-archive-like events.
pub struct GithubGen {
    rng: Rng,
    /// Cumulative Zipf-like weights of the first `types` types.
    cumulative: Zipf,
    start: Start,
    next_id: u64,
}

impl GithubGen {
    pub fn new(types: u8, seed: u64, start: Start) -> Self {
        let cumulative = Zipf::new(usize::from(types).min(TYPES.len()));
        Self {
            rng: Rng(mix64(seed ^ 0x6174_6875_6221)),
            cumulative,
            start,
            next_id: 2_489_651_045 + (seed % 1_000) * 1_000_000_000,
        }
    }

    /// Appends one event (without its `\n`) at `ts_ms` milliseconds into the
    /// hour; returns its type's index.
    pub fn record(&mut self, out: &mut Vec<u8>, ts_ms: u64) -> usize {
        let ty = self.cumulative.pick(&mut self.rng);
        self.next_id += 1 + self.rng.below(40);
        let actor = self.actor();
        let repo = self.repo();
        let payload = self.payload(ty);
        let s = &self.start.0;
        let (min, sec) = (ts_ms / 60_000 % 60, ts_ms / 1000 % 60);
        let created_at = format!("{}{min:02}:{sec:02}Z", std::str::from_utf8(s).unwrap_or(""));
        // The archive's key order: id and type first.
        out.extend_from_slice(b"{\"id\":\"");
        out.extend_from_slice(self.next_id.to_string().as_bytes());
        out.extend_from_slice(b"\",\"type\":\"");
        out.extend_from_slice(TYPES[ty].as_bytes());
        out.extend_from_slice(b"\",\"actor\":");
        write_value(out, &actor);
        out.extend_from_slice(b",\"repo\":");
        write_value(out, &repo);
        out.extend_from_slice(b",\"payload\":");
        write_value(out, &payload);
        out.extend_from_slice(b",\"public\":true,\"created_at\":\"");
        out.extend_from_slice(created_at.as_bytes());
        out.push(b'"');
        if self.rng.pct(30) {
            out.extend_from_slice(b",\"org\":");
            let org = self.actor();
            write_value(out, &org);
        }
        out.push(b'}');
        ty
    }

    fn login(&mut self, id: u64) -> String {
        // Stable per id: the same user keeps their login.
        let mut r = Rng(mix64(id));
        let mut s = word(&mut r, 0);
        if r.pct(40) {
            s.push(['-', '_', '0', '9'][r.below(4) as usize]);
            s.push_str(&word(&mut r, 0));
        }
        s
    }

    fn actor(&mut self) -> Value {
        let id = 1_000 + mix64(self.rng.below(ACTORS as u64)) % 90_000_000;
        let login = self.login(id);
        json!({
            "id": id,
            "login": login,
            "display_login": login,
            "gravatar_id": "",
            "url": format!("https://api.github.com/users/{login}"),
            "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?"),
        })
    }

    fn repo(&mut self) -> Value {
        let id = 10_000 + mix64(self.rng.below(REPOS as u64) ^ 77) % 90_000_000;
        let owner = self.login(mix64(id) % 90_000_000);
        let mut r = Rng(mix64(id ^ 5));
        let name = format!("{}{}", word(&mut r, 0), if r.pct(50) { ".rs" } else { "" });
        json!({
            "id": id,
            "name": format!("{owner}/{name}"),
            "url": format!("https://api.github.com/repos/{owner}/{name}"),
        })
    }

    fn sha(&mut self) -> String {
        let mut b = [0u8; 40];
        hex_into(&mut b[..16], self.rng.next_u64());
        hex_into(&mut b[16..32], self.rng.next_u64());
        hex_into(&mut b[32..], self.rng.next_u64());
        String::from_utf8(b.to_vec()).unwrap_or_default()
    }

    fn text(&mut self, min: u64, max: u64) -> String {
        text(&mut self.rng, min, max)
    }

    fn time(&mut self) -> String {
        let s = std::str::from_utf8(&self.start.0).unwrap_or("");
        format!("{s}{:02}:{:02}Z", self.rng.below(60), self.rng.below(60))
    }

    fn user(&mut self) -> Value {
        let mut a = self.actor();
        if let Value::Object(m) = &mut a {
            m.insert("type".into(), json!("User"));
            m.insert("site_admin".into(), json!(self.rng.pct(1)));
            let login = m.get("login").cloned().unwrap_or(Value::Null);
            m.insert(
                "html_url".into(),
                json!(format!(
                    "https://github.com/{}",
                    login.as_str().unwrap_or("")
                )),
            );
        }
        a
    }

    fn labels(&mut self) -> Value {
        let n = self.rng.below(4);
        Value::Array(
            (0..n)
                .map(|_| {
                    let (name, color) = self.rng.pick(LABELS);
                    json!({"id": self.rng.range(1, 9_999_999), "name": name, "color": color, "default": self.rng.pct(30)})
                })
                .collect(),
        )
    }

    fn issue(&mut self) -> Value {
        let number = self.rng.range(1, 40_000);
        let repo = self.repo();
        let repo_url = repo["url"].as_str().unwrap_or("").to_owned();
        json!({
            "url": format!("{repo_url}/issues/{number}"),
            "id": self.rng.range(10_000_000, 900_000_000),
            "number": number,
            "title": self.text(3, 14),
            "user": self.user(),
            "labels": self.labels(),
            "state": self.rng.pick(STATES),
            "locked": false,
            "comments": self.rng.below(80),
            "created_at": self.time(),
            "updated_at": self.time(),
            "author_association": self.rng.pick(&["OWNER", "MEMBER", "CONTRIBUTOR", "NONE"]),
            "body": if self.rng.pct(15) { Value::Null } else { json!(self.text(10, 400)) },
        })
    }

    fn branch(&mut self) -> Value {
        let mut r = Rng(self.rng.next_u64());
        let label = format!("{}:{}", word(&mut r, 0), word(&mut r, 0));
        json!({
            "label": label,
            "ref": word(&mut r, 0),
            "sha": self.sha(),
            "user": self.user(),
            "repo": {
                "id": self.rng.range(10_000, 90_000_000),
                "name": word(&mut r, 0),
                "full_name": label.replace(':', "/"),
                "owner": self.user(),
                "private": false,
                "description": self.text(0, 20),
                "fork": self.rng.pct(20),
                "language": self.rng.pick(LANGS),
                "stargazers_count": self.rng.below(50_000),
                "topics": (0..self.rng.below(5)).map(|_| word(&mut r, 0)).collect::<Vec<_>>(),
            },
        })
    }

    fn commit(&mut self) -> Value {
        let sha = self.sha();
        let mut r = Rng(self.rng.next_u64());
        json!({
            "sha": sha,
            "author": {
                "email": format!("{}@{}", &self.sha()[..24], self.rng.pick(DOMAINS)),
                "name": name(&mut r),
            },
            "message": self.text(3, 120),
            "distinct": self.rng.pct(90),
            "url": format!("https://api.github.com/repos/{}/{}/commits/{sha}", word(&mut r, 0), word(&mut r, 0)),
        })
    }

    /// The payload of type `ty`: its shape depends on the type.
    fn payload(&mut self, ty: usize) -> Value {
        let action = self.rng.pick(ACTIONS);
        match ty % 10 {
            // PushEvent and every tenth type after it.
            0 => {
                let most = if self.rng.pct(10) { 20 } else { 3 };
                let n = 1 + self.rng.below(most);
                json!({
                    "push_id": self.rng.range(536_000_000, 999_999_999),
                    "size": n,
                    "distinct_size": n,
                    "ref": format!("refs/heads/{}", word(&mut self.rng, 0)),
                    "head": self.sha(),
                    "before": self.sha(),
                    "commits": (0..n).map(|_| self.commit()).collect::<Vec<_>>(),
                })
            }
            1 => json!({
                "ref": word(&mut self.rng, 0),
                "ref_type": self.rng.pick(REF_TYPES),
                "master_branch": "main",
                "description": self.text(0, 30),
                "pusher_type": "user",
            }),
            2 => json!({"action": "started"}),
            3 | 8 => {
                let base = self.branch();
                let head = self.branch();
                json!({
                    "action": action,
                    "number": self.rng.range(1, 30_000),
                    "pull_request": {
                        "id": self.rng.range(10_000_000, 900_000_000),
                        "title": self.text(3, 15),
                        "user": self.user(),
                        "body": self.text(0, 600),
                        "labels": self.labels(),
                        "head": head,
                        "base": base,
                        "merged": self.rng.pct(40),
                        "commits": self.rng.range(1, 40),
                        "additions": self.rng.below(5_000),
                        "deletions": self.rng.below(3_000),
                        "changed_files": self.rng.range(1, 90),
                        "requested_reviewers": (0..self.rng.below(3)).map(|_| self.user()).collect::<Vec<_>>(),
                    },
                })
            }
            4 | 9 => json!({
                "action": action,
                "issue": self.issue(),
                "comment": {
                    "id": self.rng.range(60_000_000, 900_000_000),
                    "user": self.user(),
                    "created_at": self.time(),
                    "body": self.text(2, 500),
                    "reactions": {
                        "total_count": self.rng.below(20),
                        "+1": self.rng.below(10),
                        "heart": self.rng.below(5),
                        "rocket": self.rng.below(3),
                    },
                },
            }),
            5 => json!({"action": action, "issue": self.issue()}),
            6 => json!({
                "ref": word(&mut self.rng, 0),
                "ref_type": self.rng.pick(REF_TYPES),
                "pusher_type": "user",
            }),
            7 => {
                let mut m = Map::new();
                m.insert("action".into(), json!(action));
                m.insert("forkee".into(), self.branch()["repo"].clone());
                let n = self.rng.below(4);
                m.insert(
                    "steps".into(),
                    Value::Array(
                        (0..n)
                            .map(|i| {
                                json!({
                                    "name": self.text(1, 5),
                                    "status": self.rng.pick(STATES),
                                    "number": i + 1,
                                    "started_at": self.time(),
                                    "log_excerpt": self.text(0, 40),
                                })
                            })
                            .collect(),
                    ),
                );
                Value::Object(m)
            }
            _ => json!({
                "action": action,
                "release": {
                    "tag_name": format!("v{}.{}.{}", self.rng.below(5), self.rng.below(30), self.rng.below(20)),
                    "name": self.text(1, 6),
                    "draft": false,
                    "author": self.user(),
                    "body": self.text(20, 800),
                    "assets": (0..self.rng.below(4)).map(|_| json!({
                        "name": format!("{}-{}.tar.gz", word(&mut self.rng, 0), self.rng.pick(&["x86_64-linux", "aarch64-darwin", "windows"])),
                        "size": self.rng.range(10_000, 90_000_000),
                        "download_count": self.rng.below(100_000),
                    })).collect::<Vec<_>>(),
                },
            }),
        }
    }
}

fn write_value(out: &mut Vec<u8>, v: &Value) {
    serde_json::to_writer(&mut *out, v).expect("serialising into a Vec cannot fail");
}

/// One made-up word of `script` (0: Latin, else drawn). Words follow a
/// Zipf-like law, as in real text: the PRNG picks a rank, and the rank
/// seeds the word, so frequent words recur.
fn word(rng: &mut Rng, script: u64) -> String {
    // Rank: small ranks much more often (1/r-like, by squaring a uniform).
    let u = rng.below(1 << 16);
    let rank = (u * u) >> 18; // 0..16384, skewed to 0
    let mut r = Rng(mix64(rank ^ (script << 32)));
    let syllables: &[&str] = match script {
        1 => CYRILLIC,
        2 => GREEK,
        3 => JAPANESE,
        _ => LATIN,
    };
    let n = 1 + r.below(4);
    let mut w = String::new();
    for _ in 0..n {
        w.push_str(r.pick(syllables));
        if script == 0 && r.pct(8) {
            w.push_str(r.pick(ACCENTED));
        }
    }
    w
}

/// A person's name: often not ASCII.
fn name(rng: &mut Rng) -> String {
    let script = match rng.below(10) {
        0 => 1,
        1 => 3,
        2 => 2,
        _ => 0,
    };
    let mut first = word(rng, script);
    let last = word(rng, script);
    if script == 0 {
        first = capitalise(&first);
    }
    format!(
        "{first} {}",
        if script == 0 { capitalise(&last) } else { last }
    )
}

fn capitalise(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Prose of `min..=max` words, with Markdown, the odd URL, SHA or emoji,
/// and about one word in eight from another script.
fn text(rng: &mut Rng, min: u64, max: u64) -> String {
    let n = rng.range(min, max);
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            match rng.below(40) {
                0 => s.push_str(rng.pick(MARKDOWN)),
                1..=3 => {
                    s.push_str(rng.pick(PUNCT));
                    s.push(' ');
                }
                _ => s.push(' '),
            }
        }
        match rng.below(100) {
            0..=2 => s.push_str(rng.pick(EMOJI)),
            3..=4 => {
                let mut b = [0u8; 16];
                hex_into(&mut b, rng.next_u64());
                s.push_str(std::str::from_utf8(&b[..7 + rng.below(9) as usize]).unwrap_or(""));
            }
            5 => {
                let w = word(rng, 0);
                s.push_str(&format!(
                    "https://github.com/{w}/{}/issues/{}",
                    word(rng, 0),
                    rng.below(9999)
                ));
            }
            6..=8 => s.push_str(&word(rng, 1)),
            9 => s.push_str(&word(rng, 2)),
            10..=12 => s.push_str(&word(rng, 3)),
            13..=14 => s.push_str(&format!("\"{}\"", word(rng, 0))),
            _ => s.push_str(&word(rng, 0)),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::tests::output;
    use super::*;

    #[test]
    fn events_are_nested_varied_and_deterministic() {
        let out = output(&["--format", "github", "--lines", "3000", "--types", "50"]);
        assert_eq!(
            out,
            output(&["--format", "github", "--lines", "3000", "--types", "50"])
        );
        let text = std::str::from_utf8(&out).expect("UTF-8");
        let mut types = std::collections::BTreeSet::new();
        let (mut non_ascii, mut deep) = (0, 0);
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).expect("every line is JSON");
            let ty = v["type"].as_str().expect("a string type");
            assert!(TYPES.contains(&ty), "{ty}");
            types.insert(ty.to_owned());
            non_ascii += usize::from(!line.is_ascii());
            deep += usize::from(!v["payload"]["pull_request"]["head"]["repo"]["owner"].is_null());
        }
        assert!(types.len() >= 45, "{} types", types.len());
        assert!(non_ascii > 1500, "{non_ascii} lines with non-ASCII text");
        assert!(deep > 100, "{deep} lines nested five deep");
    }
}
