use super::{Load, ReadError, ServerKind, read_load};

/// A vLLM V1 page with two data-parallel engines, process metrics first as vLLM writes them,
/// histograms, and two LoRA info series of which the later one (by value) is current.
const VLLM: &str = r#"# HELP python_gc_objects_collected_total Objects collected during gc
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 12345.0
process_resident_memory_bytes 2.1e+09
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.0
vllm:num_requests_running{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 5.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.0
vllm:num_requests_waiting{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.5
vllm:kv_cache_usage_perc{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.25
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.99
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",cache_dtype="auto",enable_prefix_caching="True",num_gpu_blocks="27000"} 1.0
# TYPE vllm:lora_requests_info gauge
vllm:lora_requests_info{max_lora="4",running_lora_adapters="old",waiting_lora_adapters=""} 1.7000000e+09
vllm:lora_requests_info{max_lora="4",running_lora_adapters="sql-lora,chat-lora",waiting_lora_adapters="tool-lora"} 1.7000005e+09
vllm:lora_requests_info{max_lora="4",running_lora_adapters="older",waiting_lora_adapters=""} 1.6999e+09
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.001",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 42.0
vllm:time_to_first_token_seconds_count{model_name="meta-llama/Llama-3.1-8B-Instruct"} 42.0
vllm:time_to_first_token_seconds_sum{model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.5
"#;

/// An older vLLM (V0): only `gpu_cache_usage_perc`, no LoRA series.
const VLLM_V0: &str = "vllm:num_requests_running{model_name=\"m\"} 3\n\
                       vllm:num_requests_waiting{model_name=\"m\"} 0\n\
                       vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.125\n\
                       vllm:cache_config_info{block_size=\"32\"} 1\n";

const SGLANG: &str = r#"# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="Qwen/Qwen2.5-7B-Instruct"} 9.0
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="Qwen/Qwen2.5-7B-Instruct"} 4.0
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="Qwen/Qwen2.5-7B-Instruct"} 0.37
# TYPE sglang:cache_config_info gauge
sglang:cache_config_info{model_name="Qwen/Qwen2.5-7B-Instruct",num_pages="80000",page_size="1"} 1.0
sglang:gen_throughput{model_name="Qwen/Qwen2.5-7B-Instruct"} 1234.5
"#;

const TRTLLM: &str = "# TYPE trtllm_num_requests_waiting gauge\n\
                      trtllm_num_requests_waiting{model_name=\"m\",engine_type=\"trtllm\"} 6\n\
                      trtllm_num_requests_running{model_name=\"m\",engine_type=\"trtllm\"} 8\n\
                      trtllm_kv_cache_utilization{model_name=\"m\"} 0.75\n\
                      trtllm_kv_cache_tokens_per_block{model_name=\"m\"} 64\n\
                      trtllm_kv_cache_max_blocks{model_name=\"m\"} 4096\n";

const TRITON: &str = r#"# HELP nv_trt_llm_request_metrics TRT LLM request metrics
# TYPE nv_trt_llm_request_metrics gauge
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="context",version="1"} 1
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="scheduled",version="1"} 11
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="max",version="1"} 256
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="active",version="1"} 12
nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="waiting",version="1"} 5
# TYPE nv_trt_llm_kv_cache_block_metrics gauge
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction",model="tensorrt_llm",version="1"} 0.6
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="tokens_per",model="tensorrt_llm",version="1"} 128
nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max",model="tensorrt_llm",version="1"} 2048
nv_inference_count{model="tensorrt_llm",version="1"} 100
"#;

fn read(text: &str) -> (ServerKind, Load) {
    read_load(text, None).unwrap()
}

#[test]
fn vllm_sums_counts_averages_fractions_and_takes_the_latest_lora_series() {
    let (kind, load) = read(VLLM);
    assert_eq!(kind, ServerKind::Vllm);
    assert_eq!(load.waiting, 3);
    assert_eq!(load.running, 12);
    // The new gauge wins over the legacy alias; the two engines are averaged.
    assert!(
        (load.kv_cache_usage - 0.375).abs() < 1e-6,
        "{}",
        load.kv_cache_usage
    );
    assert_eq!(load.block_size, 16);
    assert_eq!(load.lora.max, 4);
    assert_eq!(load.lora.running, ["sql-lora", "chat-lora"]);
    assert_eq!(load.lora.waiting, ["tool-lora"]);
}

