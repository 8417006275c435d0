//! The memory of every process the local target runs: jobs-local itself, its
//! moto servers and the function instances. Sampled once a second from
//! /proc (Linux), so that the peaks of instances that have ended are kept;
//! served as `GET /processes` on the control API (`processesUrl` in
//! outputs.json), which `just load` prints after a run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::lambda::LambdaService;

/// How often the processes are sampled.
const INTERVAL: Duration = Duration::from_secs(1);

/// One process of the local target, as last seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessFootprint {
    pub pid: u32,
    /// `jobs-local`, `moto` or `function`.
    pub kind: &'static str,
    /// The moto server's service, or the function's name.
    pub name: String,
    pub alive: bool,
    /// Resident memory at the last sample (VmRSS), MiB.
    pub rss_mib: f64,
    /// The process's peak resident memory (VmHWM), MiB.
    pub peak_rss_mib: f64,
}

#[derive(Debug, Default)]
struct State {
    processes: BTreeMap<u32, ProcessFootprint>,
    /// The largest sum of the live processes' VmRSS seen in one sample.
    peak_total_mib: f64,
}

/// The sampled processes; cheap to clone.
#[derive(Clone)]
pub struct Footprint {
    own: Vec<(u32, &'static str, String)>,
    lambda: LambdaService,
    state: Arc<Mutex<State>>,
}

impl Footprint {
    /// `moto`: (service, pid) of each moto server. The function instances
    /// come from `lambda` at each sample.
    pub fn new(moto: &[(&'static str, u32)], lambda: LambdaService) -> Self {
        let mut own = vec![(std::process::id(), "jobs-local", "jobs-local".to_string())];
        own.extend(moto.iter().map(|(service, pid)| (*pid, "moto", service.to_string())));
        Footprint { own, lambda, state: Arc::new(Mutex::new(State::default())) }
    }

    /// Samples until `stop` turns true.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            self.sample();
            tokio::select! {
                _ = tokio::time::sleep(INTERVAL) => {}
                _ = crate::httpx::wait_true(&mut stop) => return,
            }
        }
    }

    /// Reads every process's memory once.
    pub fn sample(&self) {
        let mut current = self.own.clone();
        current.extend(self.lambda.all_instance_pids().into_iter().map(|(name, pid)| (pid, "function", name)));
        let mut state = crate::lock(&self.state);
        for p in state.processes.values_mut() {
            p.alive = false;
        }
        let mut total = 0.0;
        for (pid, kind, name) in current {
            let Some((rss, peak)) = memory_of(pid) else { continue };
            total += rss;
            let entry = state.processes.entry(pid).or_insert_with(|| ProcessFootprint {
                pid,
                kind,
                name,
                alive: true,
                rss_mib: 0.0,
                peak_rss_mib: 0.0,
            });
            entry.alive = true;
            entry.rss_mib = rss;
            entry.peak_rss_mib = entry.peak_rss_mib.max(peak);
        }
        state.peak_total_mib = state.peak_total_mib.max(total);
    }

    /// `{"processes": [...], "totalRssMib", "peakTotalRssMib", "sumOfPeaksMib", "sampleSeconds"}`
    pub fn report(&self) -> serde_json::Value {
        let state = crate::lock(&self.state);
        let processes: Vec<&ProcessFootprint> = state.processes.values().collect();
        let total: f64 = processes.iter().filter(|p| p.alive).map(|p| p.rss_mib).sum();
        json!({
            "processes": processes,
            "totalRssMib": round(total),
            // The largest sum seen in one sample (every second) ...
            "peakTotalRssMib": round(state.peak_total_mib),
            // ... and the sum of every process's own peak, an upper bound.
            "sumOfPeaksMib": round(processes.iter().map(|p| p.peak_rss_mib).sum()),
            "sampleSeconds": INTERVAL.as_secs(),
        })
    }
}

fn round(mib: f64) -> f64 {
    (mib * 10.0).round() / 10.0
}

/// (VmRSS, VmHWM) of a live process, in MiB.
fn memory_of(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&status)
}

fn parse_status(status: &str) -> Option<(f64, f64)> {
    let kib = |key: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..].trim().trim_end_matches("kB").trim().parse::<f64>().ok()
    };
    let rss = kib("VmRSS:")?;
    Some((round(rss / 1024.0), round(kib("VmHWM:").unwrap_or(rss) / 1024.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resident_and_peak_memory() {
        let status = "Name:\tmoto_server\nVmPeak:\t  900000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(parse_status(status), Some((100.0, 200.0)));
        assert_eq!(parse_status("Name:\tzombie\n"), None, "a zombie has no VmRSS");
        let (rss, peak) = memory_of(std::process::id()).expect("this process");
        assert!(rss > 0.0 && peak >= rss, "{rss} {peak}");
    }
}
