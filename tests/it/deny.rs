//! Issue 18: deny lists from upstream history (`deny git`, `deny osv`) and the answers
//! `check` hands on (`--json`, `--openvex`), over histories made of real Debian patches.

use crate::corpus::{corpus, wrapped_build};
use crate::util::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// git with a fixed identity and dates, no user or system configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let mut c = Command::new("git");
    c.arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z");
    String::from_utf8(run_ok(&mut c).stdout).unwrap()
}

fn head(dir: &Path) -> String {
    git(dir, &["rev-parse", "HEAD"]).trim().to_string()
}

/// The files a patch changes (`+++ b/PATH` lines).
fn patch_files(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("+++ b/"))
        .map(|p| p.split('\t').next().unwrap_or(p).trim().to_string())
        .collect();
    v.dedup();
    v
}

/// The CVE ID a Debian patch is for, from its name or its header (before the diff).
fn cve_of(name: &str, text: &str) -> Option<String> {
    let header: String = text
        .lines()
        .take_while(|l| !l.starts_with("--- ") && !l.starts_with("diff "))
        .collect::<Vec<_>>()
        .join("\n");
    for s in [name, header.as_str()] {
        let u = s.to_ascii_uppercase();
        let mut rest = u.as_str();
        while let Some(i) = rest.find("CVE-") {
            let tail = &rest[i + 4..];
            let year: String = tail.chars().take(4).collect();
            let num: String = tail
                .get(5..)
                .unwrap_or("")
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if year.len() == 4
                && year.chars().all(|c| c.is_ascii_digit())
                && tail.get(4..5) == Some("-")
                && num.len() >= 4
            {
                return Some(format!("CVE-{year}-{num}"));
            }
            rest = &rest[i + 4..];
        }
    }
    None
}

/// One CVE fix in a test history.
#[derive(Debug, Clone)]
struct Fix {
    cve: String,
    /// The fixing commits (main first, then the release branch's cherry-pick, if any).
    commits: Vec<String>,
}

/// A history made from a Debian source package: the upstream tree, then its patches one by
/// one in series order, with a release branch cut before the first CVE fix (one edit to a
/// file that fix changes, then the fix cherry-picked), an affected file of the last CVE fix
/// renamed (with an edit) before that fix, and the release branch merged into main between
/// the two. Returns the repository and its CVE fixes.
struct Made {
    repo: PathBuf,
    fixes: Vec<Fix>,
    /// Named points: upstream, base (the release branch's start), rel-edit, rel-fix,
    /// rename, merge, and each patch's commit by patch name.
    at: BTreeMap<String, String>,
    /// The renamed file: (old, new).
    renamed: (String, String),
}

