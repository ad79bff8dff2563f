//! What a server lets a request do: the bearer token every request must
//! carry (compared in constant time, never logged), and the folders paths in
//! requests must lie under.

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use subtle::ConstantTimeEq;

/// The shortest token accepted: guessing one must be hopeless.
const MIN_TOKEN: usize = 16;

/// The secret a client sends as `Authorization: Bearer TOKEN`.
pub struct Token(Vec<u8>);

impl Token {
    /// Reads the token from `path` (its first line, trimmed).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("--token-file {}: cannot read", path.display()))?;
        let token = text.lines().next().unwrap_or_default().trim();
        if token.len() < MIN_TOKEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            bail!(
                "--token-file {}: the token must be at least {MIN_TOKEN} printable characters without spaces \
                 (e.g. `openssl rand -hex 32 > {}`)",
                path.display(),
                path.display()
            );
        }
        Ok(Self(token.as_bytes().to_vec()))
    }

    /// Whether an `Authorization` header value carries this token.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let Some(given) = authorization.and_then(|value| value.strip_prefix(b"Bearer ")) else { return false };
        // Equal lengths are compared in constant time; a length differs in no secret way.
        given.len() == self.0.len() && bool::from(given.ct_eq(&self.0))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// The folders a request's paths must lie under, resolved (symbolic links
/// followed) once at start.
#[derive(Debug, Clone)]
pub struct Roots {
    roots: Vec<PathBuf>,
}

/// Why a path was refused (answered with 403).
#[derive(Debug, Clone, PartialEq)]
pub struct Outside(pub String);

impl Roots {
    pub fn new(dirs: &[PathBuf]) -> Result<Self> {
        let roots = dirs
            .iter()
            .map(|dir| dir.canonicalize().with_context(|| format!("{}: not a folder this server can serve", dir.display())))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { roots })
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.roots
    }

    /// `path` (absolute, or relative to the server's working folder) made
    /// absolute with its links resolved, when it lies under one of the roots.
    /// A `..` anywhere is refused, whatever it would resolve to.
    pub fn admit(&self, key: &str, path: &Path) -> Result<PathBuf, Outside> {
        let refuse = |why: &str| Outside(format!("{key} = {}: {why}", path.display()));
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(refuse("`..` is not allowed in a path"));
        }
        let absolute = std::path::absolute(path).map_err(|_| refuse("not a path"))?;
        // The longest part that exists, links resolved; the rest is yet to be made.
        let mut existing = absolute.as_path();
        let mut rest = Vec::new();
        let resolved = loop {
            match existing.canonicalize() {
                Ok(resolved) => break resolved,
                Err(_) => {
                    let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
                        return Err(refuse("not under a folder this server serves"));
                    };
                    rest.push(name.to_os_string());
                    existing = parent;
                }
            }
        };
        let resolved = rest.iter().rev().fold(resolved, |path, name| path.join(name));
        match self.roots.iter().any(|root| resolved.starts_with(root)) {
            true => Ok(resolved),
            false => Err(refuse(&format!(
                "outside the folders this server serves ({})",
                self.roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_whole_and_short_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        let token = Token::read(&path).unwrap();
        assert!(token.admits(Some(b"Bearer 0123456789abcdef0123")));
        assert!(!token.admits(Some(b"Bearer 0123456789abcdef012")));
        assert!(!token.admits(Some(b"Bearer 0123456789abcdef01234")));
        assert!(!token.admits(Some(b"0123456789abcdef0123")));
        assert!(!token.admits(None));
        assert_eq!(format!("{token:?}"), "Token(…)");
        std::fs::write(&path, "short\n").unwrap();
        assert!(Token::read(&path).unwrap_err().to_string().contains("at least 16"));
    }

    #[test]
    fn paths_outside_the_roots_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("datasets");
        std::fs::create_dir_all(root.join("voc")).unwrap();
        std::fs::create_dir_all(dir.path().join("secret")).unwrap();
        let roots = Roots::new(std::slice::from_ref(&root)).unwrap();
        let canonical = root.canonicalize().unwrap();
        assert_eq!(roots.admit("data.voc", &root.join("voc")).unwrap(), canonical.join("voc"));
        // Not there yet (a synthetic set to generate), under the root.
        assert_eq!(roots.admit("data.ade", &root.join("synth/ade")).unwrap(), canonical.join("synth/ade"));
        assert!(roots.admit("data.voc", &root.join("voc/../../secret")).unwrap_err().0.contains("`..`"));
        assert!(roots.admit("data.voc", &dir.path().join("secret")).unwrap_err().0.contains("outside"));
        assert!(roots.admit("data.voc", Path::new("/etc")).is_err());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
            assert!(roots.admit("data.voc", &root.join("link")).unwrap_err().0.contains("outside"));
        }
    }
}
