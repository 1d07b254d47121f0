//! Issue 14 items 4 and 5: "don't know" is never reported as "clean" (exit 3 and one line per
//! incomplete file), and a deny list keeps every label of an ID.

use crate::util::*;
use omnishim::elf;
use omnishim::gitoid;
use omnishim::store::Store;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

impl Built {
    /// The same program linked without the shims: no note.
    fn unrecorded(&self) -> PathBuf {
        run_ok(
            Command::new("gcc")
                .current_dir(self.t.path())
                .args(["-g", "m.c", "a.c", "-o", "bare"]),
        );
        self.t.join("bare")
    }
    /// a.c's blob ID under the given labels, one line each.
    fn deny(&self, labels: &[&str]) -> PathBuf {
        let ids = gitoid::ids_of_file(&self.t.join("a.c")).unwrap();
        let text: String = labels
            .iter()
            .map(|l| format!("{} {l}\n", ids.sha1.hex()))
            .collect();
        self.t.write("deny.txt", text)
    }
    /// `omnishim <args> --store <store> <path>`
    fn run(&self, args: &[&str], path: &Path) -> Output {
        omnishim(args)
            .arg("--store")
            .arg(&self.store)
            .arg(path)
            .output()
            .unwrap()
    }
    fn check(&self, deny: &Path, path: &Path) -> Output {
        self.run(&["check", "--deny", deny.to_str().unwrap()], path)
    }
    /// The sha1 manifest a file's note names.
    fn manifest_of(&self, file: &str) -> PathBuf {
        let id = elf::read_note_file(&self.t.join(file))
            .unwrap()
            .sha1
            .unwrap();
        Store::at(&self.store).object_path(&id)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Exit status 3, and stderr has a line naming `file` with every one of `words`.
#[track_caller]
fn incomplete(out: &Output, file: &Path, words: &[&str]) {
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout: {}\nstderr: {err}",
        text(&out.stdout)
    );
    let name = file.display().to_string();
    assert!(
        err.lines().any(|l| l.contains(&name)
            && l.contains("incomplete")
            && words.iter().all(|w| l.contains(w))),
        "no line naming {name} with {words:?}: {err}"
    );
}

#[test]
fn an_unrecorded_binary_is_incomplete_for_every_command() {
    let b = Built::new();
    let bare = b.unrecorded();
    let deny = b.deny(&["CVE-2024-1"]);
    // today's "0 contain denied files", exit 0, for a file that holds a.c
    incomplete(&b.check(&deny, &bare), &bare, &["no note"]);
    for args in [
        &["resolve"][..],
        &["resolve", "--sources"],
        &["sbom"],
        &["sbom", "--format", "cyclonedx-json"],
        &["audit"],
    ] {
        incomplete(&b.run(args, &bare), &bare, &["no note"]);
    }
    let out = omnishim(&["note", "show"]).arg(&bare).output().unwrap();
    incomplete(&out, &bare, &["no note"]);
    // the JSON says so too: the root's problem, the verdict, the reason
    let out = b.run(&["resolve", "--json"], &bare);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["verdict"], "incomplete");
    assert_eq!(v[0]["incomplete"][0]["kind"], "no-note");
    let root = v[0]["root"].as_str().unwrap();
    assert!(v[0]["nodes"][root]["problem"].is_string(), "{v}");
    let out = b.run(&["sbom", "--format", "cyclonedx-json"], &bare);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["compositions"][0]["aggregate"], "incomplete");
    // `resolve --sources` of an unrecorded file no longer lists the file as its own source
    assert!(b.run(&["resolve", "--sources"], &bare).stdout.is_empty());

    // the recorded program: complete, 0 everywhere (and 1 for check: it holds a.c)
    let prog = b.prog();
    for args in [&["resolve"][..], &["sbom"], &["audit"]] {
        let out = b.run(args, &prog);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = omnishim(&["note", "show"]).arg(&prog).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value =
        serde_json::from_slice(&b.run(&["resolve", "--json"], &prog).stdout).unwrap();
    assert_eq!(v[0]["verdict"], "complete");
    let out = b.run(&["sbom", "--format", "cyclonedx-json"], &prog);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["compositions"][0]["aggregate"], "complete");
    assert_eq!(b.check(&b.deny(&["x"]), &prog).status.code(), Some(1));
    let clean =
        b.t.write("clean.txt", "95d09f2b10159347eece71399a7e2e907ea3df4f\n");
    assert_eq!(b.check(&clean, &prog).status.code(), Some(0));
    // both at once: the hit wins
    let out = omnishim(&["check", "--deny"])
        .arg(b.deny(&["x"]))
        .arg("--store")
        .arg(&b.store)
        .args([&prog, &bare])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no note"));
}

