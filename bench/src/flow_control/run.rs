//! The flow-control section of `make bench`: starts the replicas, the picker and one Envoy per
//! setup, then runs every step through every setup, sampling the replicas' load as it goes.
//! Sluice with flow control, when this build refuses its configuration (until its core lands),
//! its Envoy does not start, fails the pre-flight request or stops, is reported as not run and
//! the baselines carry on; a baseline's failing is an error. Every process is a guard held here:
//! when this future ends or is dropped (an error, a signal), they all stop.

use std::path::Path;
use std::time::{Duration, Instant};

use super::report::{FlowReport, PlanSummary, progress_line};
use super::results::{StepResult, Variant};
use super::settings::{self, REPLICAS};
use super::workload::{self, Scenario, StepPlan};
use crate::bodies::MODEL;
use crate::pool::replicas::Replicas;
use crate::pool::{driver, gateways};
use crate::procs::{self, ENVOY_WORKERS, Service};
use crate::report::Build;

#[derive(Debug, Clone)]
pub struct Options {
    pub quick: bool,
    /// The Sluice build of both Sluice setups.
    pub build: Build,
    /// Seconds of arrivals per step, and the most a step waits after them (defaults in
    /// `settings`).
    pub step_seconds: Option<f64>,
    pub drain_seconds: Option<f64>,
}

/// The pool (Envoy cluster and picker pool) the benchmark's model is served by.
const POOL: &str = "llama_8b";

fn say(message: &str) {
    println!("==> {message}");
}

/// The Envoys of the setups that run.
#[derive(Default)]
struct Gateways {
    running: Vec<(Variant, Service)>,
    not_run: Vec<(Variant, String)>,
}

impl Gateways {
    fn get(&self, variant: Variant) -> Option<&Service> {
        self.running
            .iter()
            .find(|(v, _)| *v == variant)
            .map(|(_, service)| service)
    }

    /// Starts `variant`'s Envoy from `yaml`. Flow control's failing to start is recorded as the
    /// reason it did not run; a baseline's is an error.
    async fn start(
        &mut self,
        variant: Variant,
        dir: &Path,
        name: &str,
        yaml: &str,
    ) -> Result<(), String> {
        match procs::start_envoy(name, dir, yaml, ENVOY_WORKERS).await {
            Ok(service) => self.running.push((variant, service)),
            Err(e) if variant == Variant::FlowControl => {
                self.give_up(variant, format!("Envoy did not start: {e}"));
            }
            Err(e) => return Err(format!("{}: {e}", variant.label())),
        }
        Ok(())
    }

    fn give_up(&mut self, variant: Variant, reason: String) {
        say(&format!("{}: not run: {reason}", variant.label()));
        self.running.retain(|(v, _)| *v != variant);
        self.not_run.push((variant, reason));
    }

    /// Flow control stops running if its Envoy has exited (after `step`), with its log as the
    /// reason; a baseline's exiting is an error.
    fn check_alive(&mut self, step: Scenario) -> Result<(), String> {
        let mut dead = None;
        for (variant, service) in &mut self.running {
            if let Err(e) = service.check_running(variant.label()) {
                if *variant != Variant::FlowControl {
                    return Err(e);
                }
                dead = Some(e);
            }
        }
        if let Some(reason) = dead {
            self.give_up(
                Variant::FlowControl,
                format!("from the {} step on: {reason}", step.label()),
            );
        }
        Ok(())
    }
}

