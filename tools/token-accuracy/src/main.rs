//! The Rust half of `make token-accuracy` (the Python half, `accuracy.py`, runs the reference
//! tokenizers). Reads the corpus as JSON lines (`{"id","class","split","text"}`) on stdin.
//!
//! - `pieces`: the distinct pieces of the training texts, as the estimator's scanner cuts them,
//!   keyed like the estimator's tables, for calibration: `{"rules","key","text","n"}`.
//! - `estimate`: the estimator's count per text and family: `{"id","o200k",...}`.
//! - `throughput`: MB/s of counting the whole corpus, per family.
//! - `requests`: reads whole chat requests instead (`{"id","body"}`, an OpenAI Chat
//!   Completions body) and prints the filter's prompt estimate per family, as the context-window
//!   check and quotas see it: `{"id","o200k",...,"llama3",...}`.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_core::api::parse;
use sluice_core::canonical::ApiKind;
use sluice_core::tokens::scan::{Piece, Rules, scan};
use sluice_core::tokens::{Budget, Family, count, estimate_request};

struct Sample {
    id: String,
    split: String,
    text: String,
}

fn read_corpus() -> Vec<Sample> {
    std::io::stdin()
        .lock()
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(&line.expect("stdin")).expect("JSON line");
            let field = |name: &str| value[name].as_str().expect(name).to_owned();
            Sample {
                id: field("id"),
                split: field("split"),
                text: field("text"),
            }
        })
        .collect()
}

fn key(piece: Piece) -> String {
    match piece {
        Piece::Word { case, prefix, len } => format!("w/{}/{}/{len}", case as u8, prefix as u8),
        Piece::Repeat { mark, len } => format!("r/{}/{len}", u8::from(mark)),
        Piece::Contraction => "c".to_owned(),
        Piece::Digits { len } => format!("d/{len}"),
        Piece::Punct { prefixed, len } => format!("p/{}/{len}", u8::from(prefixed)),
        Piece::Space { newline, len } => format!("s/{}/{len}", u8::from(newline)),
        Piece::Chars {
            class,
            prefixed,
            chars,
        } => format!("x/{}/{}/{chars}", class as u8, u8::from(prefixed)),
    }
}

fn pieces(corpus: &[Sample]) {
    let variants = [
        (
            "plain",
            Rules {
                split_camel_case: false,
            },
        ),
        (
            "camel",
            Rules {
                split_camel_case: true,
            },
        ),
    ];
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (name, rules) in variants {
        let mut seen: HashMap<(String, &str), u64> = HashMap::new();
        for sample in corpus.iter().filter(|s| s.split == "train") {
            scan(&sample.text, rules, |piece, start, end| {
                *seen
                    .entry((key(piece), &sample.text[start..end]))
                    .or_default() += 1;
            });
        }
        let mut rows: Vec<_> = seen.into_iter().collect();
        rows.sort();
        for ((key, text), n) in rows {
            let line = json!({"rules": name, "key": key, "text": text, "n": n});
            writeln!(out, "{line}").expect("stdout");
        }
    }
}

fn estimate(corpus: &[Sample]) {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for sample in corpus {
        let mut line = json!({"id": sample.id});
        for family in Family::ALL {
            line[family.name()] = json!(count(&sample.text, family));
        }
        writeln!(out, "{line}").expect("stdout");
    }
}

fn throughput(corpus: &[Sample]) {
    let bytes: usize = corpus.iter().map(|s| s.text.len()).sum();
    let mut result = json!({"bytes": bytes});
    for family in [Family::O200k, Family::Cl100k, Family::Qwen, Family::Claude] {
        let started = Instant::now();
        let mut rounds = 0u32;
        let mut total = 0u64;
        while started.elapsed() < Duration::from_secs(1) {
            for sample in corpus {
                total += count(std::hint::black_box(&sample.text), family);
            }
            rounds += 1;
        }
        let seconds = started.elapsed().as_secs_f64();
        let mb_per_s = bytes as f64 * f64::from(rounds) / seconds / 1e6;
        std::hint::black_box(total);
        result[family.name()] = json!((mb_per_s * 10.0).round() / 10.0);
    }
    println!("{result}");
}

fn requests() {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in std::io::stdin().lock().lines() {
        let value: Value = serde_json::from_str(&line.expect("stdin")).expect("JSON line");
        let body = serde_json::to_vec(&value["body"]).expect("body");
        let parsed = parse(ApiKind::ChatCompletions, &body).expect("a valid chat request");
        let mut row = json!({"id": value["id"]});
        for family in Family::ALL {
            let budget = Budget {
                default_max_output_tokens: 0,
                context_window: None,
            };
            let estimate = estimate_request(&parsed.request, family, budget);
            row[family.name()] = json!(estimate.prompt_tokens);
            row[format!("{}_high", family.name())] = json!(estimate.prompt_tokens_high);
        }
        writeln!(out, "{row}").expect("stdout");
    }
}

fn main() {
    let command = std::env::args().nth(1).unwrap_or_default();
    if command == "requests" {
        requests();
        return;
    }
    let corpus = read_corpus();
    match command.as_str() {
        "pieces" => pieces(&corpus),
        "estimate" => estimate(&corpus),
        "throughput" => throughput(&corpus),
        _ => {
            eprintln!(
                "usage: sluice-token-accuracy pieces|estimate|throughput < corpus.jsonl, \
                 requests < requests.jsonl"
            );
            std::process::exit(2);
        }
    }
}