#[test]
fn older_vllm_falls_back_to_gpu_cache_usage() {
    let (kind, load) = read(VLLM_V0);
    assert_eq!(kind, ServerKind::Vllm);
    assert_eq!((load.waiting, load.running), (0, 3));
    assert_eq!(load.kv_cache_usage, 0.125);
    assert_eq!(load.block_size, 32);
    assert_eq!(load.lora, Default::default());
}

#[test]
fn sglang() {
    let (kind, load) = read(SGLANG);
    assert_eq!(kind, ServerKind::Sglang);
    assert_eq!((load.waiting, load.running), (4, 9));
    assert!((load.kv_cache_usage - 0.37).abs() < 1e-6);
    assert_eq!(load.block_size, 1);
}

#[test]
fn trtllm_serve() {
    let (kind, load) = read(TRTLLM);
    assert_eq!(kind, ServerKind::Trtllm);
    assert_eq!((load.waiting, load.running), (6, 8));
    assert_eq!(load.kv_cache_usage, 0.75);
    assert_eq!(load.block_size, 64);
}

#[test]
fn triton_reads_its_labelled_gauges() {
    let (kind, load) = read(TRITON);
    assert_eq!(kind, ServerKind::Triton);
    assert_eq!((load.waiting, load.running), (5, 11));
    assert!((load.kv_cache_usage - 0.6).abs() < 1e-6);
    assert_eq!(load.block_size, 128);
}

#[test]
fn a_forced_dialect_reads_only_its_own_names() {
    let mixed = format!("{SGLANG}{VLLM_V0}");
    assert_eq!(read(&mixed).0, ServerKind::Vllm, "detection prefers vLLM");
    let (kind, load) = read_load(&mixed, Some(ServerKind::Sglang)).unwrap();
    assert_eq!((kind, load.waiting), (ServerKind::Sglang, 4));
    assert_eq!(
        read_load(SGLANG, Some(ServerKind::Triton)),
        Err(ReadError::NoKnownMetrics(Some(ServerKind::Triton)))
    );
}

#[test]
fn garbage_and_foreign_pages_are_errors() {
    for text in [
        "",
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
        "\0\u{1}\u{2}garbage{{{{ \n }}}}",
        "# only comments\n# TYPE x gauge\n",
        "node_load1 0.5\nprocess_cpu_seconds_total 12\n",
    ] {
        assert_eq!(
            read_load(text, None),
            Err(ReadError::NoKnownMetrics(None)),
            "{text:?}"
        );
    }
}

#[test]
fn missing_required_signals_are_named() {
    let no_waiting = "vllm:num_requests_running 1\nvllm:kv_cache_usage_perc 0.5\n";
    assert_eq!(
        read_load(no_waiting, None),
        Err(ReadError::Missing(
            ServerKind::Vllm,
            "vllm:num_requests_waiting"
        ))
    );
    let no_running = "sglang:num_queue_reqs 1\n";
    assert_eq!(
        read_load(no_running, None),
        Err(ReadError::Missing(
            ServerKind::Sglang,
            "sglang:num_running_reqs"
        ))
    );
    let triton_without_scheduled =
        "nv_trt_llm_request_metrics{request_type=\"waiting\",model=\"m\"} 1\n";
    assert!(matches!(
        read_load(triton_without_scheduled, None),
        Err(ReadError::Missing(ServerKind::Triton, _))
    ));
}

#[test]
fn optional_signals_default_to_zero() {
    let (_, load) = read("vllm:num_requests_running 2\nvllm:num_requests_waiting 1\n");
    assert_eq!(load.kv_cache_usage, 0.0);
    assert_eq!(load.block_size, 0);
    assert_eq!(load.lora, Default::default());
}

