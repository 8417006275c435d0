//! The token cache: `$XDG_CONFIG_HOME/jobs/credentials.json` (else
//! `~/.config/jobs/credentials.json`), one session per API URL and app client.
//! The directory is created 0700 and the file 0600, both at creation (never
//! chmod afterwards), and the file is replaced atomically.

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
}

fn key(api_url: &str, client_id: &str) -> String {
    format!("{api_url} {client_id}")
}

impl Cache {
    pub fn new(path: PathBuf) -> Cache {
        Cache { path }
    }

    /// The cache file's path from the environment (`XDG_CONFIG_HOME`, `HOME`).
    pub fn default_path(get: impl Fn(&str) -> Option<String>) -> Result<PathBuf, Error> {
        let config = match get("XDG_CONFIG_HOME").filter(|d| Path::new(d).is_absolute()) {
            Some(dir) => PathBuf::from(dir),
            None => match get("HOME").filter(|d| !d.is_empty()) {
                Some(home) => Path::new(&home).join(".config"),
                None => {
                    return Err(Error::Usage(
                        "neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep the token".into(),
                    ));
                }
            },
        };
        Ok(config.join("jobs").join("credentials.json"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<File, Error> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::Usage(format!("{} is damaged ({e}); delete it and run `jobs login`", self.path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File::default()),
            Err(e) => Err(Error::Io(format!("cannot read {}: {e}", self.path.display()))),
        }
    }

    fn write(&self, file: &File) -> Result<(), Error> {
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
        Ok(())
    }

    /// The session for this API and client; without a client id, the only
    /// session for this API, if there is exactly one.
    pub fn get(&self, api_url: &str, client_id: Option<&str>) -> Result<Option<Session>, Error> {
        let file = self.read()?;
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
        let mut file = self.read().unwrap_or_default();
        file.sessions.insert(key(&session.api_url, &session.client_id), session);
        self.write(&file)
    }

    /// Forgets a session; true if there was one.
    pub fn remove(&self, api_url: &str, client_id: &str) -> Result<bool, Error> {
        let mut file = self.read()?;
        let removed = file.sessions.remove(&key(api_url, client_id)).is_some();
        if removed {
            self.write(&file)?;
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
        let cache = Cache::new(dir.path().join("config/jobs/credentials.json"));
        // A permissive umask must not matter: the mode is given at creation.
        let old = unsafe { libc::umask(0) };
        let result = cache.put(session("http://a/api", "c1", "t1"));
        unsafe { libc::umask(old) };
        result.unwrap();
        assert_eq!(mode(cache.path()), 0o600);
        assert_eq!(mode(&dir.path().join("config/jobs")), 0o700);
        // Rewriting keeps the mode, and no temporary file is left behind.
        cache.put(session("http://a/api", "c2", "t2")).unwrap();
        assert_eq!(mode(cache.path()), 0o600);
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("config/jobs")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("credentials.json")]);
    }

    #[test]
    fn sessions_are_keyed_by_api_and_client() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("credentials.json"));
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
    fn default_path_prefers_xdg_config_home() {
        let env = |xdg: Option<&str>, home: Option<&str>| {
            let (xdg, home) = (xdg.map(str::to_string), home.map(str::to_string));
            move |k: &str| match k {
                "XDG_CONFIG_HOME" => xdg.clone(),
                "HOME" => home.clone(),
                _ => None,
            }
        };
        assert_eq!(Cache::default_path(env(Some("/x"), Some("/h"))).unwrap(), Path::new("/x/jobs/credentials.json"));
        assert_eq!(Cache::default_path(env(None, Some("/h"))).unwrap(), Path::new("/h/.config/jobs/credentials.json"));
        // A relative XDG_CONFIG_HOME is ignored, as the spec says.
        assert_eq!(
            Cache::default_path(env(Some("rel"), Some("/h"))).unwrap(),
            Path::new("/h/.config/jobs/credentials.json")
        );
        assert!(Cache::default_path(env(None, None)).is_err());
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
        let cache = Cache::new(dir.path().join("credentials.json"));
        std::fs::write(cache.path(), "not json").unwrap();
        let e = cache.get("http://a/api", Some("c1")).unwrap_err();
        assert!(e.to_string().contains("jobs login"), "{e}");
    }
}
