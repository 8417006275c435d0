//! The token cache: `$XDG_CONFIG_HOME/jobctl/credentials.json` (else
//! `~/.config/jobctl/credentials.json`), one session per API URL and app client.
//! The directory is created 0700 and the file 0600, both at creation (never
//! chmod afterwards), and the file is replaced atomically.
//!
//! The client was called `jobs` before, and kept its tokens in `jobs/`
//! instead of `jobctl/`. While the new file does not exist, that old file is
//! read, so a rename does not sign anyone out; the first write (login,
//! refresh, logout) moves its sessions into the new file and deletes it, so
//! no token is left behind where `logout` would not reach it.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// One signed-in session. Tokens are never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub api_url: String,
    pub client_id: String,
    pub cognito_endpoint: String,
    pub username: String,
    pub id_token: String,
    pub refresh_token: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("api_url", &self.api_url)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    /// Key: `<api URL> <client id>`.
    sessions: BTreeMap<String, Session>,
}

pub struct Cache {
    path: PathBuf,
    /// The file of the client's old name, read while `path` does not exist.
    legacy: Option<PathBuf>,
}

/// The file a read came from: sessions read from the legacy file move to
/// `path` on the next write.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Current,
    Legacy,
}

fn key(api_url: &str, client_id: &str) -> String {
    format!("{api_url} {client_id}")
}

/// The directory under the config directory: the binary's name.
const DIR: &str = "jobctl";
/// The directory of the client's old name, `jobs` (a shell builtin, hence the rename).
const LEGACY_DIR: &str = "jobs";
const FILE: &str = "credentials.json";

/// The user's config directory (`XDG_CONFIG_HOME` if absolute, else `HOME/.config`).
fn config_dir(get: impl Fn(&str) -> Option<String>) -> Result<PathBuf, Error> {
    match get("XDG_CONFIG_HOME").filter(|d| Path::new(d).is_absolute()) {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => match get("HOME").filter(|d| !d.is_empty()) {
            Some(home) => Ok(Path::new(&home).join(".config")),
            None => Err(Error::Usage("neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep the token".into())),
        },
    }
}

/// A cache file's sessions; `None` if it does not exist.
fn read_file(path: &Path) -> Result<Option<File>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::Usage(format!("{} is damaged ({e}); delete it and run `jobctl login`", path.display()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io(format!("cannot read {}: {e}", path.display()))),
    }
}

impl Cache {
    pub fn new(path: PathBuf, legacy: Option<PathBuf>) -> Cache {
        Cache { path, legacy }
    }

    /// The cache at its default place, with the old name's file as fallback.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Cache, Error> {
        let config = config_dir(get)?;
        Ok(Cache::new(config.join(DIR).join(FILE), Some(config.join(LEGACY_DIR).join(FILE))))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sessions, from `path`, else from the legacy file, else none.
    fn read(&self) -> Result<(File, Source), Error> {
        if let Some(file) = read_file(&self.path)? {
            return Ok((file, Source::Current));
        }
        match &self.legacy {
            Some(legacy) => Ok((read_file(legacy)?.unwrap_or_default(), Source::Legacy)),
            None => Ok((File::default(), Source::Current)),
        }
    }