#[test]
fn untrustworthy_values_are_ignored_one_sample_at_a_time() {
    // NaN, infinities, negatives and malformed lines are dropped; the good series still count.
    let text = "vllm:num_requests_waiting{engine=\"0\"} NaN\n\
                vllm:num_requests_waiting{engine=\"1\"} +Inf\n\
                vllm:num_requests_waiting{engine=\"2\"} -4\n\
                vllm:num_requests_waiting{engine=\"3\" 9\n\
                vllm:num_requests_waiting{engine=\"4\"} nine\n\
                vllm:num_requests_waiting{engine=\"5\"} 2\n\
                vllm:num_requests_running 1\n\
                vllm:kv_cache_usage_perc{engine=\"0\"} NaN\n\
                vllm:kv_cache_usage_perc{engine=\"1\"} 0.5\n";
    let (_, load) = read(text);
    assert_eq!((load.waiting, load.running), (2, 1));
    assert_eq!(load.kv_cache_usage, 0.5);

    // A required signal with only unusable samples fails the page.
    let text = "vllm:num_requests_waiting NaN\nvllm:num_requests_running 1\n";
    assert!(matches!(
        read_load(text, None),
        Err(ReadError::Missing(_, "vllm:num_requests_waiting"))
    ));
}

#[test]
fn huge_numbers_saturate_and_fractions_are_clamped() {
    let text = "vllm:num_requests_waiting 1e300\n\
                vllm:num_requests_waiting{engine=\"1\"} 1e300\n\
                vllm:num_requests_running 4294967296\n\
                vllm:kv_cache_usage_perc 7.5\n\
                vllm:cache_config_info{block_size=\"99999999999999\"} 1\n\
                vllm:lora_requests_info{max_lora=\"-3\",running_lora_adapters=\",, a ,\",waiting_lora_adapters=\"b\"} 1\n";
    let (_, load) = read(text);
    assert_eq!(load.waiting, u32::MAX);
    assert_eq!(load.running, u32::MAX);
    assert_eq!(load.kv_cache_usage, 1.0);
    assert_eq!(load.block_size, u32::MAX);
    assert_eq!(load.lora.max, 0);
    assert_eq!(load.lora.running, ["a"]);
    assert_eq!(load.lora.waiting, ["b"]);
}

#[test]
fn lora_lists_are_bounded() {
    let many: Vec<String> = (0..1000).map(|i| format!("adapter-{i}")).collect();
    let long = "x".repeat(300);
    let text = format!(
        "vllm:num_requests_waiting 0\nvllm:num_requests_running 0\n\
         vllm:lora_requests_info{{max_lora=\"2.0\",running_lora_adapters=\"{}\",waiting_lora_adapters=\"{long},ok\"}} 5\n\
         vllm:lora_requests_info{{max_lora=\"2\",running_lora_adapters=\"stale\",waiting_lora_adapters=\"\"}} NaN\n",
        many.join(",")
    );
    let (_, load) = read(&text);
    assert_eq!(load.lora.max, 2);
    assert_eq!(load.lora.running.len(), 256);
    assert_eq!(load.lora.waiting, ["ok"]);
}

#[test]
fn the_simulators_page_reads_as_vllm() {
    // The shape of sluice-simulator's /metrics (one series per name, `model_name` on each).
    let text = "# TYPE vllm:num_requests_running gauge\n\
                vllm:num_requests_running{model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 1\n\
                # TYPE vllm:num_requests_waiting gauge\n\
                vllm:num_requests_waiting{model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 6\n\
                vllm:kv_cache_usage_perc{model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 0.01171875\n\
                vllm:gpu_cache_usage_perc{model_name=\"meta-llama/Llama-3.1-8B-Instruct\"} 0.01171875\n\
                vllm:cache_config_info{model_name=\"meta-llama/Llama-3.1-8B-Instruct\",block_size=\"16\",enable_prefix_caching=\"True\",num_gpu_blocks=\"2048\"} 1\n\
                vllm:lora_requests_info{model_name=\"meta-llama/Llama-3.1-8B-Instruct\",max_lora=\"2\",running_lora_adapters=\"sql-lora\",waiting_lora_adapters=\"\"} 1763780000.123\n";
    let (kind, load) = read(text);
    assert_eq!(kind, ServerKind::Vllm);
    assert_eq!((load.waiting, load.running, load.block_size), (6, 1, 16));
    assert_eq!(load.lora.running, ["sql-lora"]);
    assert!(load.lora.waiting.is_empty());
}

#[test]
fn config_names_round_trip() {
    for kind in ServerKind::ALL {
        assert_eq!(ServerKind::from_config(kind.as_str()), Some(kind));
    }
    assert_eq!(ServerKind::from_config("VLLM"), None);
}
