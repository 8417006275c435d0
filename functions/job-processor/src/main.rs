use jobs_aws::{
    DynamoJobStore, Emf, EventBridgeJobEnds, LambdaSimulator, LazyResultRemover, SqsRedelivery, env_var, init_tracing,
    load_sdk_config, webhook_destinations,
};
use lambda_runtime::{Error, run, service_fn};

mod handler;
#[cfg(test)]
mod moto_tests;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = load_sdk_config().await;
    let processor = handler::Processor {
        store: DynamoJobStore::from_config(&config, env_var("JOBS_TABLE_NAME")?),
        simulator: LambdaSimulator::from_config(&config, env_var("BATCH_SIMULATOR_FUNCTION_NAME")?),
        results: LazyResultRemover::new(&config, env_var("RESULTS_BUCKET_NAME")?),
        redelivery: SqsRedelivery::from_config(&config, env_var("JOB_QUEUE_URL")?),
        job_ends: EventBridgeJobEnds::from_config(&config, env_var("JOB_EVENTS_BUS_NAME")?),
        policy: handler::retry_policy_from_env()?,
        destinations: webhook_destinations()?,
        metrics: Emf::from_env()?,
    };
    run(service_fn(|event| handler::process_batch(&processor, event))).await
}
