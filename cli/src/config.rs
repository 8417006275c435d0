//! Where the API and the user pool are: flags, then environment variables,
//! then an outputs file (`JOBS_OUTPUTS`, else `.local/outputs.json` in the
//! current directory when it exists, as `./just up` writes it).

use std::path::{Path, PathBuf};

use crate::error::Error;

/// The default outputs file of the local target (`./just up`).
pub const DEFAULT_OUTPUTS: &str = ".local/outputs.json";

/// One source of settings; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layer {
    pub api_url: Option<String>,
    pub client_id: Option<String>,
    pub cognito_endpoint: Option<String>,
    pub region: Option<String>,
    pub username: Option<String>,
}

impl Layer {
    /// The environment variables (JOBS_API_URL, JOBS_CLIENT_ID,
    /// JOBS_COGNITO_ENDPOINT, JOBS_REGION, JOBS_USERNAME); empty ones are unset.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Layer {
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        Layer {
            api_url: var("JOBS_API_URL"),
            client_id: var("JOBS_CLIENT_ID"),
            cognito_endpoint: var("JOBS_COGNITO_ENDPOINT"),
            region: var("JOBS_REGION"),
            username: var("JOBS_USERNAME"),
        }
    }

    /// The keys of an outputs file (`apiUrl`, `userPoolClientId`,
    /// `cognitoEndpoint`, `region`, `username`); never the password.
    pub fn from_outputs(text: &str, path: &Path) -> Result<Layer, Error> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::Usage(format!("{} is not an outputs file: {e}", path.display())))?;
        if !value.is_object() {
            return Err(Error::Usage(format!("{} is not an outputs file: not a JSON object", path.display())));
        }
        let key = |k: &str| value.get(k).and_then(|v| v.as_str()).filter(|v| !v.is_empty()).map(str::to_string);
        Ok(Layer {
            api_url: key("apiUrl"),
            client_id: key("userPoolClientId"),
            cognito_endpoint: key("cognitoEndpoint"),
            region: key("region"),
            username: key("username"),
        })
    }
}

/// Which outputs file to read: `--outputs`/`JOBS_OUTPUTS` (must exist), else
/// `.local/outputs.json` under `cwd` if it exists.
pub fn outputs_layer(explicit: Option<&Path>, cwd: &Path) -> Result<Option<(PathBuf, Layer)>, Error> {
    let (path, required) = match explicit {
        Some(p) => (p.to_path_buf(), true),
        None => (cwd.join(DEFAULT_OUTPUTS), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some((path.clone(), Layer::from_outputs(&text, &path)?))),
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Usage(format!(
            "cannot read the outputs file {}: {e} (is the local system running? `./just up`)",
            path.display()
        ))),
    }
}

/// The resolved settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub api_url: Option<String>,
    pub client_id: Option<String>,
    pub cognito_endpoint: Option<String>,
    pub username: Option<String>,
}

/// Resolves the layers, first one wins per setting. The Cognito endpoint of a
/// layer is its own `cognito_endpoint`, else derived from its region; a
/// deployed API URL names its region too
/// (`https://<id>.execute-api.<region>.amazonaws.com/<stage>`), the last resort.
pub fn resolve(layers: &[Layer]) -> Config {
    let first = |f: fn(&Layer) -> Option<String>| layers.iter().find_map(f);
    let api_url = first(|l| l.api_url.clone()).map(|u| u.trim_end_matches('/').to_string());
    let cognito_endpoint = first(|l| l.cognito_endpoint.clone().or_else(|| l.region.as_deref().map(cognito_url)))
        .or_else(|| api_url.as_deref().and_then(region_of_api_url).map(|r| cognito_url(&r)));
    Config {
        api_url,
        client_id: first(|l| l.client_id.clone()),
        cognito_endpoint,
        username: first(|l| l.username.clone()),
    }
}

/// Cognito's public endpoint in a region.
pub fn cognito_url(region: &str) -> String {
    format!("https://cognito-idp.{region}.amazonaws.com/")
}

/// The region in an API Gateway URL, if it is one.
pub fn region_of_api_url(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split(['/', ':']).next()?;
    let mut labels = host.split('.');
    let (_id, service, region) = (labels.next()?, labels.next()?, labels.next()?);
    (service == "execute-api" && !region.is_empty()).then(|| region.to_string())
}

impl Config {
    pub fn api_url(&self) -> Result<&str, Error> {
        self.api_url.as_deref().ok_or_else(|| {
            Error::Usage(
                "no API URL: pass --api-url, set JOBS_API_URL or JOBS_OUTPUTS, or start the local system (`./just up` \
                 writes .local/outputs.json)"
                    .into(),
            )
        })
    }

