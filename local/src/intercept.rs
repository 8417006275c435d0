//! The one chain every call a function makes passes through before it is
//! served, at both places functions call: the service proxies
//! ([`crate::proxy`], a layer above) and the Lambda Invoke API
//! ([`crate::lambda`]). IAM checks first, then fault injection (registered
//! from a layer above, `crate::faults`); the first interceptor that answers
//! ends the call with its answer.

use std::sync::Arc;

use bytes::Bytes;
use hyper::{Method, Response};

use crate::httpx::Body;
use crate::iam::{self, Iam};

/// One call, as the interceptors see it.
pub struct Call<'a> {
    /// The service called (`sqs`, `dynamodb`, `s3`, `cognito-idp`, `sts`,
    /// `lambda`): its protocol shapes the error answers.
    pub service: &'a str,
    pub method: &'a Method,
    /// The access key the call is signed with: who calls (a function's key
    /// names its role; other keys are not checked).
    pub access_key: Option<&'a str>,
    /// The IAM actions of the call, each on its resource.
    pub actions: &'a [iam::Call],
    /// The request body (Lambda: the event).
    pub payload: &'a [u8],
}

/// How an interceptor ends a call.
#[derive(Debug)]
pub enum Answer {
    /// The service refuses the call with its own error (an IAM denial, an
    /// injected throttle).
    Refused(Response<Body>),
    /// Lambda: the invoked function fails without running, with this error
    /// body (`{"errorType", "errorMessage"}`).
    FunctionError(Bytes),
}

/// A check a call passes before it is served.
pub trait Interceptor: Send + Sync {
    /// The answer that ends `call` here, if any.
    fn intercept(&self, call: &Call<'_>) -> Option<Answer>;
}

/// The interceptors, in the order every call meets them.
pub struct Interceptors {
    chain: Vec<Arc<dyn Interceptor>>,
}

impl Interceptors {
    /// IAM first, then fault injection (when on): a call the caller's
    /// policies deny is denied whatever faults are configured.
    pub fn new(iam: Arc<Iam>, faults: Option<Arc<dyn Interceptor>>) -> Interceptors {
        let mut chain: Vec<Arc<dyn Interceptor>> = vec![iam];
        chain.extend(faults);
        Interceptors { chain }
    }

    /// The first answer of the chain; `None`: serve the call.
    pub fn intercept(&self, call: &Call<'_>) -> Option<Answer> {
        self.chain.iter().find_map(|i| i.intercept(call))
    }
}

/// IAM: a call its caller's role does not allow is refused with the
/// service's AccessDenied error.
impl Interceptor for Iam {
    fn intercept(&self, call: &Call<'_>) -> Option<Answer> {
        let denied = self.check(call.access_key, call.actions).err()?;
        Some(Answer::Refused(iam::denied_response(call.service, call.method, &denied, self.account_id())))
    }
}