fn make_history(t: &Tmp, pkg: &str) -> Made {
    need("git");
    let src = t.join(&format!("{pkg}-src"));
    corpus(pkg, true, &src);
    let patches = src.join("debian/patches");
    let series: Vec<String> = std::fs::read_to_string(patches.join("series"))
        .unwrap()
        .lines()
        .map(|l| l.split('#').next().unwrap().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let repo = t.join(&format!("{pkg}-git"));
    std::fs::create_dir_all(&repo).unwrap();
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", src.display()))
            .arg(&repo),
    );
    std::fs::remove_dir_all(repo.join("debian")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "upstream"]);
    let mut at = BTreeMap::new();
    at.insert("upstream".to_string(), head(&repo));
    let texts: Vec<(String, String)> = series
        .iter()
        .map(|p| {
            let b = std::fs::read(patches.join(p)).unwrap();
            (p.clone(), String::from_utf8_lossy(&b).into_owned())
        })
        .collect();
    let cves: Vec<usize> = (0..texts.len())
        .filter(|&i| cve_of(&texts[i].0, &texts[i].1).is_some())
        .collect();
    assert!(!cves.is_empty(), "{pkg}: no CVE patch in the series");
    let (first, last) = (cves[0], *cves.last().unwrap());
    let rel_file = patch_files(&texts[first].1)[0].clone();
    let old = patch_files(&texts[last].1)[0].clone();
    let new = match old.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}_renamed.{ext}"),
        None => format!("{old}_renamed"),
    };
    let mut fixes: Vec<Fix> = Vec::new();
    let mut renamed = false;
    let mut merged = false;
    for (i, (name, text)) in texts.iter().enumerate() {
        if i == first {
            at.insert("base".into(), head(&repo));
        }
        if i == last {
            // the rename (with an edit, as a move often comes with) in the last fix's range
            git(&repo, &["mv", &old, &new]);
            let p = repo.join(&new);
            let body = std::fs::read(&p).unwrap();
            // appended, so that the release branch's edit at the top merges cleanly
            let mut edited = body;
            edited.extend_from_slice(b"/* moved */\n");
            std::fs::write(&p, edited).unwrap();
            git(
                &repo,
                &["commit", "-qam", &format!("rename {old} to {new}")],
            );
            at.insert("rename".into(), head(&repo));
            renamed = true;
        }
        if renamed && !merged && i == last && first != last {
            merge_rel(&repo, &mut at);
            merged = true;
        }
        let text = if renamed {
            text.replace(&format!("a/{old}"), &format!("a/{new}"))
                .replace(&format!("b/{old}"), &format!("b/{new}"))
        } else {
            text.clone()
        };
        let pf = t.join("cur.patch");
        std::fs::write(&pf, &text).unwrap();
        git(
            &repo,
            &["apply", "--whitespace=nowarn", pf.to_str().unwrap()],
        );
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-qm", name]);
        at.insert(name.clone(), head(&repo));
        if let Some(cve) = cve_of(name, text.as_str()) {
            fixes.push(Fix {
                cve,
                commits: vec![head(&repo)],
            });
        }
        if i == first {
            // the release branch: one edit to the file the fix changes, then the fix
            let fix = head(&repo);
            let base = at["base"].clone();
            git(&repo, &["checkout", "-q", "-b", "rel", &base]);
            let p = repo.join(&rel_file);
            let body = std::fs::read(&p).unwrap();
            let mut edited = b"/* release branch */\n".to_vec();
            edited.extend_from_slice(&body);
            std::fs::write(&p, edited).unwrap();
            git(&repo, &["commit", "-qam", "release branch edit"]);
            at.insert("rel-edit".into(), head(&repo));
            git(&repo, &["cherry-pick", "-x", &fix]);
            at.insert("rel-fix".into(), head(&repo));
            fixes.last_mut().unwrap().commits.push(head(&repo));
            git(&repo, &["checkout", "-q", "main"]);
            if first == last {
                // one fix only: the merge comes right after it (later patches may touch
                // the lines the fix touched)
                merge_rel(&repo, &mut at);
                merged = true;
            }
        }
    }
    if !merged {
        merge_rel(&repo, &mut at);
    }
    // upstream's clone URL, so that `deny osv` can match ranges by the remote
    git(
        &repo,
        &[
            "remote",
            "add",
            "origin",
            &format!("https://example.org/{pkg}/{pkg}.git"),
        ],
    );
    Made {
        repo,
        fixes,
        at,
        renamed: (old, new),
    }
}

fn merge_rel(repo: &Path, at: &mut BTreeMap<String, String>) {
    git(repo, &["merge", "-q", "--no-ff", "-m", "merge rel", "rel"]);
    at.insert("merge".into(), head(repo));
}

/// What a deny list says: IDs (hex) per kind and alg, and the labels on each line.
#[derive(Debug, Default, PartialEq)]
struct Listed {
    sha1: BTreeSet<String>,
    sha256: BTreeSet<String>,
    fixed_sha1: BTreeSet<String>,
    fixed_sha256: BTreeSet<String>,
}

