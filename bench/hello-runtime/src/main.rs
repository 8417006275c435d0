//! The bare runtime: no SDK clients, no tracing subscriber, no configuration.
//! `just bench` times its start to the first Runtime API `next` as the floor
//! the real functions' cold init is compared with.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<Value>| async move { Ok::<Value, Error>(event.payload) })).await
}
