//! Command-line flags and the settings they resolve to.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::engine::{EngineConfig, SchedulerConfig};

/// Flags whose defaults depend on `--fast` are Options, resolved in `Cli::resolve`.
#[derive(Debug, Parser)]
#[command(
    name = "sluice-simulator",
    version,
    about = "Simulates one vLLM GPU server: OpenAI and Anthropic APIs, scheduling, KV cache, metrics.",
    long_about = "Simulates one vLLM GPU server: OpenAI and Anthropic APIs, scheduling, KV cache, \
                  metrics.\n\n\
                  With --provider it plays a hosted provider instead (api.openai.com or \
                  api.anthropic.com): only that provider's API, API keys (--api-key), rate limits \
                  with their headers (--rpm, --tpm) and usage with cached tokens.\n\n\
                  In both modes, faults can be switched on at run time on the same port: \
                  PUT /admin/faults with a JSON body (status, retry_after_s, count, reset, \
                  first_byte_delay_ms, cut_after_tokens, dead), DELETE /admin/faults clears, \
                  GET /admin/faults reads; GET /admin/stats counts the API requests received and \
                  how they were answered."
)]
pub struct Cli {
    /// Address to listen on; port 0 picks a free port (the bound address is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,

    /// A served model name (repeatable). The first names the metrics; the others are served
    /// alike, as vLLM's several served model names are and as a provider serves several models.
    #[arg(long = "model", value_name = "NAME", default_value = DEFAULT_MODEL)]
    pub models: Vec<String>,

    /// Play a hosted provider: serve only its API (openai: /v1/chat/completions and /v1/models;
    /// anthropic: /v1/messages), check API keys and the anthropic-version header, send its
    /// rate-limit headers and report usage in its own fields.
    #[arg(long, value_enum, value_name = "API", help_heading = "Provider mode")]
    pub provider: Option<Provider>,

    /// An accepted API key (repeatable; OpenAI `authorization: Bearer KEY`, Anthropic
    /// `x-api-key: KEY` or a bearer token). Without one, any key (or none) is accepted.
    #[arg(
        long = "api-key",
        value_name = "KEY",
        requires = "provider",
        help_heading = "Provider mode"
    )]
    pub api_keys: Vec<String>,

    /// Requests per minute before 429 [default: 10000].
    #[arg(long, value_name = "N", requires = "provider", help_heading = "Provider mode",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rpm: Option<u32>,

    /// Tokens (prompt plus output) per minute before 429 [default: 30000000].
    #[arg(long, value_name = "N", requires = "provider", help_heading = "Provider mode",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub tpm: Option<u32>,

    /// A LoRA adapter this server can serve, requested by using its name as the model (repeatable).
    #[arg(long = "lora", value_name = "NAME")]
    pub loras: Vec<String>,

    /// How many LoRA adapters can be active at once.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_loras: u32,

    /// Maximum number of sequences running at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_num_seqs: u32,

    /// Number of KV cache blocks.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u32).range(2..))]
    pub kv_blocks: u32,

    /// Tokens per KV cache block.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub block_size: u32,

    /// Prefill cost per uncached prompt token, in microseconds [default: 100, 0 with --fast].
    #[arg(long, value_name = "US", value_parser = non_negative)]
    pub prefill_us_per_token: Option<f64>,

    /// Duration of one decode step (one token for every running sequence), in milliseconds
    /// [default: 20, 1 with --fast]. 0 with no prefill cost: every token at once (a stand-in
    /// that answers as fast as it can, for measuring a gateway).
    #[arg(long, value_name = "MS", value_parser = non_negative)]
    pub decode_ms_per_step: Option<f64>,

    /// Tokens generated when a request sets no max_tokens [default: 32, 8 with --fast].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_OUTPUT_TOKENS)))]
    pub output_tokens: Option<u32>,

    /// Preset for tests: no prefill cost, 1 ms decode steps, 8 output tokens. Explicit flags win.
    #[arg(long)]
    pub fast: bool,

    /// Enable automatic prefix caching (the default).
    #[arg(long, overrides_with = "no_prefix_cache")]
    pub prefix_cache: bool,

    /// Disable automatic prefix caching.
    #[arg(long, overrides_with = "prefix_cache")]
    pub no_prefix_cache: bool,

    /// Cut every streamed response off after this many tokens, as a crashing server would: the
    /// connection closes mid-stream, with no usage and no end marker (for tests).
    #[arg(long, value_name = "N")]
    pub cut_streams_after: Option<u32>,
}

