//! The job service's domain: jobs and their transitions, what a job request
//! is, the weather simulation, and the store traits its adapters implement.
//! No AWS types appear here, so all of it is tested without a network.

pub mod counters;
pub mod job;
pub mod job_end;
pub mod listing;
pub mod memory;
pub mod ports;
pub mod processing;
pub mod request;
pub mod simulation;
pub mod status;
pub mod submission;
pub mod weather;
pub mod webhook;

pub use job::{
    InvalidJobId, JobId, JobRecord, JobStatus, ResultLocation, StoredJob, Submission, Timestamp, UnreadableJob,
};
pub use request::{InvalidJobRequest, JobParameters, SimulatedFailure};
