use jobs_aws::{
    DynamoJobStore, Emf, SecretsManagerSecret, SqsRedelivery, env_var, init_tracing, load_sdk_config,
    webhook_destinations,
};
use lambda_runtime::{Error, run, service_fn};

mod handler;
mod http;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = load_sdk_config().await;
    let destinations = webhook_destinations()?;
    let sender = handler::Sender {
        jobs: DynamoJobStore::from_config(&config, env_var("JOBS_TABLE_NAME")?),
        redelivery: SqsRedelivery::from_config(&config, env_var("WEBHOOK_QUEUE_URL")?),
        http: http::HttpsWebhooks::new(destinations, http::POST_TIMEOUT)?,
        // Read on the first delivery, not at start (jobs_aws::secrets).
        secret: SecretsManagerSecret::new(&config, env_var("WEBHOOK_SIGNING_SECRET_ID")?),
        schedule: handler::schedule_from_env()?,
        destinations,
        metrics: Emf::from_env()?,
    };
    run(service_fn(|event| handler::deliver_batch(&sender, event))).await
}
