//! What a metrics page says about an endpoint's load, in each model server's dialect: vLLM,
//! SGLang, trtllm-serve and Triton's TensorRT-LLM backend (names in ENGINEERING.md).
//!
//! One pass over the page feeds every sample whose name belongs to a known dialect into that
//! dialect's accumulator; the dialect is then the forced one, or the first whose queue and
//! running counts were both present. A server may expose several series of one gauge (per
//! `model_name`, per data-parallel `engine`): counts are summed; fractions (KV-cache use) are
//! averaged, because a sum of per-engine fractions is not a fraction of anything.
//!
//! Samples that cannot be trusted (NaN, infinite, negative, unparsable) are ignored one by one; a
//! page whose queue or running count has no usable sample is a failed scrape, so a server that
//! answers garbage is not taken for an idle one.

use sluice_wire::Lora;

use super::exposition::{self, Sample};

/// The metric dialect of a model server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerKind {
    Vllm,
    Sglang,
    Trtllm,
    Triton,
}

impl ServerKind {
    /// In the order auto-detection prefers them, should a page mix dialects.
    pub const ALL: [Self; 4] = [Self::Vllm, Self::Sglang, Self::Trtllm, Self::Triton];

    pub fn from_config(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vllm => "vllm",
            Self::Sglang => "sglang",
            Self::Trtllm => "trtllm",
            Self::Triton => "triton",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Vllm => 0,
            Self::Sglang => 1,
            Self::Trtllm => 2,
            Self::Triton => 3,
        }
    }

    /// Names of the two signals a page must have, for error messages.
    fn required_names(self) -> (&'static str, &'static str) {
        match self {
            Self::Vllm => ("vllm:num_requests_waiting", "vllm:num_requests_running"),
            Self::Sglang => ("sglang:num_queue_reqs", "sglang:num_running_reqs"),
            Self::Trtllm => ("trtllm_num_requests_waiting", "trtllm_num_requests_running"),
            Self::Triton => (
                "nv_trt_llm_request_metrics{request_type=\"waiting\"}",
                "nv_trt_llm_request_metrics{request_type=\"scheduled\"}",
            ),
        }
    }
}

impl std::fmt::Display for ServerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An endpoint's load as its last page told it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Load {
    pub waiting: u32,
    pub running: u32,
    /// 0.0 to 1.0; 0 when the server does not say.
    pub kv_cache_usage: f32,
    /// Tokens per KV-cache block; 0 when the server does not say.
    pub block_size: u32,
    pub lora: Lora,
}

/// Why a page does not describe a model server's load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// None of the known metric names (or none of the forced dialect's).
    NoKnownMetrics(Option<ServerKind>),
    /// The dialect is known but a required signal has no usable sample.
    Missing(ServerKind, &'static str),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoKnownMetrics(None) => {
                f.write_str("no vLLM, SGLang, trtllm-serve or Triton metrics on the page")
            }
            Self::NoKnownMetrics(Some(kind)) => write!(f, "no {kind} metrics on the page"),
            Self::Missing(kind, name) => write!(f, "{kind} page without a usable {name}"),
        }
    }
}

/// Caps on what one endpoint can put into the snapshot (which readers bound at 1 MiB).
const MAX_ADAPTERS_PER_LIST: usize = 256;
const MAX_ADAPTER_NAME_BYTES: usize = 256;

