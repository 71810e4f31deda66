//! The routing section of `make bench`: starts the replicas, the picker and one Envoy per setup,
//! then for each workload and each setup restarts the replicas (cold caches) and runs the rate
//! steps. Every process is a guard held here: when this future ends or is dropped (an error, a
//! signal), they all stop.

use std::path::Path;
use std::time::{Duration, Instant};

use sluice_core::picking::Weights;

use super::cache::Counters;
use super::report::{RoutingReport, WorkloadPlan};
use super::results::{Policy, Step};
use super::settings::{self, REPLICAS, SHAPE};
use super::workload::{self, Workload};
use crate::bodies::MODEL;
use crate::pool::exchange::Planned;
use crate::pool::replicas::Replicas;
use crate::pool::{driver, gateways};
use crate::procs::{self, ENVOY_WORKERS, Service};
use crate::report::Build;

#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    pub weights: Weights,
    pub workloads: Vec<Workload>,
    /// The Sluice build the *Envoy + Sluice* setup runs.
    pub build: Build,
}

/// The pool (Envoy cluster and picker pool) the benchmark's model is served by.
const POOL: &str = "llama_8b";

fn say(message: &str) {
    println!("==> {message}");
}

struct Gateways {
    round_robin: Service,
    least_request: Service,
    sluice: Service,
}

impl Gateways {
    fn get(&self, policy: Policy) -> &Service {
        match policy {
            Policy::RoundRobin => &self.round_robin,
            Policy::LeastRequest => &self.least_request,
            Policy::Sluice => &self.sluice,
        }
    }

    fn check_alive(&mut self) -> Result<(), String> {
        self.round_robin.check_running("Envoy (round robin)")?;
        self.least_request.check_running("Envoy (least-request)")?;
        self.sluice.check_running("Envoy + Sluice")
    }
}

/// Everything the steps run against.
struct Fleet {
    build: Build,
    client: reqwest::Client,
    replicas: Replicas,
    picker: Service,
    gateways: Gateways,
    drain: Duration,
}

/// What the steps have measured so far.
#[derive(Default)]
struct Measured {
    steps: Vec<Step>,
    /// Per workload: requests the filter picked for, and those it left to Envoy.
    picks: Vec<(Workload, u64, u64)>,
    warnings: Vec<String>,
}

impl Fleet {
    /// One setup through every rate of one workload, on freshly started replicas.
    async fn run_setup(
        &mut self,
        plan: &WorkloadPlan,
        requests: &[Vec<Planned>],
        policy: Policy,
        measured: &mut Measured,
    ) -> Result<(), String> {
        self.replicas.restart().await?;
        if policy == Policy::Sluice {
            gateways::wait_picker_ready(&self.client, &self.picker, POOL, REPLICAS.replicas)
                .await?;
            // The filter re-reads the snapshot every refresh: let it see the new replicas.
            tokio::time::sleep(Duration::from_millis(4 * settings::REFRESH_MS)).await;
        }
        let picks = self.filter_counters(policy).await;
        let url = self.gateways.get(policy).url("/v1/chat/completions");
        for (&rate, step_plan) in plan.rates.iter().zip(requests) {
            self.replicas.wait_idle(&self.client).await?;
            let before = self.counters().await?;
            let outcomes = driver::run_step(&self.client, &url, step_plan, self.drain).await;
            let after = self.counters().await?;
            let step = Step::from_outcomes(
                plan.workload,
                policy,
                rate,
                &outcomes,
                Counters::delta(&before, &after),
            );
            println!("    {}", super::report::progress_line(&step));
            let at = format!("{} at {rate}/s, {}", plan.workload.label(), policy.label());
            if let Some(error) = &step.first_error {
                measured.warnings.push(format!(
                    "{at}: {} of {} requests failed; first: {error}",
                    step.failed, step.sent
                ));
            }
            if step.max_lateness_ms > 50.0 {
                measured.warnings.push(format!(
                    "{at}: the driver sent a request {:.0} ms late (the machine was busy); \
                     latencies count from the scheduled time",
                    step.max_lateness_ms
                ));
            }
            measured.steps.push(step);
            self.replicas.check_running()?;
            self.gateways.check_alive()?;
        }
        if policy == Policy::Sluice {
            let (picked_before, fell_back_before) = picks;
            let (picked, fell_back) = self.filter_counters(policy).await;
            let fell_back = fell_back.saturating_sub(fell_back_before);
            measured.picks.push((
                plan.workload,
                picked.saturating_sub(picked_before),
                fell_back,
            ));
            if fell_back > 0 {
                measured.warnings.push(format!(
                    "{}: {fell_back} requests went to Envoy's round robin because the filter \
                     had no fresh snapshot",
                    plan.workload.label()
                ));
            }
        }
        Ok(())
    }

    /// Every replica's prefix-cache counters now.
    async fn counters(&self) -> Result<Vec<Counters>, String> {
        let pages = self.replicas.scrape(&self.client).await?;
        Ok(pages.iter().map(|page| Counters::parse(page)).collect())
    }

