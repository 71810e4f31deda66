//! How each simulated replica is configured, and the request rate its timings sustain.

/// How each simulated replica is configured (see `sluice-simulator --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaSettings {
    pub replicas: usize,
    pub max_num_seqs: u32,
    pub kv_blocks: u32,
    pub block_size: u32,
    pub prefill_us_per_token: u32,
    pub decode_ms_per_step: u32,
}

impl ReplicaSettings {
    /// Tokens one replica's KV cache holds.
    pub fn kv_tokens(&self) -> u32 {
        self.kv_blocks * self.block_size
    }

    /// The simulator flags of one replica listening on `listen` (prefix caching on, as vLLM
    /// has it by default).
    pub fn args(&self, listen: &str, model: &str) -> Vec<String> {
        [
            "--listen",
            listen,
            "--model",
            model,
            "--max-num-seqs",
            &self.max_num_seqs.to_string(),
            "--kv-blocks",
            &self.kv_blocks.to_string(),
            "--block-size",
            &self.block_size.to_string(),
            "--prefill-us-per-token",
            &self.prefill_us_per_token.to_string(),
            "--decode-ms-per-step",
            &self.decode_ms_per_step.to_string(),
            "--prefix-cache",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }
}

/// Requests per second the pool sustains when no prompt token is cached, from the timings: per
/// replica each request costs its whole prefill (serial: the step stalls for it) plus its share
/// of the decode steps, which it shares with the batch that fits in `max-num-seqs` and in the KV
/// cache at `prompt + output` tokens per sequence. An estimate (it assumes a full batch at all
/// times); the benchmarks measure the real figure.
pub fn capacity(replicas: &ReplicaSettings, prompt_tokens: f64, output_tokens: f64) -> f64 {
    let per_sequence = (prompt_tokens + output_tokens).max(1.0);
    let batch = f64::from(replicas.max_num_seqs)
        .min(f64::from(replicas.kv_tokens()) / per_sequence)
        .max(1.0);
    let prefill = prompt_tokens * f64::from(replicas.prefill_us_per_token) / 1e6;
    let decode = output_tokens * f64::from(replicas.decode_ms_per_step) / 1e3 / batch;
    replicas.replicas as f64 / (prefill + decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLICAS: ReplicaSettings = ReplicaSettings {
        replicas: 4,
        max_num_seqs: 16,
        kv_blocks: 1024,
        block_size: 16,
        prefill_us_per_token: 50,
        decode_ms_per_step: 10,
    };

    #[test]
    fn capacity_follows_the_timings() {
        // 1,860-token prompts, 64 output tokens: 8.5 sequences fit the KV cache; per request
        // 93 ms of prefill + 64 × 10 ms / 8.5 of decode → 5.96/s per replica.
        let c = capacity(&REPLICAS, 1860.0, 64.0);
        assert!((c - 4.0 * 5.96).abs() < 0.1, "{c}");
        // Short prompts: the batch is capped by max-num-seqs and decode dominates.
        let short = capacity(&REPLICAS, 100.0, 64.0);
        assert!((short - 4.0 / (0.005 + 0.04)).abs() < 0.1, "{short}");
        let slower = ReplicaSettings {
            prefill_us_per_token: 100,
            ..REPLICAS
        };
        assert!(capacity(&slower, 1860.0, 64.0) < c);
    }

    #[test]
    fn the_flags_say_the_settings() {
        let args = REPLICAS.args("127.0.0.1:0", "m").join(" ");
        assert!(args.contains("--max-num-seqs 16 --kv-blocks 1024 --block-size 16"));
        assert!(args.contains("--prefill-us-per-token 50 --decode-ms-per-step 10"));
        assert_eq!(REPLICAS.kv_tokens(), 16_384);
    }
}