fn parse_list(text: &str, label: &str) -> Listed {
    let mut l = Listed::default();
    for line in text.lines() {
        let body = line.split('#').next().unwrap().trim();
        if body.is_empty() {
            continue;
        }
        let (fixed, body) = match body.strip_prefix("fixed ") {
            Some(b) => (true, b),
            None => (false, body),
        };
        let (id, lab) = body.split_once(' ').expect("a label on every line");
        if lab.trim() != label {
            continue;
        }
        let set = match (fixed, id.strip_prefix("gitoid:blob:sha1:")) {
            (false, Some(h)) => (&mut l.sha1, h),
            (true, Some(h)) => (&mut l.fixed_sha1, h),
            (false, None) => (
                &mut l.sha256,
                id.strip_prefix("gitoid:blob:sha256:").unwrap(),
            ),
            (true, None) => (
                &mut l.fixed_sha256,
                id.strip_prefix("gitoid:blob:sha256:").unwrap(),
            ),
        };
        set.0.insert(set.1.to_string());
    }
    l
}

/// The oracle, with plain git: the vulnerable commits by `rev-list --ancestry-path` (the
/// introducing commit added; commits holding a fix taken out), the names of each file by
/// `diff-tree -M` over the range's edges, the versions by `ls-tree`, the sha256 IDs by
/// `hash-object` in a sha256 repository.
fn oracle(repo: &Path, sha256_repo: &Path, fixes: &[String], introduced: Option<&str>) -> Listed {
    let mut vuln: BTreeSet<String> = BTreeSet::new();
    for f in fixes {
        let out = match introduced {
            Some(i) => git(repo, &["rev-list", "--ancestry-path", &format!("{i}..{f}")]),
            None => git(repo, &["rev-list", f]),
        };
        vuln.extend(out.lines().map(String::from));
        if let Some(i) = introduced {
            vuln.insert(git(repo, &["rev-parse", i]).trim().to_string());
        }
    }
    let is_anc = |a: &str, b: &str| {
        Command::new("git")
            .args([
                "-C",
                repo.to_str().unwrap(),
                "merge-base",
                "--is-ancestor",
                a,
                b,
            ])
            .status()
            .unwrap()
            .success()
    };
    vuln.retain(|c| !fixes.iter().any(|f| is_anc(f, c)));
    let parents = |c: &str| -> Vec<String> {
        git(repo, &["rev-list", "--parents", "-n1", c])
            .split_whitespace()
            .skip(1)
            .map(String::from)
            .collect()
    };
    let diff = |p: &str, c: &str| git(repo, &["diff-tree", "-r", "-M", "--name-status", p, c]);
    let mut names: BTreeSet<String> = BTreeSet::new();
    for f in fixes {
        let first = parents(f)[0].clone();
        for l in diff(&first, f).lines() {
            let cols: Vec<&str> = l.split('\t').collect();
            names.extend(cols[1..].iter().map(|s| s.to_string()));
        }
    }
    let mut edges = Vec::new();
    for c in vuln.iter().chain(fixes.iter()) {
        for p in parents(c) {
            if vuln.contains(&p) {
                edges.push((p, c.clone()));
            }
        }
    }
    let renames: Vec<(String, String)> = edges
        .iter()
        .flat_map(|(p, c)| {
            diff(p, c)
                .lines()
                .filter(|l| l.starts_with('R'))
                .map(|l| {
                    let cols: Vec<&str> = l.split('\t').collect();
                    (cols[1].to_string(), cols[2].to_string())
                })
                .collect::<Vec<_>>()
        })
        .collect();
    loop {
        let before = names.len();
        for (a, b) in &renames {
            if names.contains(a) || names.contains(b) {
                names.insert(a.clone());
                names.insert(b.clone());
            }
        }
        if names.len() == before {
            break;
        }
    }
    let blobs = |commits: &mut dyn Iterator<Item = &String>| -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for c in commits {
            for n in &names {
                let ls = git(repo, &["ls-tree", c, "--", n]);
                for l in ls.lines() {
                    let cols: Vec<&str> = l.split_whitespace().collect();
                    if cols[1] == "blob" && cols[0] != "120000" {
                        out.insert(cols[2].to_string());
                    }
                }
            }
        }
        out
    };
    let sha1 = blobs(&mut vuln.iter());
    let fixed_sha1: BTreeSet<String> = blobs(&mut fixes.iter())
        .difference(&sha1)
        .cloned()
        .collect();
    let sha256_of = |ids: &BTreeSet<String>| -> BTreeSet<String> {
        ids.iter()
            .map(|b| {
                let bytes = run_ok(Command::new("git").args([
                    "-C",
                    repo.to_str().unwrap(),
                    "cat-file",
                    "blob",
                    b,
                ]))
                .stdout;
                let f = sha256_repo.join("blob");
                std::fs::write(&f, bytes).unwrap();
                git(sha256_repo, &["hash-object", f.to_str().unwrap()])
                    .trim()
                    .to_string()
            })
            .collect()
    };
    Listed {
        sha256: sha256_of(&sha1),
        fixed_sha256: sha256_of(&fixed_sha1),
        sha1,
        fixed_sha1,
    }
}