#[test]
fn a_missing_store_is_incomplete_and_is_not_created() {
    let b = Built::new();
    let prog = b.prog();
    let deny = b.deny(&["CVE-2024-1"]);
    let nowhere = b.t.join("nowhere/store");
    // --store
    let out = omnishim(&["check", "--deny"])
        .arg(&deny)
        .arg("--store")
        .arg(&nowhere)
        .arg(&prog)
        .output()
        .unwrap();
    incomplete(
        &out,
        &prog,
        &["store not found", &nowhere.display().to_string()],
    );
    // OMNIBOR_DIR
    for args in [
        &["check", "--deny", deny.to_str().unwrap()][..],
        &["resolve"],
        &["audit"],
    ] {
        let out = omnishim(args)
            .env("OMNIBOR_DIR", &nowhere)
            .arg(&prog)
            .output()
            .unwrap();
        incomplete(&out, &prog, &["store not found"]);
    }
    assert!(!b.t.join("nowhere").exists(), "reading created a store");
    // neither variable nor option, no .bom upwards: ./.bom is not created either
    let empty = b.t.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = omnishim(&["resolve"])
        .current_dir(&empty)
        .arg(&prog)
        .output()
        .unwrap();
    incomplete(&out, &prog, &["store not found"]);
    assert!(!empty.join(".bom").exists());
}

#[test]
fn a_deleted_or_garbled_manifest_is_incomplete_naming_its_id() {
    let b = Built::new();
    let prog = b.prog();
    // a.o's manifest holds a.c: without it, check cannot see a.c
    let deny = b.deny(&["CVE-2024-1"]);
    let a_manifest = b.manifest_of("a.o");
    let hex: String = {
        let rest = a_manifest
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let pre = a_manifest.parent().unwrap().file_name().unwrap();
        format!("{}{rest}", pre.to_string_lossy())
    };
    let saved = std::fs::read(&a_manifest).unwrap();
    std::fs::remove_file(&a_manifest).unwrap();
    incomplete(&b.check(&deny, &prog), &prog, &[&hex, "missing"]);
    incomplete(&b.run(&["resolve"], &prog), &prog, &[&hex, "missing"]);
    incomplete(&b.run(&["sbom"], &prog), &prog, &[&hex, "missing"]);
    let out = b.run(&["resolve", "--json"], &prog);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems: Vec<&serde_json::Value> = v[0]["nodes"]
        .as_object()
        .unwrap()
        .values()
        .filter(|n| !n["problem"].is_null())
        .collect();
    assert_eq!(problems.len(), 1, "{v}");
    assert!(problems[0]["problem"].as_str().unwrap().contains("missing"));
    assert_eq!(v[0]["incomplete"][0]["kind"], "manifest-missing");
    assert!(v[0]["incomplete"][0]["manifest"]
        .as_str()
        .unwrap()
        .ends_with(&hex));
    // garbage in its place
    std::fs::write(&a_manifest, b"this is no manifest\n").unwrap();
    incomplete(&b.check(&deny, &prog), &prog, &[&hex, "malformed"]);
    incomplete(&b.run(&["audit"], &prog), &prog, &[&hex, "malformed"]);
    // restored: a hit again
    std::fs::write(&a_manifest, saved).unwrap();
    assert_eq!(b.check(&deny, &prog).status.code(), Some(1));
}

