//! Credentials the way docker, podman and oras keep them: `$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`, `auths.<registry>.auth` = base64 of `user:password` (or
//! `username` and `password` fields). Credential helpers (`credsStore`) are not run.

use base64::Engine as _;
use std::path::PathBuf;

fn config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// The host part of an `auths` key (`https://host:port/v1/` or `host:port`).
fn host_of(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// User and password for a registry host, when the config names it. An unreadable or
/// malformed config is an error naming it (silently going anonymous would hide it).
pub fn credentials(registry: &str) -> Result<Option<(String, String)>, String> {
    let Some(path) = config_path() else {
        return Ok(None);
    };
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let v: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| format!("{}: not a docker config: {e}", path.display()))?;
    let Some(auths) = v["auths"].as_object() else {
        return Ok(None);
    };
    for (key, entry) in auths {
        if host_of(key) != registry {
            continue;
        }
        if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
            return Ok(Some((u.to_string(), p.to_string())));
        }
        let Some(auth) = entry["auth"].as_str() else {
            continue;
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| format!("{}: auths.{key}.auth: not base64: {e}", path.display()))?;
        let raw = String::from_utf8_lossy(&raw);
        let Some((u, p)) = raw.split_once(':') else {
            return Err(format!(
                "{}: auths.{key}.auth: not `user:password`",
                path.display()
            ));
        };
        return Ok(Some((u.to_string(), p.to_string())));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosts() {
        assert_eq!(
            super::host_of("https://index.docker.io/v1/"),
            "index.docker.io"
        );
        assert_eq!(super::host_of("localhost:5000"), "localhost:5000");
    }
}