fn sha256_repo(t: &Tmp) -> PathBuf {
    let d = t.join("sha256-repo");
    std::fs::create_dir_all(&d).unwrap();
    git(&d, &["init", "-q", "--object-format=sha256"]);
    d
}

fn deny_git(repo: &Path, fix: &Fix, introduced: Option<&str>) -> (String, String) {
    let mut c = omnishim(&["deny", "git", "--repo"]);
    c.arg(repo);
    for f in &fix.commits {
        c.args(["--fixed", f]);
    }
    if let Some(i) = introduced {
        c.args(["--introduced", i]);
    }
    c.args(["--label", &fix.cve, "--fixed-list"]);
    let out = run_ok(&mut c);
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// An OSV entry for a fix: introduced, one `fixed` per fixing commit, plus `extra` events.
fn osv_entry(t: &Tmp, pkg: &str, fix: &Fix, introduced: &str, extra: &[(&str, &str)]) -> PathBuf {
    let mut events = vec![serde_json::json!({ "introduced": introduced })];
    for (k, v) in extra {
        events.push(serde_json::json!({ *k: v }));
    }
    let fixed_events = extra.iter().all(|(k, _)| *k != "last_affected");
    if fixed_events {
        for f in &fix.commits {
            events.push(serde_json::json!({ "fixed": f }));
        }
    }
    let id = format!("OSV-TEST-{}-{}", pkg, fix.cve);
    let entry = serde_json::json!({
        "schema_version": "1.6.0",
        "id": id,
        "aliases": [fix.cve],
        "modified": "2024-01-01T00:00:00Z",
        "affected": [{
            "ranges": [
                { "type": "GIT", "repo": format!("https://example.org/{pkg}/{pkg}"), "events": events },
                { "type": "GIT", "repo": "https://example.org/elsewhere/other", "events": [{ "introduced": "0" }] },
            ],
        }],
    });
    let n = t.join(&format!("{id}-{}.json", extra.len()));
    std::fs::write(&n, serde_json::to_string_pretty(&entry).unwrap()).unwrap();
    n
}

fn deny_osv(repo: &Path, entry: &Path, paths: &[String]) -> String {
    let mut c = omnishim(&["deny", "osv"]);
    c.arg(entry).arg("--repo").arg(repo).arg("--fixed-list");
    for p in paths {
        c.args(["--path", p]);
    }
    stdout(&mut c)
}

/// For every CVE patch of a package: `deny git` gives exactly the oracle's versions (with
/// the release branch, the merge and the rename in the range), the label on every line, and
/// OSV entries for the same range (fixed events; last_affected; limit) give the same lists.
fn deny_matches_oracle(pkg: &str) -> (Made, Vec<String>) {
    let t = Tmp::new();
    let m = make_history(&t, pkg);
    let s256 = sha256_repo(&t);
    let mut lists = Vec::new();
    for fix in &m.fixes {
        let start = Instant::now();
        let (out, err) = deny_git(&m.repo, fix, None);
        let took = start.elapsed();
        eprintln!(
            "{pkg} {}: deny git {:.3} s, {} lines",
            fix.cve,
            took.as_secs_f64(),
            out.lines().count()
        );
        for l in out.lines().filter(|l| !l.starts_with('#')) {
            let words: Vec<&str> = l.trim_start_matches("fixed ").split_whitespace().collect();
            assert_eq!(words[1], fix.cve, "the label on every line: {l}");
        }
        let got = parse_list(&out, &fix.cve);
        let want = oracle(&m.repo, &s256, &fix.commits, None);
        assert!(
            !want.sha1.is_empty() && !want.fixed_sha1.is_empty(),
            "{want:?}"
        );
        assert_eq!(got, want, "{pkg} {}:\n{out}\n{err}", fix.cve);
        // each listed version is in the list under both algorithms
        assert_eq!(got.sha1.len(), got.sha256.len());
        // the renamed file: its versions under both names are listed
        let (old, new) = &m.renamed;
        let paths_line = out.lines().find(|l| l.starts_with("# paths:")).unwrap();
        if paths_line.contains(new.as_str()) {
            assert!(paths_line.contains(old.as_str()), "{paths_line}");
        }
        // OSV: fixed events (the release branch's cherry-pick a second `fixed`)
        let e = osv_entry(&t, pkg, fix, "0", &[]);
        let osv_out = deny_osv(&m.repo, &e, &[]);
        assert_eq!(parse_list(&osv_out, &fix.cve), want, "{osv_out}");
        let osv_id = format!("OSV-TEST-{pkg}-{}", fix.cve);
        assert_eq!(parse_list(&osv_out, &osv_id).sha1, want.sha1);
        // last_affected (inclusive) at the fix's parent, and limit at the fix: the same range
        // when there is one fix (no fixed commits to take paths from: --path)
        if fix.commits.len() == 1 {
            let f = &fix.commits[0];
            let parent = git(&m.repo, &["rev-parse", &format!("{f}^")])
                .trim()
                .to_string();
            let paths: Vec<String> = out
                .lines()
                .find(|l| l.starts_with("# paths:"))
                .unwrap()
                .trim_start_matches("# paths:")
                .split_whitespace()
                .map(String::from)
                .collect();
            let e = osv_entry(&t, pkg, fix, "0", &[("last_affected", &parent)]);
            let got = parse_list(&deny_osv(&m.repo, &e, &paths), &fix.cve);
            assert_eq!(got.sha1, want.sha1, "last_affected");
            let e = osv_entry(&t, pkg, fix, "0", &[("limit", f)]);
            let got = parse_list(&deny_osv(&m.repo, &e, &[]), &fix.cve);
            assert_eq!(got.sha1, want.sha1, "limit");
        }
        // an introducing commit: the range starts there
        let intro = m.at["base"].clone();
        let (out_i, _) = deny_git(&m.repo, fix, Some(&intro));
        let want_i = oracle(&m.repo, &s256, &fix.commits, Some(&intro));
        assert_eq!(parse_list(&out_i, &fix.cve), want_i, "introduced at base");
        assert!(want_i.sha1.len() <= want.sha1.len());
        let e = osv_entry(&t, pkg, fix, &intro, &[]);
        assert_eq!(
            parse_list(&deny_osv(&m.repo, &e, &[]), &fix.cve),
            want_i,
            "osv introduced at base"
        );
        lists.push(out);
    }
    // bad input: one clear line, exit 2
    let bad = |c: &mut Command, want: &str| {
        let out = c.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
    };
    bad(
        omnishim(&[
            "deny",
            "git",
            "--fixed",
            "no-such-rev",
            "--label",
            "X",
            "--repo",
        ])
        .arg(&m.repo),
        "no-such-rev",
    );
    bad(
        omnishim(&["deny", "git", "--fixed", "HEAD", "--label", "X", "--repo"])
            .arg(t.join("not-a-repo")),
        "not-a-repo",
    );
    let other = t.write(
        "other.json",
        r#"{"id":"OSV-OTHER","affected":[{"ranges":[{"type":"GIT","repo":"https://example.org/x/y","events":[{"introduced":"0"}]}]}]}"#,
    );
    bad(
        omnishim(&["deny", "osv", "--repo"])
            .arg(&m.repo)
            .arg(&other),
        "no GIT range for this repository",
    );
    // keep the history for the callers that build from it (they remove it)
    let _ = t.dir.keep();
    (m, lists)
}

#[test]
fn deny_git_and_osv_match_the_oracle_over_xz_utils_history() {
    let (m, lists) = deny_matches_oracle("xz-utils");
    assert_eq!(m.fixes.len(), 1);
    assert_eq!(m.fixes[0].cve, "CVE-2025-31115");
    assert!(lists[0].contains("stream_decoder_mt"), "{}", lists[0]);
    // a fix that changes only translations: nothing to list without --path, and it says why
    let po = &m.at["Translations-Add-Brazilian-Portuguese-translation-of-man-.patch"];
    let out = omnishim(&["deny", "git", "--label", "X", "--fixed", po, "--repo"])
        .arg(&m.repo)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("only tests and docs (")
            && err.contains("po4a/pt_BR.po")
            && err.contains("give --path"),
        "{err}"
    );
    std::fs::remove_dir_all(m.repo.parent().unwrap()).ok();
}