/// Store objects are written 0600: another user reading the store must get "don't know",
/// never "clean". Run as `nobody`.
#[test]
fn an_unreadable_manifest_read_by_another_user_is_incomplete() {
    let setpriv = need("setpriv");
    let b = Built::new();
    let prog = b.prog();
    let deny = b.deny(&["CVE-2024-1"]);
    // nobody must reach the files: the temp dir is 0700, the binary sits under the worktree
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(b.t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = b.t.join("omnishim");
    std::fs::copy(bin(), &exe).unwrap();
    let root_manifest = b.manifest_of("prog");
    std::fs::set_permissions(&root_manifest, std::fs::Permissions::from_mode(0o000)).unwrap();
    let as_nobody = |args: &[&str]| {
        Command::new(&setpriv)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .args(args)
            .arg("--store")
            .arg(&b.store)
            .arg(&prog)
            .env_remove("OMNIBOR_DIR")
            .current_dir("/")
            .output()
            .unwrap()
    };
    let out = as_nobody(&["check", "--deny", deny.to_str().unwrap()]);
    incomplete(&out, &prog, &["unreadable", "Permission denied"]);
    let out = as_nobody(&["resolve"]);
    incomplete(&out, &prog, &["unreadable", "Permission denied"]);
    // root reads it: the hit is there
    assert_eq!(b.check(&deny, &prog).status.code(), Some(1));
}

#[test]
fn a_symlink_given_is_followed_and_walks_skip_duplicates() {
    let b = Built::new();
    let deny = b.deny(&["CVE-2024-1"]);
    let link = b.t.join("link-to-prog");
    std::os::unix::fs::symlink(b.prog(), &link).unwrap();
    let out = b.check(&deny, &link);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("link-to-prog: CVE-2024-1"));
    assert!(text(&out.stderr).contains("1 ELF files checked"));
    // inside a directory walk, a symlinked file whose target the walk does not reach is
    // checked; one whose target it reaches is not checked twice
    let d = b.t.join("d");
    std::fs::create_dir(&d).unwrap();
    std::os::unix::fs::symlink(b.prog(), d.join("outside")).unwrap();
    let out = b.check(&deny, &d);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("outside: CVE-2024-1"));
    std::fs::copy(b.prog(), d.join("prog")).unwrap();
    std::os::unix::fs::symlink("prog", d.join("alias")).unwrap();
    let out = b.check(&deny, &d);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("prog: CVE-2024-1"), "{stdout}");
    assert!(!stdout.contains("alias"), "{stdout}");
    assert!(
        text(&out.stderr).contains("2 ELF files checked"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn every_label_of_a_denied_id_is_reported() {
    let b = Built::new();
    let prog = b.prog();
    let ids = gitoid::ids_of_file(&b.t.join("a.c")).unwrap();
    // sha1 hex, the sha1 URI, and the sha256 URI, with a repeat
    let deny = b.t.write(
        "deny.txt",
        format!(
            "{} CVE-2024-1\n{} CVE-2024-2\n{} CVE-2024-1\n{} CVE-2024-3\n",
            ids.sha1.hex(),
            ids.sha1.uri(),
            ids.sha1.hex().to_uppercase(),
            ids.sha256.uri()
        ),
    );
    let list = omnishim::respond::read_deny(&deny).unwrap();
    assert_eq!(list[&ids.sha1], vec!["CVE-2024-1", "CVE-2024-2"]);
    let out = b.check(&deny, &prog);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("prog: CVE-2024-1, CVE-2024-2 {}", ids.sha1.uri())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{}: labels: CVE-2024-1, CVE-2024-2, CVE-2024-3",
            prog.display()
        )),
        "{stdout}"
    );
    let out = b.run(
        &["check", "--json", "--deny", deny.to_str().unwrap()],
        &prog,
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v[0]["labels"],
        serde_json::json!(["CVE-2024-1", "CVE-2024-2", "CVE-2024-3"])
    );
}

#[test]
fn check_json_gives_each_file_its_verdict_labels_and_chains() {
    let b = Built::new();
    let prog = b.prog();
    let bare = b.unrecorded();
    b.t.write("o.c", "int main(void){return 0;}\n");
    run_ok(
        shimmed(&b.t, "omnibor-cc", &b.store)
            .current_dir(b.t.path())
            .args(["o.c", "-o", "other"]),
    );
    let other = b.t.join("other");
    let deny = b.deny(&["CVE-2024-1", "CVE-2024-2"]);
    let out = omnishim(&["check", "--json", "--deny"])
        .arg(&deny)
        .arg("--store")
        .arg(&b.store)
        .args([&prog, &other, &bare])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let verdicts: Vec<&str> = rows
        .iter()
        .map(|r| r["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["denied", "clean", "incomplete"]);
    let a_c = gitoid::ids_of_file(&b.t.join("a.c")).unwrap().sha1;
    let a_o = gitoid::ids_of_file(&b.t.join("a.o")).unwrap().sha1;
    let p = &rows[0];
    assert_eq!(p["file"], prog.to_str().unwrap());
    assert_eq!(p["labels"], serde_json::json!(["CVE-2024-1", "CVE-2024-2"]));
    let chains = p["chains"].as_array().unwrap();
    assert_eq!(chains.len(), 1, "{p}");
    assert_eq!(chains[0]["denied"], a_c.uri());
    let steps: Vec<&str> = chains[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let prog_id = gitoid::ids_of_file(&prog).unwrap().sha1.uri();
    assert_eq!(steps, [prog_id, a_o.uri(), a_c.uri()]);
    assert_eq!(
        chains[0]["steps"][2]["path"],
        b.t.join("a.c").to_str().unwrap()
    );
    assert!(p["incomplete"].as_array().unwrap().is_empty());
    assert!(rows[1]["chains"].as_array().unwrap().is_empty());
    assert_eq!(rows[2]["incomplete"][0]["kind"], "no-note");
    assert!(rows[2]["incomplete"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("no note"));
}
