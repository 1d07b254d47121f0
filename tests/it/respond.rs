//! Issue 7: resolve, check, sbom.

use crate::util::*;
use omnishim::gitoid::{self, Alg, Id};
use omnishim::manifest::Manifest;
use omnishim::store::Store;
use std::process::Command;

/// A store where a binary's graph holds a missing manifest, a malformed one and a loop (a
/// forged object whose content names itself: content addressing cannot make one, a
/// corrupted store can).
#[test]
fn resolve_reports_missing_malformed_and_cycles_without_looping() {
    let t = Tmp::new();
    let store = Store::at(t.join("store"));
    let src = gitoid::ids_of_bytes(b"int main(){}");
    let missing = gitoid::id_of_bytes(Alg::Sha1, b"nowhere");
    let malformed_id = gitoid::id_of_bytes(Alg::Sha1, b"garbage");
    omnishim::store::write_atomic(&store.object_path(&malformed_id), b"this is no manifest\n")
        .unwrap();
    let loop_id = gitoid::id_of_bytes(Alg::Sha1, b"loop");
    let looping = format!(
        "gitoid:blob:sha1\n{} manifest {}\n",
        gitoid::ids_of_bytes(b"x").sha1.hex(),
        loop_id.hex()
    );
    omnishim::store::write_atomic(&store.object_path(&loop_id), looping.as_bytes()).unwrap();
    let mut m = Manifest::new(Alg::Sha1);
    m.add(src.sha1, None);
    m.add(gitoid::ids_of_bytes(b"a").sha1, Some(missing));
    m.add(gitoid::ids_of_bytes(b"b").sha1, Some(malformed_id));
    m.add(gitoid::ids_of_bytes(b"c").sha1, Some(loop_id));
    let root_m = store.put_manifest(&m).unwrap();
    // a file whose target index entry points at that manifest
    let file = t.write("artifact.bin", b"some artifact");
    let ids = gitoid::ids_of_file(&file).unwrap();
    store.set_target(&ids.sha1, &root_m).unwrap();
    // the missing and the malformed manifest leave the graph incomplete: exit 3, one line on
    // stderr (the cycle alone would not: everything below it is walked elsewhere)
    let incomplete = |c: &mut Command| {
        let out = c.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("artifact.bin: incomplete: manifest ") && err.contains("1 more problem"),
            "{err}"
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let out = incomplete(
        omnishim(&["resolve", "--store"])
            .arg(store.root())
            .arg(&file),
    );
    assert!(
        out.contains(&format!(
            "[manifest {} missing from the store]",
            missing.hex()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("[manifest {} malformed:", malformed_id.hex())),
        "{out}"
    );
    assert!(
        out.contains(&format!("[cycle through manifest {}]", loop_id.hex())),
        "{out}"
    );
    let json: serde_json::Value = serde_json::from_str(&incomplete(
        omnishim(&["resolve", "--json", "--store"])
            .arg(store.root())
            .arg(&file),
    ))
    .unwrap();
    assert_eq!(json[0]["root"], ids.sha1.uri());
    assert_eq!(json[0]["verdict"], "incomplete");
    let kinds: Vec<&str> = json[0]["incomplete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["manifest-missing", "manifest-malformed"]);
    // the root, its four inputs, and the one input of the looping manifest
    assert_eq!(json[0]["nodes"].as_object().unwrap().len(), 6);
    let dot = incomplete(
        omnishim(&["resolve", "--dot", "--store"])
            .arg(store.root())
            .arg(&file),
    );
    assert!(
        dot.starts_with("digraph omnibor {") && dot.matches(" -> ").count() >= 4,
        "{dot}"
    );
    // verify flags the forged objects
    let v = omnishim(&["store", "verify", "--store"])
        .arg(store.root())
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(1));
}

#[test]
fn deny_list_format_and_errors() {
    let t = Tmp::new();
    let good = t.write(
        "deny.txt",
        "# known bad\n95d09f2b10159347eece71399a7e2e907ea3df4f CVE-0000-0001 hello\n\
         gitoid:blob:sha256:fee53a18d32820613c0527aa79be5cb30173c823a9b448fa4817767cc84c6f03\n\n   # nothing\n",
    );
    let list = omnishim::respond::read_deny(&good).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[&Id::from_hex("95d09f2b10159347eece71399a7e2e907ea3df4f").unwrap()],
        vec!["CVE-0000-0001 hello"]
    );
    let bad = t.write("bad.txt", "95d09f2b\n");
    let out = omnishim(&["check", "--deny"])
        .arg(&bad)
        .arg(t.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.txt:1:"), "{err}");
}

/// Validate an SPDX JSON file with pyspdxtools and a CycloneDX one with the official 1.6
/// schema as cyclonedx-python-lib ships it.
fn validate_sboms(spdx: &std::path::Path, cdx: &std::path::Path) {
    run_ok(Command::new(need("pyspdxtools")).arg("-i").arg(spdx));
    let script = "import sys\nfrom cyclonedx.validation.json import JsonStrictValidator\n\
                  from cyclonedx.schema import SchemaVersion\n\
                  e = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\n\
                  print(e) if e else None\nsys.exit(1 if e else 0)\n";
    run_ok(Command::new(need("python3")).args(["-c", script]).arg(cdx));
}

#[test]
fn sboms_of_the_examples_validate() {
    let t = Tmp::new();
    let store = t.join("store");
    let out = t.join("build");
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    run_ok(
        shimmed(&t, "make", &store)
            .arg("-s")
            .arg("-C")
            .arg(&examples)
            .arg(format!("O={}", out.display()))
            .args(["CC=omnibor-cc", "CXX=omnibor-c++", "AR=omnibor-ar"]),
    );
    let hello = out.join("hello");
    let spdx = stdout(
        omnishim(&[
            "sbom",
            "--follow-dynamic",
            "--format",
            "spdx-json",
            "--store",
        ])
        .arg(&store)
        .arg(&hello),
    );
    let cdx = stdout(
        omnishim(&[
            "sbom",
            "--follow-dynamic",
            "--format",
            "cyclonedx-json",
            "--store",
        ])
        .arg(&store)
        .arg(&hello),
    );
    let sp = t.write("hello.spdx.json", &spdx);
    let cd = t.write("hello.cdx.json", &cdx);
    validate_sboms(&sp, &cd);
    // sbom2dot (PyPI) renders the SPDX document: one edge per GENERATED_FROM at least
    let dot = t.join("hello.dot");
    run_ok(
        Command::new(need("sbom2dot"))
            .arg("-i")
            .arg(&sp)
            .arg("-o")
            .arg(&dot),
    );
    let dot_text = std::fs::read_to_string(&dot).unwrap();
    assert!(
        dot_text.starts_with("strict digraph sbom") && dot_text.matches(" -> ").count() > 20,
        "{dot_text}"
    );
    // the gitoids are where FORMAT.md section 5 puts them
    let v: serde_json::Value = serde_json::from_str(&spdx).unwrap();
    let src = gitoid::ids_of_file(&examples.join("lib/strutil.c")).unwrap();
    let has = |v: &serde_json::Value, uri: &str| v.to_string().contains(uri);
    assert!(has(&v["packages"], &src.sha1.uri()) && has(&v["packages"], &src.sha256.uri()));
    assert!(v["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["relationshipType"] == "GENERATED_FROM"));
    let c: serde_json::Value = serde_json::from_str(&cdx).unwrap();
    let comp = c["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| has(&x["omniborId"], &src.sha1.uri()))
        .unwrap();
    assert!(has(&comp["omniborId"], &src.sha256.uri()));
    assert!(!c["dependencies"].as_array().unwrap().is_empty());
}

#[test]
fn audit_finds_what_the_graph_lacks() {
    let t = Tmp::new();
    let store = t.join("store");
    t.write("a.c", "int a(void){return 1;}\n");
    t.write("m.c", "int a(void);\nint main(void){return a()-1;}\n");
    // the program linked under the shim, then audited
    let link_and_audit = || {
        run_ok(
            shimmed(&t, "omnibor-cc", &store)
                .current_dir(t.path())
                .args(["-g", "m.c", "a.o", "-o", "prog"]),
        );
        omnishim(&["audit", "--store"])
            .arg(&store)
            .arg(t.join("prog"))
            .output()
            .unwrap()
    };
    // a.o compiled without the shim: the link lists it, but nothing below it
    run_ok(
        Command::new("gcc")
            .current_dir(t.path())
            .args(["-g", "-c", "a.c"]),
    );
    let out = link_and_audit();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "missing from the graph: {}",
            t.join("a.c").display()
        )),
        "{text}"
    );
    assert!(
        !text.contains(&format!(
            "missing from the graph: {}",
            t.join("m.c").display()
        )),
        "{text}"
    );
    // wrapped, nothing is missing
    run_ok(
        shimmed(&t, "omnibor-cc", &store)
            .current_dir(t.path())
            .args(["-g", "-c", "a.c"]),
    );
    let out = link_and_audit();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