/// Build lua's library at a commit under `omnishim run`, as a shared object.
fn build_at(repo: &Path, commit: &str, dir: &Path, store: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let tar =
        run_ok(Command::new("git").args(["-C", repo.to_str().unwrap(), "archive", commit])).stdout;
    let tf = dir.with_extension("tar");
    std::fs::write(&tf, tar).unwrap();
    run_ok(Command::new("tar").arg("xf").arg(&tf).arg("-C").arg(dir));
    // Debian's build makes this header (patch 0002 includes it); a build of its own says
    // what it would
    let conf = std::fs::read_to_string(dir.join("src/luaconf.h")).unwrap_or_default();
    if conf.contains("lua5.4-deb-multiarch.h") {
        std::fs::write(
            dir.join("src/lua5.4-deb-multiarch.h"),
            "#define DEB_HOST_MULTIARCH \"x86_64-linux-gnu\"\n",
        )
        .unwrap();
    }
    // the library (its files use each other's internal symbols, so all of them): the
    // affected files and their neighbours, without the two programs
    let script = "set --; for f in src/*.c; do case $f in src/lua.c|src/luac.c) ;; *) set -- \"$@\" \"$f\";; esac; done; \
                  cc -O0 -fPIC -c \"$@\" && cc -shared -o part.so *.o";
    wrapped_build(dir, store, script);
    dir.join("part.so")
}

