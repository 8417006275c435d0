use jobs_aws::{DynamoJobStore, Emf, EventBridgeJobEnds, env_parse, env_var, init_tracing, load_sdk_config};
use lambda_runtime::{Error, run, service_fn};

mod handler;
#[cfg(test)]
mod moto_tests;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = load_sdk_config().await;
    let service = handler::CommandService {
        jobs: DynamoJobStore::from_config(&config, env_var("JOBS_TABLE_NAME")?),
        job_ends: EventBridgeJobEnds::from_config(&config, env_var("JOB_EVENTS_BUS_NAME")?),
        retention_days: env_parse("RESULT_RETENTION_DAYS", "a whole number of days")?,
        metrics: Emf::from_env()?,
    };
    run(service_fn(|event| handler::handle(&service, event))).await
}
