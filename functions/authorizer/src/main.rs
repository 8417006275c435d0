use handler::Authorizer;
use jobs_aws::init_tracing;
use lambda_runtime::{Error, run, service_fn};

mod handler;
mod http;
mod jwks;
mod jwt;
#[cfg(test)]
mod moto_tests;
mod policy;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let authorizer = Authorizer::from_env()?;
    run(service_fn(|event| handler::authorize(&authorizer, event))).await
}