/// Upper bound on one request's output, whatever it asks for.
pub const MAX_OUTPUT_TOKENS: u32 = 4096;

pub const DEFAULT_MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";

/// Rate limits when --rpm / --tpm are not given: a high usage tier's, so that they only bind
/// when a test asks for it.
const DEFAULT_RPM: u32 = 10_000;
const DEFAULT_TPM: u32 = 30_000_000;

/// The hosted API the simulator plays with `--provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Provider {
    /// OpenAI's Chat Completions API, as api.openai.com serves it.
    Openai,
    /// Anthropic's Messages API, as api.anthropic.com serves it.
    Anthropic,
}

/// What provider mode adds to the simulated server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    pub api: Provider,
    pub keys: ApiKeys,
    pub requests_per_minute: u32,
    pub tokens_per_minute: u32,
}

/// The accepted API keys. Their Debug form never shows them, so a logged config cannot leak one.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ApiKeys(Vec<String>);

impl ApiKeys {
    pub fn new(keys: Vec<String>) -> Self {
        Self(keys)
    }

    /// Whether keys are checked at all: without any, every request passes.
    pub fn checked(&self) -> bool {
        !self.0.is_empty()
    }

    pub fn accepts(&self, key: &str) -> bool {
        self.0.iter().any(|accepted| accepted == key)
    }
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} redacted)", self.0.len())
    }
}

fn non_negative(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(number) if number.is_finite() && number >= 0.0 => Ok(number),
        _ => Err(format!("expected a non-negative number, got {value:?}")),
    }
}

/// Resolved settings for one simulated server.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    /// The first served name: metrics carry it.
    pub model: String,
    /// Further served names, answered like `model` (repeated `--model`).
    pub aliases: Vec<String>,
    pub loras: Vec<String>,
    pub max_loras: u32,
    pub max_num_seqs: u32,
    pub kv_blocks: u32,
    pub block_size: u32,
    pub prefill_per_token: Duration,
    pub decode_per_step: Duration,
    pub output_tokens: u32,
    pub prefix_cache: bool,
    pub cut_streams_after: Option<u32>,
    /// Set in provider mode.
    pub provider: Option<ProviderConfig>,
}

impl Cli {
    pub fn resolve(self) -> Config {
        let (prefill_us, decode_ms, output_tokens) = if self.fast {
            (0.0, 1.0, 8)
        } else {
            (100.0, 20.0, 32)
        };
        // Repeating a name adds nothing; an adapter named like a served model is that model.
        let mut seen = HashSet::new();
        let mut names = self.models.into_iter();
        let model = names.next().unwrap_or_else(|| DEFAULT_MODEL.to_owned());
        seen.insert(model.clone());
        let aliases: Vec<String> = names.filter(|name| seen.insert(name.clone())).collect();
        let mut loras = self.loras;
        loras.retain(|name| seen.insert(name.clone()));
        let provider = self.provider.map(|api| ProviderConfig {
            api,
            keys: ApiKeys::new(self.api_keys),
            requests_per_minute: self.rpm.unwrap_or(DEFAULT_RPM),
            tokens_per_minute: self.tpm.unwrap_or(DEFAULT_TPM),
        });
        Config {
            listen: self.listen,
            model,
            aliases,
            loras,
            max_loras: self.max_loras,
            max_num_seqs: self.max_num_seqs,
            kv_blocks: self.kv_blocks,
            block_size: self.block_size,
            prefill_per_token: Duration::from_secs_f64(
                self.prefill_us_per_token.unwrap_or(prefill_us) / 1e6,
            ),
            decode_per_step: Duration::from_secs_f64(
                self.decode_ms_per_step.unwrap_or(decode_ms) / 1e3,
            ),
            output_tokens: self.output_tokens.unwrap_or(output_tokens),
            prefix_cache: !self.no_prefix_cache,
            cut_streams_after: self.cut_streams_after,
            provider,
        }
    }
}

