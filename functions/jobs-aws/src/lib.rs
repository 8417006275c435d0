//! Adapters: the job domain's ports implemented with the AWS SDK, and the
//! start-up every function shares (configuration from the environment the
//! stack sets, JSON logs, SDK clients built once).

pub mod api;
pub mod config;
pub mod counters;
pub mod dynamodb;
pub mod events;
pub mod idempotency;
pub mod lambda;
pub mod links;
pub mod metrics;
pub mod s3;
pub mod secrets;
pub mod sqs;
pub mod tls;

pub use config::{ConfigError, env_parse, env_var, init_tracing, load_sdk_config, s3_client, webhook_destinations};
pub use counters::DynamoCounterStore;
pub use dynamodb::DynamoJobStore;
pub use events::EventBridgeJobEnds;
pub use idempotency::DynamoIdempotencyKeys;
pub use lambda::LambdaSimulator;
pub use links::ResultLinks;
pub use metrics::Emf;
pub use s3::{LazyResultRemover, S3ResultStore};
pub use secrets::SecretsManagerSecret;
pub use sqs::{SqsJobQueue, SqsRedelivery};
