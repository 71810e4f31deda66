//! Precision and recall of every detector on the labelled corpus in `tools/guardrail-eval/`
//! (`make guardrail-eval` prints the table). Runs natively only: the corpus is read at test
//! time relative to the crate.
#![cfg(not(target_family = "wasm"))]

use std::collections::BTreeMap;

use super::*;

/// The deny rule the corpus's `weapons` rows exercise.
fn corpus_guardrails() -> Guardrails {
    Guardrails::build(GuardrailsSpec {
        policies: Vec::new(),
        models: BTreeMap::new(),
        tenants: BTreeMap::new(),
        routes: BTreeMap::new(),
        deny: vec![DenySpec {
            id: "weapons".into(),
            words: vec!["pipe bomb".into(), "nerve agent".into()],
            patterns: vec![r"\bbuild (?:a|an) (?:bomb|explosive)\b".into()],
        }],
        injection_phrases: BTreeMap::new(),
        injection_threshold: injection::DEFAULT_THRESHOLD,
        stream_holdback_bytes: 256,
    })
    .unwrap()
}

#[derive(Default)]
struct Score {
    tp: u32,
    fn_: u32,
    fp: u32,
    tn: u32,
    misses: Vec<String>,
}

#[test]
fn corpus_precision_and_recall() {
    let corpus = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tools/guardrail-eval/corpus.tsv"
    ))
    .unwrap();
    let g = corpus_guardrails();
    let mut policy = g.policies[g.default_policy].clone();
    policy.actions = vec![Some(Action::Log); g.rules.len()];
    let mut scores: BTreeMap<String, Score> = BTreeMap::new();
    for line in corpus
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let mut fields = line.splitn(3, '\t');
        let (detector, label, text) = (
            fields.next().unwrap(),
            fields.next().unwrap() == "1",
            fields.next().unwrap().replace("\\n", "\n"),
        );
        let found = g
            .scan(&policy, &text)
            .iter()
            .any(|f| g.rule_id(f.rule) == detector);
        let score = scores.entry(detector.to_owned()).or_default();
        match (label, found) {
            (true, true) => score.tp += 1,
            (true, false) => {
                score.fn_ += 1;
                score.misses.push(format!("missed: {text:?}"));
            }
            (false, true) => {
                score.fp += 1;
                score.misses.push(format!("false positive: {text:?}"));
            }
            (false, false) => score.tn += 1,
        }
    }
    println!("| detector | positives | negatives | precision | recall | false positives |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut failures = Vec::new();
    for (detector, s) in &scores {
        let precision = f64::from(s.tp) / f64::from((s.tp + s.fp).max(1));
        let recall = f64::from(s.tp) / f64::from((s.tp + s.fn_).max(1));
        println!(
            "| {detector} | {} | {} | {precision:.3} | {recall:.3} | {} |",
            s.tp + s.fn_,
            s.fp + s.tn,
            s.fp
        );
        if recall < 0.99 || s.fp > 0 {
            failures.push(format!("{detector}: {:?}", s.misses));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
