//! Credentials the way docker, podman and oras keep them: `$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`: a credential helper named for the registry in `credHelpers`, else
//! an `auths` entry (`auth` = base64 of `user:password`, or `username` and `password`), else
//! the `credsStore` helper. A helper is `docker-credential-<name> get`, the registry host on
//! its stdin, `{"Username","Secret"}` on its stdout. The `docker_credential` crate does the
//! lookup and runs the helper (small, maintained, and it follows docker's rules); here only
//! its errors are made into one line naming the config and the helper.

use docker_credential::{CredentialRetrievalError as E, DockerCredential};
use std::path::PathBuf;

fn config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// User and password for a registry host, when the config has some for it. An unreadable or
/// malformed config, or a helper that fails, is an error naming it (silently going anonymous
/// would hide it); a helper that has nothing for the host means anonymous, as for docker.
pub fn credentials(registry: &str) -> Result<Option<(String, String)>, String> {
    let Some(path) = config_path() else {
        return Ok(None);
    };
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    // parsed here too, for an error with its position and for naming the helper
    let v: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| format!("{}: not a docker config: {e}", path.display()))?;
    let helper = || helper_of(&v, registry);
    let cfg = path.display();
    match docker_credential::get_credential_from_reader(text.as_slice(), registry) {
        Ok(DockerCredential::UsernamePassword(u, p)) => Ok(Some((u, p))),
        Ok(DockerCredential::IdentityToken(_)) => Err(format!(
            "{cfg}: the credentials for {registry} are an identity token (a refresh token to \
             trade at the registry's token service), which omnishim's registry client cannot \
             use: log in with a user name and password or access token"
        )),
        Err(E::NoCredentialConfigured) => Ok(None),
        Err(E::HelperFailure { stdout, stderr, .. }) => {
            // docker's helpers say so when they hold nothing for the host
            if stdout.contains("credentials not found") || stderr.contains("credentials not found")
            {
                return Ok(None);
            }
            let why = [stderr.trim(), stdout.trim()]
                .into_iter()
                .find(|s| !s.is_empty())
                .and_then(|s| s.lines().next())
                .unwrap_or("no message")
                .to_string();
            Err(format!(
                "{} get (for {registry}, named in {cfg}): failed: {why}",
                helper()
            ))
        }
        Err(E::HelperCommunicationError) => Err(format!(
            "{} get (for {registry}, named in {cfg}): cannot run it (not on PATH?)",
            helper()
        )),
        Err(E::MalformedHelperResponse) => Err(format!(
            "{} get (for {registry}, named in {cfg}): its answer is not JSON {{\"Username\",\"Secret\"}}",
            helper()
        )),
        Err(E::CredentialDecodingError) => Err(format!(
            "{cfg}: auths: the auth of {registry} is not base64 of `user:password`"
        )),
        Err(E::CredentialMismatchError) => Err(format!(
            "{cfg}: auths: the auth of {registry} does not match its username and password"
        )),
        Err(e) => Err(format!("{cfg}: not a docker config: {e}")),
    }
}

/// The helper program the config names for a registry (for messages).
fn helper_of(v: &serde_json::Value, registry: &str) -> String {
    let name = v["credHelpers"][registry]
        .as_str()
        .filter(|s| !s.is_empty())
        .or_else(|| v["credsStore"].as_str())
        .unwrap_or("?");
    format!("docker-credential-{name}")
}
