use jobs_aws::{DynamoCounterStore, DynamoJobStore, ResultLinks, env_parse, env_var, init_tracing, load_sdk_config};
use lambda_runtime::{Error, run, service_fn};

mod handler;
#[cfg(test)]
mod moto_tests;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = load_sdk_config().await;
    let service = handler::StatusService {
        jobs: DynamoJobStore::from_config(&config, env_var("JOBS_TABLE_NAME")?),
        // Links to the bucket recorded on each job, signed with sessions of
        // the link role, whose expiry is known (jobs_aws::links).
        results: ResultLinks::from_config(&config, env_var("RESULT_LINK_ROLE_ARN")?).await,
        counters: DynamoCounterStore::from_config(&config, env_var("COUNTERS_TABLE_NAME")?),
        results_bucket: env_var("RESULTS_BUCKET_NAME")?,
        link_ttl_seconds: env_parse("PRESIGNED_URL_TTL_SECONDS", "a whole number of seconds")?,
    };
    run(service_fn(|event| handler::handle(&service, event))).await
}
