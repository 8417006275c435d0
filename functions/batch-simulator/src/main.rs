use jobs_aws::{Emf, S3ResultStore, env_var, init_tracing, load_sdk_config};
use lambda_runtime::{Error, run, service_fn};

mod handler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let bucket = env_var("RESULTS_BUCKET_NAME")?;
    let results = S3ResultStore::from_config(&load_sdk_config().await, bucket);
    let metrics = Emf::from_env()?;
    run(service_fn(|event| handler::simulate_batch(&results, &metrics, event))).await
}