/// Reads `text` in the dialect `forced`, or the detected one.
pub fn read_load(text: &str, forced: Option<ServerKind>) -> Result<(ServerKind, Load), ReadError> {
    let mut dialects: [Dialect<'_>; 4] = Default::default();
    for line in exposition::lines(text) {
        let Ok(line) = line else { continue };
        let Some((kind, signal)) = classify(line.name) else {
            continue;
        };
        let Some(dialect) = dialects.get_mut(kind.index()) else {
            continue;
        };
        dialect.seen = true;
        if let Ok(sample) = line.parse() {
            dialect.observe(signal, &sample);
        }
    }
    let kind = match forced {
        Some(kind) => kind,
        None => ServerKind::ALL
            .into_iter()
            .find(|kind| dialects.get(kind.index()).is_some_and(Dialect::complete))
            .or_else(|| {
                ServerKind::ALL
                    .into_iter()
                    .find(|kind| dialects.get(kind.index()).is_some_and(|d| d.seen))
            })
            .ok_or(ReadError::NoKnownMetrics(None))?,
    };
    let dialect = dialects
        .get(kind.index())
        .ok_or(ReadError::NoKnownMetrics(forced))?;
    if !dialect.seen {
        return Err(ReadError::NoKnownMetrics(forced));
    }
    let (waiting_name, running_name) = kind.required_names();
    let waiting = dialect
        .waiting
        .count()
        .ok_or(ReadError::Missing(kind, waiting_name))?;
    let running = dialect
        .running
        .count()
        .ok_or(ReadError::Missing(kind, running_name))?;
    // vLLM renamed the gauge; prefer the new name when a server exports both.
    let kv_cache_usage = dialect
        .kv_usage
        .fraction()
        .or_else(|| dialect.kv_usage_legacy.fraction())
        .unwrap_or(0.0);
    let lora = dialect.lora.as_ref().map(read_lora).unwrap_or_default();
    Ok((
        kind,
        Load {
            waiting,
            running,
            kv_cache_usage,
            block_size: dialect.block_size.unwrap_or(0),
            lora,
        },
    ))
}

/// What a sample of a known name contributes.
#[derive(Debug, Clone, Copy)]
enum Signal {
    Waiting,
    Running,
    KvUsage,
    /// vLLM's older `gpu_cache_usage_perc`.
    KvUsageLegacy,
    /// An info gauge whose label carries the block size.
    BlockSizeLabel(&'static str),
    /// A gauge whose value is the block size.
    BlockSizeValue,
    Lora,
    /// Triton's request gauge: `request_type` says which count.
    TritonRequests,
    /// Triton's KV-cache gauge: `kv_cache_block_type` says which figure.
    TritonKvBlocks,
}

fn classify(name: &str) -> Option<(ServerKind, Signal)> {
    use ServerKind::{Sglang, Triton, Trtllm, Vllm};
    Some(match name {
        "vllm:num_requests_waiting" => (Vllm, Signal::Waiting),
        "vllm:num_requests_running" => (Vllm, Signal::Running),
        "vllm:kv_cache_usage_perc" => (Vllm, Signal::KvUsage),
        "vllm:gpu_cache_usage_perc" => (Vllm, Signal::KvUsageLegacy),
        "vllm:cache_config_info" => (Vllm, Signal::BlockSizeLabel("block_size")),
        "vllm:lora_requests_info" => (Vllm, Signal::Lora),
        "sglang:num_queue_reqs" => (Sglang, Signal::Waiting),
        "sglang:num_running_reqs" => (Sglang, Signal::Running),
        "sglang:token_usage" => (Sglang, Signal::KvUsage),
        "sglang:cache_config_info" => (Sglang, Signal::BlockSizeLabel("page_size")),
        "trtllm_num_requests_waiting" => (Trtllm, Signal::Waiting),
        "trtllm_num_requests_running" => (Trtllm, Signal::Running),
        "trtllm_kv_cache_utilization" => (Trtllm, Signal::KvUsage),
        "trtllm_kv_cache_tokens_per_block" => (Trtllm, Signal::BlockSizeValue),
        "nv_trt_llm_request_metrics" => (Triton, Signal::TritonRequests),
        "nv_trt_llm_kv_cache_block_metrics" => (Triton, Signal::TritonKvBlocks),
        _ => return None,
    })
}

#[derive(Default)]
struct Dialect<'a> {
    /// A name of this dialect appeared, parsable or not.
    seen: bool,
    waiting: Total,
    running: Total,
    kv_usage: Mean,
    kv_usage_legacy: Mean,
    block_size: Option<u32>,
    /// The LoRA info series with the latest timestamp (its value) so far.
    lora: Option<Sample<'a>>,
}

impl<'a> Dialect<'a> {
    fn complete(&self) -> bool {
        self.waiting.count().is_some() && self.running.count().is_some()
    }

    fn observe(&mut self, signal: Signal, sample: &Sample<'a>) {
        match signal {
            Signal::Waiting => self.waiting.add(sample.value),
            Signal::Running => self.running.add(sample.value),
            Signal::KvUsage => self.kv_usage.add(sample.value),
            Signal::KvUsageLegacy => self.kv_usage_legacy.add(sample.value),
            Signal::BlockSizeLabel(label) => {
                if let Some(size) = sample.label(label).and_then(|text| whole_number(&text)) {
                    self.observe_block_size(size);
                }
            }
            Signal::BlockSizeValue => {
                if let Some(size) = to_count(sample.value) {
                    self.observe_block_size(size);
                }
            }
            Signal::Lora => {
                // vLLM keeps one series per change of the adapter sets; the latest one is now.
                if sample.value.is_nan() {
                    return;
                }
                if self
                    .lora
                    .is_none_or(|current| sample.value >= current.value)
                {
                    self.lora = Some(*sample);
                }
            }
            Signal::TritonRequests => match sample.label("request_type").as_deref() {
                Some("waiting") => self.waiting.add(sample.value),
                Some("scheduled") => self.running.add(sample.value),
                _ => {}
            },
            Signal::TritonKvBlocks => match sample.label("kv_cache_block_type").as_deref() {
                Some("fraction") => self.kv_usage.add(sample.value),
                Some("tokens_per") => {
                    if let Some(size) = to_count(sample.value) {
                        self.observe_block_size(size);
                    }
                }
                _ => {}
            },
        }
    }

    fn observe_block_size(&mut self, size: u32) {
        // Series of one server should agree; if they do not, the larger block is the safer
        // assumption for the filter's per-block arithmetic.
        if size > 0 {
            self.block_size = Some(self.block_size.map_or(size, |current| current.max(size)));
        }
    }
}

/// A count summed over series; `None` until a usable sample was seen.
#[derive(Default)]
struct Total {
    sum: f64,
    samples: u32,
}

impl Total {
    fn add(&mut self, value: f64) {
        if value.is_finite() && value >= 0.0 {
            self.sum += value;
            self.samples = self.samples.saturating_add(1);
        }
    }

    fn count(&self) -> Option<u32> {
        (self.samples > 0).then(|| saturating_u32(self.sum))
    }
}

/// A fraction averaged over series.
#[derive(Default)]
struct Mean {
    sum: f64,
    samples: u32,
}

impl Mean {
    fn add(&mut self, value: f64) {
        if value.is_finite() && value >= 0.0 {
            self.sum += value.min(1.0);
            self.samples = self.samples.saturating_add(1);
        }
    }

    fn fraction(&self) -> Option<f32> {
        (self.samples > 0).then(|| (self.sum / f64::from(self.samples)).clamp(0.0, 1.0) as f32)
    }
}

fn to_count(value: f64) -> Option<u32> {
    (value.is_finite() && value >= 0.0).then(|| saturating_u32(value))
}

fn saturating_u32(value: f64) -> u32 {
    // `as` saturates (and maps NaN to 0); rounding first keeps 2.9999999 a 3.
    value.round().clamp(0.0, f64::from(u32::MAX)) as u32
}

/// A label value such as `"16"` (or `"16.0"`, as some Python exporters write numbers).
fn whole_number(text: &str) -> Option<u32> {
    let text = text.trim();
    text.parse::<u32>()
        .ok()
        .or_else(|| text.parse::<f64>().ok().and_then(to_count))
}

fn read_lora(sample: &Sample<'_>) -> Lora {
    Lora {
        max: sample
            .label("max_lora")
            .and_then(|text| whole_number(&text))
            .unwrap_or(0),
        running: adapter_list(sample, "running_lora_adapters"),
        waiting: adapter_list(sample, "waiting_lora_adapters"),
    }
}

fn adapter_list(sample: &Sample<'_>, label: &str) -> Vec<String> {
    let Some(text) = sample.label(label) else {
        return Vec::new();
    };
    text.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty() && name.len() <= MAX_ADAPTER_NAME_BYTES)
        .take(MAX_ADAPTERS_PER_LIST)
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests;
