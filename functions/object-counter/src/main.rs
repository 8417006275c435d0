use jobs_aws::{DynamoCounterStore, env_var, init_tracing, load_sdk_config};
use lambda_runtime::{Error, run, service_fn};

mod handler;
mod notification;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = load_sdk_config().await;
    let store = DynamoCounterStore::from_config(&config, env_var("COUNTERS_TABLE_NAME")?);
    run(service_fn(|event| handler::count_objects(&store, event))).await
}
