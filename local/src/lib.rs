//! The local target of the job ingestion service: runs the synthesized stack
//! on 127.0.0.1 with no AWS account (see docs/local-target.md, whose first
//! diagram shows these modules in layers; a module uses none above its own).
//!
//! - [`stack`] loads `cdktf.out` and resolves `${...}` references;
//!   [`model`] reads what the local target runs from it (and nothing else).
//! - [`moto`] and [`provision`] start the emulators and create the resources.
//! - [`lambda`] runs the functions' bootstraps behind a Runtime API; [`iam`]
//!   enforces the functions' role policies on their calls; [`intercept`] is
//!   the one chain (IAM, then faults) their calls pass through.
//! - [`proxy`] puts that chain, with fault injection ([`faults`]), between
//!   the functions and moto.
//! - [`poller`] drives the SQS event source mappings; [`notifications`]
//!   bridges S3 bucket notifications through SNS to functions; [`gateway`]
//!   serves the REST API ([`vtl`] templates, [`policy`]).
//! - [`control`] serves the control API ([`footprint`], the fault API).
//! - [`run`] puts it together; [`daemon`] backs `start`/`stop`; [`watch`]
//!   rebuilds changed functions and swaps their code in the running system.
//! - [`awserror`] shapes every emulated service's error answers.

pub mod awserror;
pub mod control;
pub mod daemon;
pub mod faults;
pub mod footprint;
pub mod gateway;
pub mod httpx;
pub mod iam;
pub mod intercept;
pub mod lambda;
pub mod model;
pub mod moto;
pub mod notifications;
pub mod outputs;
pub mod package;
pub mod policy;
pub mod poller;
pub mod process;
pub mod provision;
pub mod proxy;
pub mod run;
pub mod schema;
pub mod stack;
pub mod vtl;
pub mod watch;
pub mod xml;

/// Locks a std mutex, recovering from poisoning (no invariant of this crate
/// spans a panic while a lock is held).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
