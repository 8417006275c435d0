use jobs_aws::{
    DynamoIdempotencyKeys, DynamoJobStore, Emf, EventBridgeJobEnds, SqsJobQueue, env_parse, env_var, init_tracing,
    load_sdk_config, webhook_destinations,
};
use lambda_runtime::{Error, run, service_fn};

mod handler;
#[cfg(test)]
mod moto_tests;
mod submit;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = load_sdk_config().await;
    let service = handler::CommandService {
        jobs: DynamoJobStore::from_config(&config, env_var("JOBS_TABLE_NAME")?),
        keys: DynamoIdempotencyKeys::from_config(&config, env_var("IDEMPOTENCY_TABLE_NAME")?),
        queue: SqsJobQueue::from_config(&config, env_var("JOB_QUEUE_URL")?),
        submits: submit::SubmitSettings {
            destinations: webhook_destinations()?,
            max_message_bytes: env_parse("MAX_MESSAGE_BYTES", "a number of bytes")?,
        },
        job_ends: EventBridgeJobEnds::from_config(&config, env_var("JOB_EVENTS_BUS_NAME")?),
        retention_days: env_parse("RESULT_RETENTION_DAYS", "a whole number of days")?,
        metrics: Emf::from_env()?,
    };
    run(service_fn(|event| handler::handle(&service, event))).await
}