    fn write(&self, file: &File, source: Source) -> Result<(), Error> {
        let io = |what: &str, e: std::io::Error| Error::Io(format!("cannot write {what}: {e}"));
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io(&dir.display().to_string(), e))?;
        let tmp = self.path.with_extension(format!("json.tmp{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let result = (|| {
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(serde_json::to_string_pretty(file).expect("the cache serializes").as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(&self.path.display().to_string(), e));
        }
        if let (Source::Legacy, Some(legacy)) = (source, &self.legacy) {
            // Its sessions are in `path` now. The directory goes only if empty.
            match std::fs::remove_file(legacy) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Io(format!("cannot delete the old {}: {e}", legacy.display())));
                }
                _ => {
                    let _ = legacy.parent().map(std::fs::remove_dir);
                }
            }
        }
        Ok(())
    }

    /// The session for this API and client; without a client id, the only
    /// session for this API, if there is exactly one.
    pub fn get(&self, api_url: &str, client_id: Option<&str>) -> Result<Option<Session>, Error> {
        let (file, _) = self.read()?;
        Ok(match client_id {
            Some(client) => file.sessions.get(&key(api_url, client)).cloned(),
            None => {
                let mut matching = file.sessions.values().filter(|s| s.api_url == api_url);
                match (matching.next(), matching.next()) {
                    (Some(s), None) => Some(s.clone()),
                    _ => None,
                }
            }
        })
    }

    pub fn put(&self, session: Session) -> Result<(), Error> {
        // A damaged file is replaced (login is what its error message asks for).
        let (mut file, source) = self.read().unwrap_or((File::default(), Source::Current));
        file.sessions.insert(key(&session.api_url, &session.client_id), session);
        self.write(&file, source)
    }

    /// Forgets a session; true if there was one.
    pub fn remove(&self, api_url: &str, client_id: &str) -> Result<bool, Error> {
        let (mut file, source) = self.read()?;
        let removed = file.sessions.remove(&key(api_url, client_id)).is_some();
        if removed {
            self.write(&file, source)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn session(api: &str, client: &str, token: &str) -> Session {
        Session {
            api_url: api.into(),
            client_id: client.into(),
            cognito_endpoint: "http://127.0.0.1:4023".into(),
            username: "demo@example.com".into(),
            id_token: token.into(),
            refresh_token: "refresh".into(),
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn file_is_created_0600_in_a_0700_directory() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("config/jobctl/credentials.json"), None);
        // A permissive umask must not matter: the mode is given at creation.
        let old = unsafe { libc::umask(0) };
        let result = cache.put(session("http://a/api", "c1", "t1"));
        unsafe { libc::umask(old) };
        result.unwrap();
        assert_eq!(mode(cache.path()), 0o600);
        assert_eq!(mode(&dir.path().join("config/jobctl")), 0o700);
        // Rewriting keeps the mode, and no temporary file is left behind.
        cache.put(session("http://a/api", "c2", "t2")).unwrap();
        assert_eq!(mode(cache.path()), 0o600);
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("config/jobctl")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("credentials.json")]);
    }

    #[test]
    fn sessions_are_keyed_by_api_and_client() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("credentials.json"), None);
        assert_eq!(cache.get("http://a/api", Some("c1")).unwrap(), None);
        cache.put(session("http://a/api", "c1", "t1")).unwrap();
        cache.put(session("http://b/api", "c1", "t2")).unwrap();
        assert_eq!(cache.get("http://a/api", Some("c1")).unwrap().unwrap().id_token, "t1");
        assert_eq!(cache.get("http://b/api", Some("c1")).unwrap().unwrap().id_token, "t2");
        assert_eq!(cache.get("http://a/api", Some("c2")).unwrap(), None);
        // Without a client id: the only session of that API.
        assert_eq!(cache.get("http://a/api", None).unwrap().unwrap().id_token, "t1");
        cache.put(session("http://a/api", "c2", "t3")).unwrap();
        assert_eq!(cache.get("http://a/api", None).unwrap(), None);
        // Replacing a session.
        cache.put(session("http://a/api", "c1", "t4")).unwrap();
        assert_eq!(cache.get("http://a/api", Some("c1")).unwrap().unwrap().id_token, "t4");
        assert!(cache.remove("http://a/api", "c1").unwrap());
        assert!(!cache.remove("http://a/api", "c1").unwrap());
        assert_eq!(cache.get("http://a/api", Some("c1")).unwrap(), None);
    }

    #[test]
    fn default_place_prefers_xdg_config_home_and_is_named_after_the_binary() {
        let env = |xdg: Option<&str>, home: Option<&str>| {
            let (xdg, home) = (xdg.map(str::to_string), home.map(str::to_string));
            move |k: &str| match k {
                "XDG_CONFIG_HOME" => xdg.clone(),
                "HOME" => home.clone(),
                _ => None,
            }
        };
        let places = |cache: Cache| (cache.path, cache.legacy.unwrap());
        let under =
            |dir: &str| (Path::new(dir).join("jobctl/credentials.json"), Path::new(dir).join("jobs/credentials.json"));
        assert_eq!(places(Cache::from_env(env(Some("/x"), Some("/h"))).unwrap()), under("/x"));
        assert_eq!(places(Cache::from_env(env(None, Some("/h"))).unwrap()), under("/h/.config"));
        // A relative XDG_CONFIG_HOME is ignored, as the spec says.
        assert_eq!(places(Cache::from_env(env(Some("rel"), Some("/h"))).unwrap()), under("/h/.config"));
        assert!(Cache::from_env(env(None, None)).is_err());
    }

    /// A cache whose legacy file (`jobs/credentials.json`) holds a session of API a.
    fn cache_with_legacy_session(dir: &Path) -> Cache {
        let cache = Cache::new(dir.join("jobctl/credentials.json"), Some(dir.join("jobs/credentials.json")));
        Cache::new(dir.join("jobs/credentials.json"), None).put(session("http://a/api", "c1", "old")).unwrap();
        cache
    }

    #[test]
    fn the_old_names_file_is_read_while_the_new_one_does_not_exist() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache_with_legacy_session(dir.path());
        assert_eq!(cache.get("http://a/api", Some("c1")).unwrap().unwrap().id_token, "old");
        // Reading moves nothing.
        assert!(dir.path().join("jobs/credentials.json").exists());
        assert!(!cache.path().exists());
        // Once the new file exists, the old one is not read.
        std::fs::create_dir(dir.path().join("jobctl")).unwrap();
        std::fs::write(cache.path(), r#"{"sessions": {}}"#).unwrap();
        assert_eq!(cache.get("http://a/api", Some("c1")).unwrap(), None);
    }

    #[test]
    fn the_first_write_moves_the_old_sessions_and_deletes_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache_with_legacy_session(dir.path());
        cache.put(session("http://b/api", "c1", "new")).unwrap();
        assert_eq!(cache.get("http://a/api", Some("c1")).unwrap().unwrap().id_token, "old");
        assert_eq!(cache.get("http://b/api", Some("c1")).unwrap().unwrap().id_token, "new");
        assert_eq!(mode(cache.path()), 0o600);
        assert!(!dir.path().join("jobs").exists(), "the old file and its empty directory are gone");
    }

    #[test]
    fn logout_of_an_old_session_leaves_no_token_behind() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache_with_legacy_session(dir.path());
        std::fs::write(dir.path().join("jobs/other-tool.conf"), "").unwrap();
        assert!(cache.remove("http://a/api", "c1").unwrap());
        assert!(!dir.path().join("jobs/credentials.json").exists());
        // A directory with other files in it stays.
        assert!(dir.path().join("jobs/other-tool.conf").exists());
        assert_eq!(cache.get("http://a/api", Some("c1")).unwrap(), None);
        assert!(!std::fs::read_to_string(cache.path()).unwrap().contains("old"));
    }

    #[test]
    fn debug_never_shows_tokens() {
        let s = session("http://a/api", "c1", "secret-id-token");
        let text = format!("{s:?}");
        assert!(!text.contains("secret-id-token") && !text.contains("refresh"), "{text}");
    }

    #[test]
    fn a_damaged_file_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("credentials.json"), None);
        std::fs::write(cache.path(), "not json").unwrap();
        let e = cache.get("http://a/api", Some("c1")).unwrap_err();
        assert!(e.to_string().contains("run `jobctl login`"), "{e}");
    }
}