    /// The filter's pick counters in `policy`'s Envoy: replicas picked, and requests left to
    /// Envoy's own load balancing (0 where there is no filter).
    async fn filter_counters(&self, policy: Policy) -> (u64, u64) {
        let gateway = self.gateways.get(policy);
        let picked = gateway
            .envoy_stat(&self.build.host().stat("sluice_picks_total"))
            .await;
        let fell_back = gateway
            .envoy_stat(&self.build.host().stat("sluice_pick_fallbacks_total"))
            .await;
        (picked.unwrap_or(0), fell_back.unwrap_or(0))
    }
}

/// One workload's rates (multiples of the pool's capacity with nothing cached, estimated from
/// the timings and the workload's own prompt lengths) and its requests at each.
fn plan(workload: Workload, step_seconds: f64) -> (WorkloadPlan, Vec<Vec<Planned>>) {
    let probe = workload::generate(workload, &SHAPE, &[20.0], 10.0, settings::SEED, MODEL);
    let prompt_tokens = workload::mean_prompt_tokens(&probe);
    let output_tokens = f64::from(SHAPE.output_tokens.0 + SHAPE.output_tokens.1) / 2.0;
    let capacity = crate::pool::settings::capacity(&REPLICAS, prompt_tokens, output_tokens);
    let loads: &[f64] = match workload {
        Workload::PrefixHeavy => &settings::PREFIX_HEAVY_LOADS,
        Workload::Independent => &settings::INDEPENDENT_LOADS,
    };
    let rates: Vec<f64> = loads
        .iter()
        .map(|l| (l * capacity * 10.0).round() / 10.0)
        .collect();
    let steps = workload::generate(
        workload,
        &SHAPE,
        &rates,
        step_seconds,
        settings::SEED,
        MODEL,
    );
    let plan = WorkloadPlan {
        workload,
        loads: loads.to_vec(),
        rates,
        capacity,
        prompt_tokens,
        requests: steps.iter().map(Vec::len).collect(),
    };
    (plan, steps)
}

pub async fn run(options: &Options, dir: &Path) -> Result<RoutingReport, String> {
    let started = Instant::now();
    let mut machine = crate::machine::describe().await;
    let filter_configuration = settings::filter_configuration(&options.weights)?;
    let (step_seconds, drain_seconds) = if options.quick {
        (settings::QUICK_STEP_SECONDS, settings::QUICK_DRAIN_SECONDS)
    } else {
        (settings::STEP_SECONDS, settings::DRAIN_SECONDS)
    };

    // Every workload's requests, before anything starts: the same for every setup.
    let plans: Vec<(WorkloadPlan, Vec<Vec<Planned>>)> = options
        .workloads
        .iter()
        .map(|&workload| plan(workload, step_seconds))
        .collect();

    say(&format!(
        "routing: starting {} simulator replicas, the picker and three Envoys (Sluice's {} build)",
        REPLICAS.replicas,
        options.build.name()
    ));
    let replicas = Replicas::start(dir, REPLICAS, MODEL).await?;
    let picker_toml = gateways::picker_config(POOL, MODEL, replicas.addrs(), settings::REFRESH_MS);
    let picker = gateways::start_picker(dir, &picker_toml).await?;
    let configs = gateways::envoy_configs(
        options.build.host(),
        replicas.addrs(),
        picker.addr,
        &filter_configuration,
    )?;
    let gateways = Gateways {
        round_robin: procs::start_envoy("envoy-rr", dir, &configs.round_robin, ENVOY_WORKERS)
            .await?,
        least_request: procs::start_envoy("envoy-lr", dir, &configs.least_request, ENVOY_WORKERS)
            .await?,
        sluice: procs::start_envoy("envoy-sluice-picking", dir, &configs.sluice, ENVOY_WORKERS)
            .await?,
    };
    let client = driver::client()?;
    gateways::wait_picker_ready(&client, &picker, POOL, REPLICAS.replicas).await?;
    for policy in Policy::ALL {
        gateways::preflight(&client, gateways.get(policy), &[])
            .await
            .map_err(|e| format!("{}: {e}", policy.label()))?;
    }

    let mut fleet = Fleet {
        build: options.build,
        client,
        replicas,
        picker,
        gateways,
        drain: Duration::from_secs_f64(drain_seconds),
    };
    let mut measured = Measured::default();
    for (w, (plan, requests)) in plans.iter().enumerate() {
        // Rotate the setups' order per workload so that drift in the shared machine's load does
        // not always favour the same one.
        let mut order = Policy::ALL.to_vec();
        order.rotate_left(w % Policy::ALL.len());
        for policy in order {
            fleet
                .run_setup(plan, requests, policy, &mut measured)
                .await?;
        }
    }
    machine.load_after = crate::machine::load_average();
    // Stop everything before the report is written.
    drop(fleet);
    Ok(RoutingReport {
        machine,
        build: options.build,
        plans: plans.into_iter().map(|(plan, _)| plan).collect(),
        steps: measured.steps,
        step_seconds,
        drain_seconds,
        weights: options.weights,
        filter_configuration,
        picks: measured.picks,
        warnings: measured.warnings,
        quick: options.quick,
        elapsed_seconds: started.elapsed().as_secs(),
    })
}
