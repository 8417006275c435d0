//! Swapping a running function's code, like Lambda's UpdateFunctionCode
//! (`PUT /2015-03-31/functions/{name}/code` with `{"ZipFile": base64}`):
//! the new zip is extracted into a fresh task root (never over the one
//! running instances use), new instances start from it, idle instances are
//! stopped at once, and busy ones finish their invocation on the old code,
//! then stop instead of taking the next one (`Pool::release`). Nothing is
//! refused or lost meanwhile: an invocation that finds no idle instance
//! starts one from the new code.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::{LambdaService, lock};
use crate::awserror::AwsError;
use crate::httpx::{self, Body};

/// Lambda's limit for a zip uploaded directly (50 MB), base64-encoded in JSON.
pub const ZIP_FILE_REQUEST_LIMIT: usize = 70 * 1024 * 1024;

/// The code a function's new instances run.
#[derive(Debug, Default)]
pub(super) struct Code {
    /// Where `bootstrap` is run from.
    pub task_root: PathBuf,
    /// 0 for the code the service started with, then one more per update.
    pub generation: u64,
    /// The last generation handed to an update (some may still be extracting).
    allocated: u64,
    /// Task roots replaced by an update, removed once no instance runs them.
    replaced: Vec<(u64, PathBuf)>,
}

impl Code {
    pub fn new(task_root: &Path) -> Code {
        Code { task_root: task_root.to_path_buf(), ..Code::default() }
    }
}

/// What an update did.
#[derive(Debug, Clone)]
pub struct CodeUpdate {
    pub task_root: PathBuf,
    pub code_size: usize,
    /// Idle instances of the previous code, stopped.
    pub retired_idle: usize,
    /// Instances of the previous code still running an invocation (or
    /// starting for one): each stops when it has answered.
    pub retiring_busy: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateCodeError {
    #[error("function not found: {0}")]
    NotFound(String),
    /// The zip is unusable (not a zip, no `bootstrap`): the code in place
    /// keeps serving.
    #[error("{0}")]
    InvalidZip(String),
    /// Another update of the same function finished first and is newer.
    #[error("a newer update of {0} finished first; this one was dropped")]
    Superseded(String),
}

impl LambdaService {
    /// Makes `zip` the code of `name`'s new instances (see the module doc).
    pub async fn update_code(&self, name: &str, zip: Bytes) -> Result<CodeUpdate, UpdateCodeError> {
        let pool = self.inner.pools.get(name).cloned().ok_or_else(|| UpdateCodeError::NotFound(name.to_string()))?;
        let generation = {
            let mut st = lock(&pool.state);
            st.code.allocated = st.code.allocated.max(st.code.generation) + 1;
            st.code.allocated
        };
        let mut root = pool.spec.task_root.clone().into_os_string();
        root.push(format!(".v{generation}"));
        let task_root = PathBuf::from(root);
        let code_size = zip.len();
        let dest = task_root.clone();
        let extracted = tokio::task::spawn_blocking(move || extract_bytes(&zip, &dest))
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("extraction panicked: {e}")));
        if let Err(e) = extracted {
            let _ = std::fs::remove_dir_all(&task_root);
            return Err(UpdateCodeError::InvalidZip(format!(
                "the new code of {name} was refused, the previous code keeps serving: {e:#}"
            )));
        }
        let (retired, retiring_busy, unused_roots) = {
            let mut st = lock(&pool.state);
            if generation < st.code.generation {
                drop(st);
                let _ = std::fs::remove_dir_all(&task_root);
                return Err(UpdateCodeError::Superseded(name.to_string()));
            }
            let previous = std::mem::replace(&mut st.code.task_root, task_root.clone());
            let previous_generation = std::mem::replace(&mut st.code.generation, generation);
            st.code.replaced.push((previous_generation, previous));
            let retired: Vec<_> = st.idle.drain(..).collect();
            for i in &retired {
                st.instances.remove(&i.id);
            }
            let running: Vec<u64> = st.instances.values().map(|i| i.generation).collect();
            let (in_use, unused) =
                std::mem::take(&mut st.code.replaced).into_iter().partition(|(g, _)| running.contains(g));
            st.code.replaced = in_use;
            (retired, running.len(), unused)
        };
        for i in &retired {
            i.kill.notify_one();
        }
        for (_, root) in unused_roots {
            let _ = std::fs::remove_dir_all(root);
        }
        pool.log_line(&format!(
            "code updated: {code_size} bytes in {}; {} idle instances stopped, {retiring_busy} stop after their invocation",
            task_root.display(),
            retired.len()
        ));
        Ok(CodeUpdate { task_root, code_size, retired_idle: retired.len(), retiring_busy })
    }
}

fn extract_bytes(zip: &[u8], dest: &Path) -> anyhow::Result<()> {
    let file = dest.with_extension("upload.zip");
    std::fs::write(&file, zip)?;
    let result = crate::package::extract(&file, dest);
    let _ = std::fs::remove_file(&file);
    result
}

/// `PUT /2015-03-31/functions/{name}/code` with `{"ZipFile": "<base64>"}`
/// (what `aws lambda update-function-code --zip-file fileb://...` sends).
/// Answers a subset of Lambda's FunctionConfiguration, plus `LocalCodeSwap`:
/// what the swap did to the instances.
pub async fn update_function_code<B>(service: &LambdaService, name: &str, body: B) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let function = crate::stack::function_name_from(name).to_string();
    let body = match http_body_util::Limited::new(body, ZIP_FILE_REQUEST_LIMIT).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestTooLargeException",
                &format!("cannot read the request (at most {ZIP_FILE_REQUEST_LIMIT} bytes): {e}"),
            );
        }
    };
    let zip = match serde_json::from_slice::<Value>(&body).ok().as_ref().and_then(|v| v["ZipFile"].as_str()) {
        Some(b64) => match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(zip) => Bytes::from(zip),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameterValueException",
                    &format!("ZipFile is not base64: {e}"),
                );
            }
        },
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                "the body must be JSON with ZipFile, the zip in base64 (S3Bucket/S3Key and ImageUri are not supported locally)",
            );
        }
    };
    match service.update_code(&function, zip).await {
        Ok(update) => httpx::json_response(
            StatusCode::OK,
            &json!({
                "FunctionName": function,
                "FunctionArn": service.function_arn(&function),
                "CodeSize": update.code_size,
                "State": "Active",
                "LastUpdateStatus": "Successful",
                "LocalCodeSwap": {
                    "taskRoot": update.task_root,
                    "retiredIdleInstances": update.retired_idle,
                    "retiringBusyInstances": update.retiring_busy,
                },
            }),
        ),
        Err(UpdateCodeError::NotFound(_)) => error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {}", service.function_arn(&function)),
        ),
        Err(e @ UpdateCodeError::InvalidZip(_)) => {
            error(StatusCode::BAD_REQUEST, "InvalidParameterValueException", &e.to_string())
        }
        Err(e @ UpdateCodeError::Superseded(_)) => {
            error(StatusCode::CONFLICT, "ResourceConflictException", &e.to_string())
        }
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    AwsError { status, kind, message, query_error: None }.response("lambda", &Method::PUT)
}