/// lua5.4: both CVE fixes match the oracle; builds of the tree before the fixes, at the
/// first fix, on the release branch and after both are flagged exactly where a vulnerable
/// version is in them, with the right labels, and the others report the fixed versions;
/// `--json` and `--openvex` (validated against the OpenVEX schema) say the same.
#[test]
fn deny_lists_from_lua_history_flag_exactly_the_builds_before_each_fix() {
    need("cc");
    need("python3");
    let (m, lists) = deny_matches_oracle("lua5.4");
    assert_eq!(
        m.fixes.iter().map(|f| f.cve.as_str()).collect::<Vec<_>>(),
        ["CVE-2022-28805", "CVE-2022-33099"]
    );
    let (a, b) = (m.fixes[0].cve.clone(), m.fixes[1].cve.clone());
    let t = Tmp::new();
    let deny = t.write("deny.txt", lists.concat());
    let store = t.join("store");
    let points = [
        ("before", m.at["0003-extern_C.patch"].clone()),
        ("first-fix", m.at["0004-cve-2022-28805.patch"].clone()),
        ("release", m.at["rel-fix"].clone()),
        ("both-fixed", m.at["0005-cve-2022-33099.patch"].clone()),
    ];
    let mut bins = BTreeMap::new();
    for (name, commit) in &points {
        bins.insert(*name, build_at(&m.repo, commit, &t.join(name), &store));
    }
    // an unrecorded build: its graph is incomplete
    let plain = t.join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    run_ok(Command::new("cc").current_dir(&plain).args([
        "-shared",
        "-fPIC",
        "-o",
        "plain.so",
        "-x",
        "c",
        "/dev/null",
    ]));
    let expect: BTreeMap<&str, (Vec<&str>, Vec<&str>)> = [
        ("before", (vec![a.as_str(), b.as_str()], vec![])),
        ("first-fix", (vec![b.as_str()], vec![a.as_str()])),
        ("release", (vec![b.as_str()], vec![a.as_str()])),
        ("both-fixed", (vec![], vec![a.as_str(), b.as_str()])),
    ]
    .into_iter()
    .collect();
    for (name, bin) in &bins {
        let out = omnishim(&["check", "--store"])
            .arg(&store)
            .arg("--deny")
            .arg(&deny)
            .arg(bin)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let (denied, fixed) = &expect[name];
        assert_eq!(
            out.status.code(),
            Some(if denied.is_empty() { 0 } else { 1 }),
            "{name}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let labels_line = text
            .lines()
            .find(|l| l.contains(": labels: "))
            .map(|l| l.split(": labels: ").nth(1).unwrap().to_string())
            .unwrap_or_default();
        let mut got: Vec<&str> = labels_line.split(", ").filter(|s| !s.is_empty()).collect();
        got.sort();
        assert_eq!(&got, denied, "{name}: {text}");
        for f in fixed {
            assert!(
                text.lines()
                    .any(|l| l.contains("fixed version present: ") && l.contains(f)),
                "{name}: no fixed version of {f}: {text}"
            );
        }
        // the JSON answer says the same
        let out = omnishim(&["check", "--json", "--store"])
            .arg(&store)
            .arg("--deny")
            .arg(&deny)
            .arg(bin)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(if denied.is_empty() { 0 } else { 1 })
        );
        let js = String::from_utf8(out.stdout).unwrap();
        let v: serde_json::Value = serde_json::from_str(&js).unwrap();
        let row = &v[0];
        let mut jl: Vec<String> = serde_json::from_value(row["labels"].clone()).unwrap();
        jl.sort();
        assert_eq!(jl, *denied, "{name}: {js}");
        let mut fl: Vec<String> = serde_json::from_value(row["fixed_labels"].clone()).unwrap();
        fl.sort();
        let mut want_fixed: Vec<String> = fixed.iter().map(|s| s.to_string()).collect();
        want_fixed.sort();
        assert_eq!(fl, want_fixed, "{name}: {js}");
        for c in row["chains"].as_array().unwrap() {
            let steps = c["steps"].as_array().unwrap();
            assert!(steps.len() >= 3, "binary -> object -> source: {c}");
            assert_eq!(steps.last().unwrap()["id"], c["denied"]);
        }
    }
    // OpenVEX over every build and the unrecorded one: schema-valid, and the statuses
    let mut c = omnishim(&[
        "check",
        "--openvex",
        "--author",
        "omnishim tests",
        "--store",
    ]);
    c.arg(&store).arg("--deny").arg(&deny);
    for b in bins.values() {
        c.arg(b);
    }
    c.arg(plain.join("plain.so"));
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a denied file wins");
    let doc = String::from_utf8(out.stdout).unwrap();
    let docf = t.write("vex.json", &doc);
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/openvex_json_schema.json");
    run_ok(Command::new("python3").args([
        "-c",
        "import json,sys,jsonschema\n\
         s=json.load(open(sys.argv[1])); d=json.load(open(sys.argv[2]))\n\
         jsonschema.validate(d, s, format_checker=jsonschema.FormatChecker())",
        schema.to_str().unwrap(),
        docf.to_str().unwrap(),
    ]));
    let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let mut status: BTreeMap<(String, String), String> = BTreeMap::new();
    for s in v["statements"].as_array().unwrap() {
        let product = s["products"][0]["@id"].as_str().unwrap().to_string();
        let name = s["vulnerability"]["name"].as_str().unwrap().to_string();
        if s["status"] == "affected" {
            assert!(
                s["impact_statement"].as_str().unwrap().contains(" -> "),
                "the chain: {s}"
            );
        }
        if s["status"] == "not_affected" {
            assert_eq!(s["justification"], "vulnerable_code_not_present");
        }
        assert!(status
            .insert((product, name), s["status"].as_str().unwrap().to_string())
            .is_none());
    }
    let gid = |p: &Path| {
        omnishim::gitoid::ids_of_file(p)
            .unwrap()
            .get(omnishim::gitoid::Alg::Sha1)
            .uri()
    };
    for (name, bin) in &bins {
        let (denied, _) = &expect[name];
        for cve in [&a, &b] {
            let want = if denied.contains(&cve.as_str()) {
                "affected"
            } else {
                "not_affected"
            };
            assert_eq!(status[&(gid(bin), cve.clone())], want, "{name} {cve}");
        }
    }
    for cve in [&a, &b] {
        assert_eq!(
            status[&(gid(&plain.join("plain.so")), cve.clone())],
            "under_investigation"
        );
    }
    assert_eq!(status.len(), 5 * 2);
    // a branch that never got the first fix: OSV's evaluation counts it (a fix closes only
    // what it descends from), deny git (ancestry paths to the fixes) does not, and OSV limit
    // events at the fixes keep OSV to deny git's range
    git(&m.repo, &["checkout", "-q", "-b", "old", &m.at["base"]]);
    let p = m.repo.join("src/lparser.c");
    let mut body = b"/* never fixed */\n".to_vec();
    body.extend_from_slice(&std::fs::read(&p).unwrap());
    std::fs::write(&p, body).unwrap();
    git(&m.repo, &["commit", "-qam", "old branch edit"]);
    let old_blob = git(&m.repo, &["rev-parse", "HEAD:src/lparser.c"])
        .trim()
        .to_string();
    git(&m.repo, &["checkout", "-q", "main"]);
    let fix = &m.fixes[0];
    let by_git = parse_list(&deny_git(&m.repo, fix, None).0, &fix.cve);
    let e = osv_entry(&t, "lua5.4", fix, "0", &[]);
    let by_osv = parse_list(&deny_osv(&m.repo, &e, &[]), &fix.cve);
    assert!(by_osv.sha1.contains(&old_blob), "{by_osv:?}");
    assert!(!by_git.sha1.contains(&old_blob), "{by_git:?}");
    let mut without = by_osv.sha1.clone();
    without.remove(&old_blob);
    assert_eq!(without, by_git.sha1);
    let e = osv_entry(
        &t,
        "lua5.4",
        fix,
        "0",
        &[("limit", &fix.commits[0]), ("limit", &fix.commits[1])],
    );
    assert_eq!(
        parse_list(&deny_osv(&m.repo, &e, &[]), &fix.cve).sha1,
        by_git.sha1
    );
    std::fs::remove_dir_all(m.repo.parent().unwrap()).ok();
}
