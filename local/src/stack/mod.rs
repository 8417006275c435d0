//! The synthesized stacks (`cdktf.out`) and the resolution of `${...}`
//! references in them, per docs/contract.md.

pub mod expr;
mod resolve;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::Value;

pub use resolve::{Dynamic, FieldError, Res, Resolver, function_name_from, lambda_arn, lambda_invoke_arn};

/// The name cdktf gives the data source through which a stack reads another
/// stack's outputs: `cross-stack-reference-input-<construct path>`.
pub const REMOTE_STATE_PREFIX: &str = "cross-stack-reference-input-";

/// One synthesized stack: its `cdk.tf.json` and the directory relative paths
/// in it (e.g. a function's `filename`) are resolved against.
#[derive(Debug)]
pub struct Stack {
    pub name: String,
    pub construct_path: String,
    pub dir: PathBuf,
    pub json: Value,
}

impl Stack {
    /// Resources of one type, in name order.
    pub fn resources<'a>(&'a self, rtype: &str) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.json
            .get("resource")
            .and_then(|r| r.get(rtype))
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v)))
    }

    pub fn resource(&self, rtype: &str, name: &str) -> Option<&Value> {
        self.json.get("resource")?.get(rtype)?.get(name)
    }

    pub fn data(&self, dtype: &str, name: &str) -> Option<&Value> {
        self.json.get("data")?.get(dtype)?.get(name)
    }

    /// The region of the stack's (first) AWS provider, when it is a literal.
    pub fn provider_region(&self) -> Option<&str> {
        let aws = self.json.get("provider")?.get("aws")?;
        let first = match aws {
            Value::Array(a) => a.first()?,
            other => other,
        };
        first.get("region")?.as_str().filter(|r| !r.contains("${"))
    }
}

/// The app stack and every stack it reads outputs from.
#[derive(Debug)]
pub struct Stacks {
    pub out_dir: PathBuf,
    pub app: String,
    pub stacks: BTreeMap<String, Stack>,
}

impl Stacks {
    /// Loads `<out_dir>/stacks/<app>/cdk.tf.json` and, transitively, the
    /// stacks named by its `terraform_remote_state` data sources.
    pub fn load(out_dir: &Path, app: &str) -> anyhow::Result<Stacks> {
        let manifest = read_manifest(out_dir)?;
        let mut stacks = BTreeMap::new();
        let mut todo = vec![app.to_string()];
        while let Some(name) = todo.pop() {
            if stacks.contains_key(&name) {
                continue;
            }
            let stack = load_stack(out_dir, &name, manifest.as_ref())?;
            let referenced: Vec<String> = stack
                .json
                .get("data")
                .and_then(|d| d.get("terraform_remote_state"))
                .and_then(Value::as_object)
                .map(|m| m.keys().filter_map(|k| k.strip_prefix(REMOTE_STATE_PREFIX)).map(str::to_string).collect())
                .unwrap_or_default();
            for path in referenced {
                let dep = stack_name_for_path(manifest.as_ref(), &path);
                if !stacks.contains_key(&dep) {
                    todo.push(dep);
                }
            }
            stacks.insert(name, stack);
        }
        Ok(Stacks { out_dir: out_dir.to_path_buf(), app: app.to_string(), stacks })
    }

    pub fn app(&self) -> &Stack {
        &self.stacks[&self.app]
    }

    pub fn get(&self, name: &str) -> Option<&Stack> {
        self.stacks.get(name)
    }

    /// The stack whose construct path is `path` (the suffix of a remote-state
    /// data source name).
    pub fn by_construct_path(&self, path: &str) -> Option<&Stack> {
        self.stacks.values().find(|s| s.construct_path == path)
    }

    /// The region the stack is written for: the app stack's provider region.
    pub fn region(&self) -> Option<&str> {
        self.app().provider_region()
    }
}

fn read_manifest(out_dir: &Path) -> anyhow::Result<Option<Value>> {
    let path = out_dir.join("manifest.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            Ok(Some(serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn stack_name_for_path(manifest: Option<&Value>, construct_path: &str) -> String {
    manifest
        .and_then(|m| m.get("stacks"))
        .and_then(Value::as_object)
        .and_then(|stacks| {
            stacks
                .iter()
                .find(|(_, s)| s.get("constructPath").and_then(Value::as_str) == Some(construct_path))
                .map(|(name, _)| name.clone())
        })
        .unwrap_or_else(|| construct_path.to_string())
}

fn load_stack(out_dir: &Path, name: &str, manifest: Option<&Value>) -> anyhow::Result<Stack> {
    let entry = manifest.and_then(|m| m.get("stacks")).and_then(|s| s.get(name));
    let rel_file = entry
        .and_then(|e| e.get("synthesizedStackPath"))
        .and_then(Value::as_str)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new("stacks").join(name).join("cdk.tf.json"));
    let file = out_dir.join(&rel_file);
    let dir = entry
        .and_then(|e| e.get("workingDirectory"))
        .and_then(Value::as_str)
        .map(|d| out_dir.join(d))
        .or_else(|| file.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| out_dir.to_path_buf());
    let construct_path = entry.and_then(|e| e.get("constructPath")).and_then(Value::as_str).unwrap_or(name).to_string();
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "stack `{name}` not found: {} does not exist (run the synth first: `cd cdktf && npm run synth`)",
                file.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    let json: Value = serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", file.display()))?;
    if !json.is_object() {
        bail!("{} is not a Terraform JSON object", file.display());
    }
    Ok(Stack { name: name.to_string(), construct_path, dir, json })
}