    pub fn client_id(&self) -> Result<&str, Error> {
        self.client_id.as_deref().ok_or_else(|| {
            Error::Usage(
                "no user pool client id: pass --client-id, set JOBS_CLIENT_ID or JOBS_OUTPUTS, or start the local \
                 system (`./just up` writes .local/outputs.json)"
                    .into(),
            )
        })
    }

    pub fn cognito_endpoint(&self) -> Result<&str, Error> {
        self.cognito_endpoint.as_deref().ok_or_else(|| {
            Error::Usage(
                "no Cognito endpoint: pass --region or --cognito-endpoint, or set JOBS_REGION or JOBS_COGNITO_ENDPOINT"
                    .into(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(api: &str, client: &str) -> Layer {
        Layer { api_url: Some(api.into()), client_id: Some(client.into()), ..Layer::default() }
    }

    #[test]
    fn flags_beat_env_beat_outputs() {
        let flags = Layer { api_url: Some("http://flag/api/".into()), ..Layer::default() };
        let env = layer("http://env/api", "env-client");
        let outputs = Layer {
            username: Some("demo@example.com".into()),
            cognito_endpoint: Some("http://127.0.0.1:4023".into()),
            ..layer("http://outputs/api", "outputs-client")
        };
        let c = resolve(&[flags, env, outputs]);
        assert_eq!(c.api_url.as_deref(), Some("http://flag/api"));
        assert_eq!(c.client_id.as_deref(), Some("env-client"));
        assert_eq!(c.cognito_endpoint.as_deref(), Some("http://127.0.0.1:4023"));
        assert_eq!(c.username.as_deref(), Some("demo@example.com"));
    }

    #[test]
    fn a_region_in_an_earlier_layer_beats_a_later_endpoint() {
        let env = Layer { region: Some("eu-west-1".into()), ..Layer::default() };
        let outputs = Layer { cognito_endpoint: Some("http://127.0.0.1:4023".into()), ..Layer::default() };
        let c = resolve(&[Layer::default(), env, outputs]);
        assert_eq!(c.cognito_endpoint.as_deref(), Some("https://cognito-idp.eu-west-1.amazonaws.com/"));
        // Within a layer, the endpoint beats the region.
        let both =
            Layer { region: Some("eu-west-1".into()), cognito_endpoint: Some("http://x".into()), ..Layer::default() };
        assert_eq!(resolve(&[both]).cognito_endpoint.as_deref(), Some("http://x"));
    }

    #[test]
    fn region_from_a_deployed_api_url() {
        let c = resolve(&[Layer {
            api_url: Some("https://abc123.execute-api.us-west-2.amazonaws.com/dev".into()),
            ..Layer::default()
        }]);
        assert_eq!(c.cognito_endpoint.as_deref(), Some("https://cognito-idp.us-west-2.amazonaws.com/"));
        assert_eq!(region_of_api_url("http://127.0.0.1:4010/api"), None);
        assert!(resolve(&[Layer::default()]).cognito_endpoint().is_err());
    }

    #[test]
    fn env_layer_ignores_empty_values() {
        let env = Layer::from_env(|k| match k {
            "JOBS_API_URL" => Some("http://env/api".into()),
            "JOBS_CLIENT_ID" => Some("".into()),
            _ => None,
        });
        assert_eq!(env.api_url.as_deref(), Some("http://env/api"));
        assert_eq!(env.client_id, None);
    }

    #[test]
    fn outputs_file_default_and_explicit() {
        let dir = tempfile::tempdir().unwrap();
        // No default file: nothing, no error.
        assert_eq!(outputs_layer(None, dir.path()).unwrap(), None);
        // An explicit file that is missing is an error.
        let missing = dir.path().join("nope.json");
        let e = outputs_layer(Some(&missing), dir.path()).unwrap_err();
        assert!(e.to_string().contains("nope.json"), "{e}");

        std::fs::create_dir(dir.path().join(".local")).unwrap();
        std::fs::write(
            dir.path().join(DEFAULT_OUTPUTS),
            r#"{"apiUrl": "http://127.0.0.1:4010/api", "userPoolClientId": "c1", "cognitoEndpoint": "http://127.0.0.1:4023",
                "region": "us-east-1", "username": "demo@example.com", "password": "secret"}"#,
        )
        .unwrap();
        let (path, l) = outputs_layer(None, dir.path()).unwrap().unwrap();
        assert!(path.ends_with(DEFAULT_OUTPUTS));
        assert_eq!(l.api_url.as_deref(), Some("http://127.0.0.1:4010/api"));
        assert_eq!(l.client_id.as_deref(), Some("c1"));
        assert_eq!(l.username.as_deref(), Some("demo@example.com"));

        std::fs::write(&missing, "[]").unwrap();
        assert!(outputs_layer(Some(&missing), dir.path()).is_err());
    }
}
