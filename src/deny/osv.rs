//! OSV entries (https://ossf.github.io/osv-schema/): the `GIT` ranges of a repository, and
//! the entry's labels (its `id`, then its `aliases`).

use super::{DenyError, Range};
use serde_json::Value;
use std::path::Path;

/// What one entry says about one repository.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    /// `id`, then every alias.
    pub labels: Vec<String>,
    pub ranges: Vec<Range>,
}

/// A repository URL reduced to host and path, so that `https://github.com/o/r.git`,
/// `git@github.com:o/r` and `ssh://git@github.com/o/r/` compare equal.
pub fn normalize_url(u: &str) -> String {
    let mut s = u.trim().to_string();
    if let Some((scheme, rest)) = s.split_once("://") {
        if !scheme.contains('/') {
            s = rest.to_string();
        }
    } else if let Some((host, path)) = s.split_once(':') {
        // scp-like `user@host:path`
        if !host.contains('/') {
            s = format!("{host}/{path}");
        }
    }
    if let Some((user, rest)) = s.split_once('@') {
        if !user.contains('/') {
            s = rest.to_string();
        }
    }
    let s = s.trim_end_matches('/');
    let s = s.strip_suffix(".git").unwrap_or(s);
    let (host, path) = s.split_once('/').unwrap_or((s, ""));
    // a host's port is not part of the repository's name for matching purposes
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    format!("{host}/{path}")
}

fn bad(path: &Path, msg: impl Into<String>) -> DenyError {
    DenyError::Osv {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Parse an entry and keep its `GIT` ranges whose `repo` is one of `urls`.
pub fn parse(path: &Path, text: &str, urls: &[String]) -> Result<Entry, DenyError> {
    let v: Value = serde_json::from_str(text).map_err(|e| bad(path, format!("not JSON: {e}")))?;
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(path, "no \"id\" string: not an OSV entry"))?
        .to_string();
    let mut labels = vec![id.clone()];
    for a in v
        .get("aliases")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let a = a
            .as_str()
            .ok_or_else(|| bad(path, "\"aliases\" holds a non-string"))?;
        labels.push(a.to_string());
    }
    for l in &mut labels {
        *l = super::check_label(l).map_err(|e| bad(path, e.to_string()))?;
    }
    let labels = super::dedup(labels);
    let wanted: Vec<String> = urls.iter().map(|u| normalize_url(u)).collect();
    let mut ranges = Vec::new();
    let mut repos_seen = Vec::new();
    for aff in v
        .get("affected")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for r in aff
            .get("ranges")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if r.get("type").and_then(Value::as_str) != Some("GIT") {
                continue;
            }
            let repo = r
                .get("repo")
                .and_then(Value::as_str)
                .ok_or_else(|| bad(path, "a GIT range without \"repo\""))?;
            repos_seen.push(repo.to_string());
            if !wanted.contains(&normalize_url(repo)) {
                continue;
            }
            let mut range = Range::default();
            for e in r
                .get("events")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let obj = e
                    .as_object()
                    .filter(|o| o.len() == 1)
                    .ok_or_else(|| bad(path, format!("event {e}: must hold exactly one field")))?;
                let Some((k, val)) = obj.iter().next() else {
                    continue;
                };
                let val = val
                    .as_str()
                    .ok_or_else(|| bad(path, format!("event {e}: the value is not a string")))?
                    .to_string();
                match k.as_str() {
                    "introduced" => range.introduced.push(val),
                    "fixed" => range.fixed.push(val),
                    "last_affected" => range.last_affected.push(val),
                    "limit" if val.contains('*') => {} // infinity: no limit
                    "limit" => range.limit.push(val),
                    other => return Err(bad(path, format!("event {e}: unknown event {other:?}"))),
                }
            }
            if range.introduced.is_empty() {
                return Err(bad(path, "a GIT range without an \"introduced\" event"));
            }
            if !range.fixed.is_empty() && !range.last_affected.is_empty() {
                return Err(bad(
                    path,
                    "a range holds both \"fixed\" and \"last_affected\" events (the schema allows one kind)",
                ));
            }
            // "0" introduces at every root: it stands alone
            if range.introduced.iter().any(|i| i == "0") {
                range.introduced.clear();
            }
            ranges.push(range);
        }
    }
    if ranges.is_empty() {
        let seen = if repos_seen.is_empty() {
            "it has no GIT range".to_string()
        } else {
            format!("its GIT ranges are for {}", repos_seen.join(", "))
        };
        return Err(bad(
            path,
            format!(
                "no GIT range for this repository ({}): {seen} (give --repo-url to say which it is)",
                if urls.is_empty() {
                    "it has no remote".to_string()
                } else {
                    urls.join(", ")
                }
            ),
        ));
    }
    Ok(Entry { id, labels, ranges })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_one_repository_compare_equal() {
        let a = normalize_url("https://github.com/lua/lua.git");
        for u in [
            "https://github.com/lua/lua",
            "git@github.com:lua/lua.git",
            "ssh://git@github.com/lua/lua/",
            "http://GitHub.com/lua/lua",
        ] {
            assert_eq!(normalize_url(u), a, "{u}");
        }
        assert_ne!(normalize_url("https://github.com/lua/luac"), a);
    }

    #[test]
    fn events_become_a_range_and_labels_are_id_then_aliases() {
        let text = r#"{"id":"OSV-1","aliases":["CVE-2022-1","CVE-2022-1"],"affected":[{"ranges":[
            {"type":"GIT","repo":"https://x.org/r","events":[{"introduced":"0"},{"fixed":"abc"},{"fixed":"def"},{"limit":"*"}]},
            {"type":"GIT","repo":"https://other.org/r","events":[{"introduced":"0"}]},
            {"type":"SEMVER","events":[{"introduced":"1.0"}]}]}]}"#;
        let e = parse(Path::new("e.json"), text, &["https://x.org/r.git".into()]).unwrap();
        assert_eq!(e.labels, vec!["OSV-1", "CVE-2022-1"]);
        assert_eq!(e.ranges.len(), 1);
        assert!(e.ranges[0].introduced.is_empty());
        assert_eq!(e.ranges[0].fixed, vec!["abc", "def"]);
        assert!(e.ranges[0].limit.is_empty());
        let err = parse(Path::new("e.json"), text, &["https://y.org/r".into()]).unwrap_err();
        assert!(err.to_string().contains("no GIT range"), "{err}");
    }
}
