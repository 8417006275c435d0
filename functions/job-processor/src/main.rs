use jobs_aws::{
    DynamoJobStore, Emf, LambdaSimulator, SqsRedelivery, env_parse, env_var, init_tracing, load_sdk_config,
};
use jobs_core::processing::RetryPolicy;
use lambda_runtime::{Error, run, service_fn};

mod handler;
#[cfg(test)]
mod moto_tests;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = load_sdk_config().await;
    let max_receive_count: u32 = env_parse("MAX_RECEIVE_COUNT", "a whole number of receives")?;
    if max_receive_count < 2 {
        // One receive runs the job, the last is kept to settle unfinished ones.
        return Err(format!("MAX_RECEIVE_COUNT must be at least 2, got {max_receive_count}").into());
    }
    let processor = handler::Processor {
        store: DynamoJobStore::from_config(&config, env_var("JOBS_TABLE_NAME")?),
        simulator: LambdaSimulator::from_config(&config, env_var("BATCH_SIMULATOR_FUNCTION_NAME")?),
        redelivery: SqsRedelivery::from_config(&config, env_var("JOB_QUEUE_URL")?),
        policy: RetryPolicy {
            max_receive_count,
            backoff_base_seconds: env_parse("RETRY_BACKOFF_BASE_SECONDS", "a whole number of seconds")?,
            backoff_cap_seconds: handler::BACKOFF_CAP_SECONDS,
            result_retention_days: env_parse("RESULT_RETENTION_DAYS", "a whole number of days")?,
        },
        metrics: Emf::from_env()?,
    };
    run(service_fn(|event| handler::process_batch(&processor, event))).await
}