pub async fn run(options: &Options, dir: &Path) -> Result<FlowReport, String> {
    let started = Instant::now();
    let mut machine = crate::machine::describe().await;
    let (default_step, default_drain) = if options.quick {
        (settings::QUICK_STEP_SECONDS, settings::QUICK_DRAIN_SECONDS)
    } else {
        (settings::STEP_SECONDS, settings::DRAIN_SECONDS)
    };
    let step_seconds = options.step_seconds.unwrap_or(default_step);
    let drain_seconds = options.drain_seconds.unwrap_or(default_drain);
    let sluice_today_configuration = settings::sluice_today_configuration()?;
    let flow_control_configuration = settings::flow_control_configuration()?;

    // Every step's requests, before anything starts: the same for every setup.
    let plans: Vec<StepPlan> = Scenario::ALL
        .into_iter()
        .map(|scenario| workload::generate(scenario, step_seconds, settings::SEED, MODEL))
        .collect();

    say(&format!(
        "flow control: starting {} simulator replicas, the picker and three Envoys (Sluice's {} \
         build)",
        REPLICAS.replicas,
        options.build.name()
    ));
    let mut replicas = Replicas::start(dir, REPLICAS, MODEL).await?;
    let picker_toml = gateways::picker_config(
        POOL,
        MODEL,
        replicas.addrs(),
        crate::routing::settings::REFRESH_MS,
    );
    let picker = gateways::start_picker(dir, &picker_toml).await?;
    let host = options.build.host();
    let configs = gateways::envoy_configs(
        host,
        replicas.addrs(),
        picker.addr,
        &sluice_today_configuration,
    )?;
    let mut envoys = Gateways::default();
    envoys
        .start(
            Variant::LeastRequest,
            dir,
            "envoy-flow-lr",
            &configs.least_request,
        )
        .await?;
    envoys
        .start(
            Variant::SluiceToday,
            dir,
            "envoy-flow-today",
            &configs.sluice,
        )
        .await?;
    // A build of the filter without flow control refuses its configuration, and Envoy with it.
    match settings::check(&flow_control_configuration) {
        Err(e) => envoys.give_up(
            Variant::FlowControl,
            format!("this build of the filter rejects its configuration ({e})"),
        ),
        Ok(()) => {
            let yaml = gateways::sluice_config(
                host,
                replicas.addrs(),
                picker.addr,
                &flow_control_configuration,
            )?;
            envoys
                .start(Variant::FlowControl, dir, "envoy-flow-control", &yaml)
                .await?;
        }
    }
    let client = driver::client()?;
    // Its own client, so the sampler never waits behind the load's connections.
    let sampler = driver::client()?;
    gateways::wait_picker_ready(&client, &picker, POOL, REPLICAS.replicas).await?;
    for variant in Variant::ALL {
        let Some(gateway) = envoys.get(variant) else {
            continue;
        };
        let tenant = [(settings::TENANT_HEADER, settings::BATCH_TENANT)];
        if let Err(e) = gateways::preflight(&client, gateway, &tenant).await {
            if variant == Variant::FlowControl {
                envoys.give_up(variant, e);
            } else {
                return Err(format!("{}: {e}", variant.label()));
            }
        }
    }

    let drain = Duration::from_secs_f64(drain_seconds);
    let window = workload::window(step_seconds);
    let mut steps = Vec::new();
    let mut warnings = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        // Rotate the setups' order per step so that drift in the shared machine's load does not
        // always favour the same one.
        let mut order = Variant::ALL.to_vec();
        order.rotate_left(i % Variant::ALL.len());
        for variant in order {
            let Some(gateway) = envoys.get(variant) else {
                continue;
            };
            let url = gateway.url("/v1/chat/completions");
            replicas.wait_idle(&client).await?;
            let start = tokio::time::Instant::now() + driver::LEAD;
            let (outcomes, samples) = tokio::join!(
                driver::run_step_from(&client, &url, &plan.requests, start, drain),
                replicas.sample_load(
                    &sampler,
                    start,
                    start + window.1,
                    Duration::from_millis(settings::SAMPLE_MS),
                ),
            );
            let step = StepResult::from_outcomes(plan, variant, &outcomes, &samples, window);
            println!("    {}", progress_line(&step));
            let at = format!("{}, {}", plan.scenario.label(), variant.label());
            let failed: usize = step.groups.iter().map(|g| g.failed).sum();
            if let Some(error) = &step.first_error {
                warnings.push(format!(
                    "{at}: {failed} requests failed in the window; first: {error}"
                ));
            }
            if step.max_lateness_ms > 50.0 {
                warnings.push(format!(
                    "{at}: the driver sent a request {:.0} ms late (the machine was busy); \
                     latencies count from the scheduled time",
                    step.max_lateness_ms
                ));
            }
            steps.push(step);
            replicas.check_running()?;
            envoys.check_alive(plan.scenario)?;
        }
    }
    machine.load_after = crate::machine::load_average();
    let not_run = std::mem::take(&mut envoys.not_run);
    // Stop everything before the report is written.
    drop((envoys, picker, replicas));
    Ok(FlowReport {
        machine,
        build: options.build,
        plans: plans
            .iter()
            .map(|plan| PlanSummary {
                scenario: plan.scenario,
                streams: plan.streams.clone(),
                capacity: plan.capacity,
                requests: plan.requests.len(),
            })
            .collect(),
        steps,
        not_run,
        step_seconds,
        drain_seconds,
        sluice_today_configuration,
        flow_control_configuration,
        warnings,
        quick: options.quick,
        elapsed_seconds: started.elapsed().as_secs(),
    })
}