impl Config {
    /// Whether `name` is one of the served model names (not an adapter).
    pub fn serves_model(&self, name: &str) -> bool {
        self.model == name || self.aliases.iter().any(|alias| alias == name)
    }

    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            scheduler: SchedulerConfig {
                max_num_seqs: self.max_num_seqs as usize,
                num_blocks: self.kv_blocks,
                block_size: self.block_size,
                max_loras: self.max_loras as usize,
                prefix_caching: self.prefix_cache,
            },
            decode_per_step: self.decode_per_step,
            prefill_per_token: self.prefill_per_token,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        Cli::try_parse_from(std::iter::once("sluice-simulator").chain(args.iter().copied()))
            .unwrap()
            .resolve()
    }

    #[test]
    fn defaults() {
        let config = parse(&[]);
        assert_eq!(config.listen, "127.0.0.1:8000".parse().unwrap());
        assert_eq!(config.model, "meta-llama/Llama-3.1-8B-Instruct");
        assert_eq!((config.max_loras, config.max_num_seqs), (2, 64));
        assert_eq!((config.kv_blocks, config.block_size), (2048, 16));
        assert_eq!(config.prefill_per_token, Duration::from_micros(100));
        assert_eq!(config.decode_per_step, Duration::from_millis(20));
        assert_eq!(config.output_tokens, 32);
        assert!(config.prefix_cache);
        assert!(config.aliases.is_empty());
        assert_eq!(config.provider, None);
    }

    #[test]
    fn fast_preset_yields_to_explicit_flags() {
        let config = parse(&["--fast", "--output-tokens", "3"]);
        assert_eq!(config.prefill_per_token, Duration::ZERO);
        assert_eq!(config.decode_per_step, Duration::from_millis(1));
        assert_eq!(config.output_tokens, 3);
    }

    #[test]
    fn repeated_loras_and_prefix_cache_switches() {
        let config = parse(&[
            "--lora",
            "a",
            "--lora",
            "b",
            "--lora",
            "a",
            "--no-prefix-cache",
        ]);
        assert_eq!(config.loras, vec!["a", "b"]);
        assert!(!config.prefix_cache);
        assert!(parse(&["--no-prefix-cache", "--prefix-cache"]).prefix_cache);
    }

    #[test]
    fn provider_mode_with_several_models_keys_and_limits() {
        let config = parse(&[
            "--provider",
            "anthropic",
            "--model",
            "claude-a",
            "--model",
            "claude-b",
            "--model",
            "claude-a",
            "--api-key",
            "k1",
            "--api-key",
            "k2",
            "--rpm",
            "5",
        ]);
        assert_eq!(config.model, "claude-a");
        assert_eq!(config.aliases, vec!["claude-b"]);
        assert!(config.serves_model("claude-b") && !config.serves_model("claude-c"));
        let provider = config.provider.unwrap();
        assert_eq!(provider.api, Provider::Anthropic);
        assert!(provider.keys.accepts("k2") && !provider.keys.accepts("k3"));
        assert_eq!(format!("{:?}", provider.keys), "ApiKeys(2 redacted)");
        assert_eq!(
            (provider.requests_per_minute, provider.tokens_per_minute),
            (5, DEFAULT_TPM)
        );
        assert!(
            !parse(&["--provider", "openai"])
                .provider
                .unwrap()
                .keys
                .checked()
        );
    }

    #[test]
    fn rejects_nonsense_values() {
        let bad = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("sluice-simulator").chain(args.iter().copied()))
                .is_err()
        };
        assert!(bad(&["--decode-ms-per-step", "-1"]));
        assert!(bad(&["--kv-blocks", "1"]));
        assert!(bad(&["--max-num-seqs", "0"]));
        assert!(bad(&["--output-tokens", "5000"]));
        assert!(bad(&["--provider", "mistral"]));
        assert!(bad(&["--api-key", "k"]), "keys need provider mode");
        assert!(bad(&["--provider", "openai", "--rpm", "0"]));
    }
}
