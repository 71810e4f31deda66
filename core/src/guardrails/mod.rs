//! Guardrails: detectors for PII, secrets, deny rules and prompt-injection signals, run on the
//! text of requests and of responses (whole JSON bodies and streams), and policy checks (models
//! allowed, prompt and output limits) per tenant, model or the default policy.
//!
//! Everything is compiled once per configuration (`Guardrails::build`): one `RegexSet` over
//! every regular-expression detector finds which may match in one linear pass, and only those
//! run again for positions; deny words and injection phrases are Aho-Corasick automatons. All
//! matching happens on folded text (`normalize`), so case, width, accents, zero-width and bidi
//! characters and whitespace runs do not hide a word.
//!
//! Findings carry rule ids and byte ranges, never the matched text: errors, logs, metrics and
//! audit records name rules only.

pub mod detectors;
pub mod fail_closed;
pub mod injection;
pub mod json_text;
pub mod normalize;
mod phrases;
mod prefix;
mod rewrite;
mod screen;
pub mod stream;

use std::collections::BTreeMap;
use std::ops::Range;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use crate::canonical::{CanonicalRequest, SegmentRole};
use crate::response_text::{self, BodyRead, Form};
use json_text::Lexer;
use normalize::Normalized;
pub use rewrite::{rewrite_strings, string_edits};
pub use stream::StreamGuard;

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Reject the request (400 `content_policy_violation`), or replace a whole JSON response
    /// by that error; a stream, whose status has left, ends with an error event instead.
    Block,
    /// Replace the match with the rule's placeholder (`[EMAIL]`).
    Redact,
    /// Count and record the hit only.
    Log,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Redact => "redact",
            Self::Log => "log",
        }
    }
}

/// Which way the scanned text was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Request,
    Response,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Response => "response",
        }
    }
}

/// Rule id of the prompt-injection signal.
pub const INJECTION_RULE: &str = "prompt_injection";

/// The default rule set: what `guardrails: {}` turns on.
pub const DEFAULT_ACTIONS: &[(&str, Action)] = &[
    ("private_key", Action::Block),
    ("jwt", Action::Redact),
    ("anthropic_key", Action::Block),
    ("openai_key", Action::Block),
    ("aws_access_key", Action::Block),
    ("github_token", Action::Block),
    ("slack_token", Action::Block),
    ("email", Action::Redact),
    ("credit_card", Action::Redact),
    ("iban", Action::Redact),
    ("us_ssn", Action::Redact),
    ("phone", Action::Redact),
    ("ipv4", Action::Log),
    ("ipv6", Action::Log),
    (INJECTION_RULE, Action::Block),
];

/// Roles whose text a policy scans in requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub system: bool,
    pub user: bool,
    pub assistant: bool,
    pub tool_results: bool,
    pub tool_definitions: bool,
}

impl Default for Roles {
    /// What users and tools bring in; not the operator's own system prompt.
    fn default() -> Self {
        Self {
            system: false,
            user: true,
            assistant: false,
            tool_results: true,
            tool_definitions: false,
        }
    }
}

impl Roles {
    fn scans(self, role: SegmentRole) -> bool {
        match role {
            SegmentRole::System => self.system,
            SegmentRole::User => self.user,
            SegmentRole::Assistant => self.assistant,
            SegmentRole::ToolResult => self.tool_results,
            SegmentRole::ToolDefinition => self.tool_definitions,
        }
    }
}

/// A deny rule as configured: words or phrases and regular expressions, matched on folded text.
#[derive(Debug, Clone, Default)]
pub struct DenySpec {
    pub id: String,
    pub words: Vec<String>,
    pub patterns: Vec<String>,
}

/// A policy as configured, before rule ids are resolved.
#[derive(Debug, Clone)]
pub struct PolicySpec {
    pub name: String,
    /// Rule id to action; `None` means the default rule set.
    pub rules: Option<BTreeMap<String, Action>>,
    /// Rule id to action on responses; `None` means `rules` without `prompt_injection`.
    pub response_rules: Option<BTreeMap<String, Action>>,
    pub roles: Roles,
    pub responses: bool,
    pub models: Option<Vec<String>>,
    pub max_prompt_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
}

impl PolicySpec {
    pub fn default_named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            rules: None,
            response_rules: None,
            roles: Roles::default(),
            // As `policies.<name>.responses` defaults: the stream hold-back keeps only a
            // possibly unfinished match (about a word) back.
            responses: true,
            models: None,
            max_prompt_tokens: None,
            max_output_tokens: None,
        }
    }
}

/// Everything configured, before compilation.
#[derive(Debug, Clone)]
pub struct GuardrailsSpec {
    pub policies: Vec<PolicySpec>,
    /// Model name (exact, `prefix*` or `*`) to policy name.
    pub models: BTreeMap<String, String>,
    /// Tenant id to policy name.
    pub tenants: BTreeMap<String, String>,
    /// Envoy route name to policy name.
    pub routes: BTreeMap<String, String>,
    pub deny: Vec<DenySpec>,
    pub injection_phrases: BTreeMap<String, f32>,
    pub injection_threshold: f32,
    pub stream_holdback_bytes: usize,
}

/// Why a configuration could not be compiled: the field (relative to `guardrails`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    pub field: String,
    pub message: String,
}

fn build_error(field: impl Into<String>, message: impl Into<String>) -> BuildError {
    BuildError {
        field: field.into(),
        message: message.into(),
    }
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    /// Action per rule index; `None`: the rule is off.
    actions: Vec<Option<Action>>,
    pub roles: Roles,
    pub responses: bool,
    models: Option<Vec<String>>,
    pub max_prompt_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
}

impl Policy {
    pub fn action(&self, rule: usize) -> Option<Action> {
        self.actions.get(rule).copied().flatten()
    }

    fn allows_model(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|models| models.iter().any(|p| name_matches(p, model)))
    }

    fn any_enabled(&self) -> bool {
        self.actions.iter().any(Option::is_some)
    }
}

/// `*`, `prefix*` or an exact name.
fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// A regular-expression detector.
#[derive(Debug)]
struct RegexRule {
    rule: usize,
    regex: Regex,
    validate: Option<detectors::Validator>,
    /// What every match needs: how a scan tells cheaply that the rule cannot match.
    gate: screen::Gate,
}

/// Longest candidate a validator rejected that is looked into again for a valid match inside
/// it; the bound keeps the extra work per text linear.
const RETRY_BYTES: usize = 64;

/// Shorter candidates (cut before one of its last separators) tried at the start of a rejected
/// one.
const SHORTER_TRIES: usize = 3;

impl RegexRule {
    /// Calls `found` with every match `accept` (the validator) takes, in order. The leftmost
    /// longest candidate is not always the secret: a card number followed by its CVV or
    /// expiry, a phone number followed by other digits, reads as one longer number that fails
    /// its checksum, and digits before a card can start a candidate that swallows its first
    /// group. So a short rejected candidate is tried again cut before one of its last
    /// separators, then the search goes on from its next character rather than its end.
    fn find_valid(
        &self,
        haystack: &str,
        accept: impl Fn(Range<usize>) -> bool,
        mut found: impl FnMut(Range<usize>),
    ) {
        let mut from = 0usize;
        while let Some(m) = self.regex.find_at(haystack, from) {
            let short = m.len() <= RETRY_BYTES;
            let valid = if m.is_empty() {
                None
            } else if accept(m.range()) {
                Some(m.range())
            } else if short {
                self.shorter(haystack, m.range(), &accept)
            } else {
                None
            };
            from = match valid {
                Some(range) => {
                    let end = range.end;
                    found(range);
                    end
                }
                None if short || m.is_empty() => {
                    let next = haystack
                        .get(m.start()..)
                        .and_then(|rest| rest.chars().next())
                        .map_or(1, char::len_utf8);
                    m.start().saturating_add(next)
                }
                None => m.end(),
            };
            if from > haystack.len() {
                break;
            }
        }
    }

    /// A valid match starting where `candidate` does and ending before one of its last
    /// separators. Cut there, the text ends before a byte that is not a word character, so
    /// `\b` reads the same as in the whole text.
    fn shorter(
        &self,
        haystack: &str,
        candidate: Range<usize>,
        accept: &impl Fn(Range<usize>) -> bool,
    ) -> Option<Range<usize>> {
        let bytes = haystack.as_bytes();
        let cuts = (candidate.start.saturating_add(1)..candidate.end)
            .rev()
            .filter(|&at| {
                let separator = bytes
                    .get(at)
                    .is_some_and(|b| b.is_ascii() && !b.is_ascii_alphanumeric() && *b != b'_');
                let after_word = at
                    .checked_sub(1)
                    .and_then(|before| bytes.get(before))
                    .is_some_and(u8::is_ascii_alphanumeric);
                separator && after_word
            })
            .take(SHORTER_TRIES);
        cuts.filter_map(|cut| self.regex.find_at(haystack.get(..cut)?, candidate.start))
            .find(|m| m.start() == candidate.start && !m.is_empty() && accept(m.range()))
            .map(|m| m.range())
    }
}

/// One rule matched: which, and where in the scanned (original) text. Never the text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: usize,
    pub range: Range<usize>,
}

/// Rule hits of one request or response, for metrics and the audit record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hits(pub BTreeMap<(usize, Action), u32>);

impl Hits {
    pub fn add(&mut self, rule: usize, action: Action) {
        let count = self.0.entry((rule, action)).or_default();
        *count = count.saturating_add(1);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn merge(&mut self, other: &Hits) {
        for (key, n) in &other.0 {
            let count = self.0.entry(*key).or_default();
            *count = count.saturating_add(*n);
        }
    }
}

/// Why a request may not go upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A block rule matched; the rule id.
    Blocked(String),
    /// The policy does not allow the model.
    ModelNotAllowed(String),
    /// A policy limit: `max_prompt_tokens` or `max_output_tokens`.
    Limit {
        field: &'static str,
        limit: u64,
        requested: u64,
    },
}

/// What the request guard decided for a request that may go on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestVerdict {
    /// The policy that applied (index), which also guards the response.
    pub policy: usize,
    pub hits: Hits,
    /// Texts to replace in the body: (original, redacted).
    pub replacements: Vec<(String, String)>,
}

/// What the response guard decided for a whole JSON response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonVerdict {
    Unchanged,
    /// The body with the redactions.
    Redacted(Vec<u8>),
    /// A block rule matched; its id. The response is replaced by an error.
    Blocked(String),
}

/// What the response guard decided for a whole JSON response it read with token accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonGuarded {
    pub verdict: JsonVerdict,
    /// With `Redacted`, the texts it changed: (index in the body's `located.sites`, new text),
    /// for accounting's estimate of what the client got. Empty for a body that is not JSON.
    pub replaced: Vec<(usize, String)>,
}

/// How a text is read: as it is, or as JSON text (tool-call arguments) read from a lexer state
/// (`json_text`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    Plain,
    Json(Lexer),
}

impl Reading {
    /// How text of `kind` is read from its beginning.
    pub fn of(kind: response_text::Kind) -> Self {
        if kind.is_json() {
            Self::Json(Lexer::default())
        } else {
            Self::Plain
        }
    }
}

/// What the guard decided for one complete text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextVerdict {
    Clean,
    Redacted(String),
    /// A block rule matched (this rule index).
    Blocked(usize),
}

/// The compiled guardrails of one configuration.
#[derive(Debug)]
pub struct Guardrails {
    /// Rule ids by index: built-ins, then `prompt_injection`, then deny rules.
    rules: Vec<String>,
    placeholders: Vec<String>,
    regex_rules: Vec<RegexRule>,
    /// The regex rules gated by the strings their matches start with, searched for at once.
    screen: Option<screen::Screen>,
    /// The other regex rules (indexes into `regex_rules`), run together by `set` when the
    /// text holds the bytes one of them needs.
    set_rules: Vec<usize>,
    set: RegexSet,
    words: Option<(AhoCorasick, Vec<usize>)>,
    injection: Option<(AhoCorasick, Vec<f32>)>,
    /// The injection phrases indexed for a search of word starts only, when they all allow it
    /// (same order as `injection`'s patterns).
    injection_starts: Option<phrases::PhraseStarts>,
    injection_rule: usize,
    injection_threshold: f32,
    pub policies: Vec<Policy>,
    /// The rules each policy applies to responses (same index as `policies`).
    response_policies: Vec<Policy>,
    default_policy: usize,
    model_policies: Vec<(String, usize)>,
    tenant_policies: BTreeMap<String, usize>,
    route_policies: BTreeMap<String, usize>,
    pub stream_holdback_bytes: usize,
    /// Per policy that guards responses: where a regex rule's match could still be unfinished
    /// at the end of a stream's text (see `prefix`).
    tails: Vec<Option<Regex>>,
    /// Every deny word and injection phrase (folded, sorted) with its rule, and the longest's
    /// length: where a phrase could still be unfinished.
    phrases: Vec<(String, usize)>,
    longest_phrase: usize,
}

/// Compiled size limits for configured regular expressions: a pattern that would need more is
/// a configuration error, not a memory blow-up on every worker.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
const REGEX_DFA_LIMIT: usize = 2 << 20;

impl Guardrails {
    pub fn build(spec: GuardrailsSpec) -> Result<Self, BuildError> {
        let mut rules: Vec<String> = detectors::BUILTINS
            .iter()
            .map(|b| b.id.to_owned())
            .collect();
        let injection_rule = rules.len();
        rules.push(INJECTION_RULE.to_owned());
        let mut patterns: Vec<String> = detectors::BUILTINS
            .iter()
            .map(|b| b.pattern.to_owned())
            .collect();
        let mut regex_rules = Vec::new();
        for (i, builtin) in detectors::BUILTINS.iter().enumerate() {
            let regex = Regex::new(builtin.pattern)
                .map_err(|e| build_error(format!("(built-in {})", builtin.id), e.to_string()))?;
            regex_rules.push(RegexRule {
                rule: i,
                regex,
                validate: Some(builtin.validate),
                gate: screen::Gate::of(builtin.pattern),
            });
        }
        let mut words: Vec<String> = Vec::new();
        let mut word_rules: Vec<usize> = Vec::new();
        for (i, deny) in spec.deny.iter().enumerate() {
            let field = format!("deny[{i}]");
            if deny.id.is_empty()
                || !deny
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(build_error(
                    format!("{field}.id"),
                    "must be non-empty lowercase letters, digits and _",
                ));
            }
            if rules.contains(&deny.id) {
                return Err(build_error(
                    format!("{field}.id"),
                    format!("{:?} is already a rule id", deny.id),
                ));
            }
            if deny.words.is_empty() && deny.patterns.is_empty() {
                return Err(build_error(field, "needs words or patterns"));
            }
            let rule = rules.len();
            rules.push(deny.id.clone());
            for (j, word) in deny.words.iter().enumerate() {
                let folded = normalize::fold(word);
                if folded.is_empty() {
                    return Err(build_error(
                        format!("{field}.words[{j}]"),
                        "is empty once folded",
                    ));
                }
                // `pipe bomb` also matches `pipe-bomb`, `pipe_bomb` and `pipebomb`.
                if folded.contains(' ') {
                    for joiner in ["-", "_", ""] {
                        words.push(folded.replace(' ', joiner));
                        word_rules.push(rule);
                    }
                }
                words.push(folded);
                word_rules.push(rule);
            }
            for (j, pattern) in deny.patterns.iter().enumerate() {
                let pfield = format!("{field}.patterns[{j}]");
                let regex = RegexBuilder::new(pattern)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(REGEX_DFA_LIMIT)
                    .build()
                    .map_err(|e| build_error(&pfield, first_line(&e.to_string())))?;
                patterns.push(pattern.clone());
                regex_rules.push(RegexRule {
                    rule,
                    regex,
                    validate: None,
                    gate: screen::Gate::of(pattern),
                });
            }
        }
        let mut literal_gates: Vec<(usize, &[Vec<u8>])> = Vec::new();
        let mut set_rules = Vec::new();
        for (index, rule) in regex_rules.iter().enumerate() {
            match &rule.gate {
                screen::Gate::Literals(strings) => literal_gates.push((index, strings)),
                screen::Gate::Bytes(_) => set_rules.push(index),
            }
        }
        let screen = screen::Screen::new(&literal_gates).map_err(|e| build_error("deny", e))?;
        let set_patterns = set_rules.iter().filter_map(|&i| patterns.get(i));
        let set = RegexSetBuilder::new(set_patterns)
            .size_limit(REGEX_SIZE_LIMIT.saturating_mul(8))
            .dfa_size_limit(REGEX_DFA_LIMIT.saturating_mul(4))
            .build()
            .map_err(|e| build_error("deny", first_line(&e.to_string())))?;
        let word_phrases: Vec<(String, usize)> = words
            .iter()
            .cloned()
            .zip(word_rules.iter().copied())
            .collect();
        let words = if words.is_empty() {
            None
        } else {
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&words)
                .map_err(|e| build_error("deny", e.to_string()))?;
            Some((ac, word_rules))
        };
        let mut phrases: BTreeMap<String, f32> = injection::PHRASES
            .iter()
            .map(|(p, w)| ((*p).to_owned(), *w))
            .collect();
        for (phrase, weight) in &spec.injection_phrases {
            let folded = normalize::fold(phrase);
            if folded.is_empty() || !weight.is_finite() || *weight < 0.0 {
                return Err(build_error(
                    format!("injection.phrases.{phrase}"),
                    "needs a non-empty phrase and a weight of 0 or more",
                ));
            }
            phrases.insert(folded, *weight);
        }
        let mut all_phrases: Vec<(String, usize)> = word_phrases
            .into_iter()
            .chain(phrases.keys().map(|p| (p.clone(), injection_rule)))
            .collect();
        all_phrases.sort();
        all_phrases.dedup();
        let longest_phrase = all_phrases.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
        let (phrase_list, weights): (Vec<String>, Vec<f32>) = phrases.into_iter().unzip();
        let injection_starts = phrases::PhraseStarts::new(&phrase_list);
        let injection = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&phrase_list)
            .map_err(|e| build_error("injection.phrases", e.to_string()))?;
        if !spec.injection_threshold.is_finite() || spec.injection_threshold <= 0.0 {
            return Err(build_error("injection.threshold", "must be greater than 0"));
        }
        let placeholders = rules
            .iter()
            .map(|id| format!("[{}]", id.to_ascii_uppercase()))
            .collect();
        let mut built = Self {
            rules,
            placeholders,
            regex_rules,
            screen,
            set_rules,
            set,
            words,
            injection: Some((injection, weights)),
            injection_starts,
            injection_rule,
            injection_threshold: spec.injection_threshold,
            policies: Vec::new(),
            response_policies: Vec::new(),
            default_policy: 0,
            model_policies: Vec::new(),
            tenant_policies: BTreeMap::new(),
            route_policies: BTreeMap::new(),
            stream_holdback_bytes: spec.stream_holdback_bytes,
            tails: Vec::new(),
            phrases: all_phrases,
            longest_phrase,
        };
        if !(16..=65_536).contains(&spec.stream_holdback_bytes) {
            return Err(build_error("stream_holdback_bytes", "must be 16 to 65536"));
        }
        let mut specs = spec.policies;
        if !specs.iter().any(|p| p.name == "default") {
            specs.push(PolicySpec::default_named("default"));
        }
        for policy in specs {
            let response = built.compile_response_policy(&policy)?;
            let compiled = built.compile_policy(policy)?;
            built.policies.push(compiled);
            built.response_policies.push(response);
        }
        // Responses' hold-back: one prefix pattern per policy over the regex rules it enables.
        for policy in &built.response_policies {
            let tail = if policy.responses {
                let enabled: Vec<&str> = built
                    .regex_rules
                    .iter()
                    .zip(&patterns)
                    .filter(|(rule, _)| policy.action(rule.rule).is_some())
                    .map(|(_, pattern)| pattern.as_str())
                    .collect();
                if enabled.is_empty() {
                    None
                } else {
                    let field = format!("policies.{}", policy.name);
                    Some(prefix::tail_regex(enabled).map_err(|e| build_error(field, e))?)
                }
            } else {
                None
            };
            built.tails.push(tail);
        }
        built.default_policy = built
            .policies
            .iter()
            .position(|p| p.name == "default")
            .unwrap_or(0);
        let find = |name: &str, field: String, policies: &[Policy]| {
            policies
                .iter()
                .position(|p| p.name == name)
                .ok_or_else(|| build_error(field, format!("no policy named {name:?}")))
        };
        for (model, policy) in &spec.models {
            let index = find(policy, format!("models.{model}"), &built.policies)?;
            built.model_policies.push((model.clone(), index));
        }
        // Exact names first, then longer prefixes, `*` last.
        built
            .model_policies
            .sort_by_key(|(pattern, _)| (pattern.ends_with('*'), std::cmp::Reverse(pattern.len())));
        for (tenant, policy) in &spec.tenants {
            let index = find(policy, format!("tenants.{tenant}"), &built.policies)?;
            built.tenant_policies.insert(tenant.clone(), index);
        }
        for (route, policy) in &spec.routes {
            if route.is_empty() {
                return Err(build_error("routes", "a route name must not be empty"));
            }
            let index = find(policy, format!("routes.{route}"), &built.policies)?;
            built.route_policies.insert(route.clone(), index);
        }
        Ok(built)
    }

    fn compile_policy(&self, spec: PolicySpec) -> Result<Policy, BuildError> {
        let field = format!("policies.{}.rules", spec.name);
        let actions = self.compile_actions(spec.rules.as_ref(), &field)?;
        Ok(Policy {
            name: spec.name,
            actions,
            roles: spec.roles,
            responses: spec.responses,
            models: spec.models,
            max_prompt_tokens: spec.max_prompt_tokens,
            max_output_tokens: spec.max_output_tokens,
        })
    }

    /// The rules a policy applies to responses: `response_rules`, else its request rules
    /// without `prompt_injection` (a model explaining injection would otherwise be cut off).
    fn compile_response_policy(&self, spec: &PolicySpec) -> Result<Policy, BuildError> {
        let actions = match &spec.response_rules {
            Some(rules) => self.compile_actions(
                Some(rules),
                &format!("policies.{}.response_rules", spec.name),
            )?,
            None => {
                let mut actions = self.compile_actions(
                    spec.rules.as_ref(),
                    &format!("policies.{}.rules", spec.name),
                )?;
                if let Some(slot) = actions.get_mut(self.injection_rule) {
                    *slot = None;
                }
                actions
            }
        };
        Ok(Policy {
            name: spec.name.clone(),
            actions,
            roles: spec.roles,
            responses: spec.responses,
            models: None,
            max_prompt_tokens: None,
            max_output_tokens: None,
        })
    }

    fn compile_actions(
        &self,
        rules: Option<&BTreeMap<String, Action>>,
        field: &str,
    ) -> Result<Vec<Option<Action>>, BuildError> {
        let mut actions = vec![None; self.rules.len()];
        match rules {
            None => {
                for (id, action) in DEFAULT_ACTIONS {
                    if let Some(i) = self.rule_index(id) {
                        if let Some(slot) = actions.get_mut(i) {
                            *slot = Some(*action);
                        }
                    }
                }
            }
            Some(rules) => {
                for (id, action) in rules {
                    let i = self.rule_index(id).ok_or_else(|| {
                        build_error(
                            format!("{field}.{id}"),
                            "no detector or deny rule has this id",
                        )
                    })?;
                    if let Some(slot) = actions.get_mut(i) {
                        *slot = Some(*action);
                    }
                }
            }
        }
        Ok(actions)
    }

    fn rule_index(&self, id: &str) -> Option<usize> {
        self.rules.iter().position(|r| r == id)
    }

    /// Every rule id, by index.
    pub fn rule_ids(&self) -> &[String] {
        &self.rules
    }

    pub fn rule_id(&self, rule: usize) -> &str {
        self.rules.get(rule).map_or("unknown", String::as_str)
    }

    pub fn policy(&self, index: usize) -> Option<&Policy> {
        self.policies.get(index)
    }

    /// The rules policy `index` applies to responses.
    pub fn response_policy(&self, index: usize) -> Option<&Policy> {
        self.response_policies.get(index)
    }

    /// Whether any policy is chosen by Envoy route (the host then reads the route name).
    pub fn has_route_policies(&self) -> bool {
        !self.route_policies.is_empty()
    }

    /// The policy for a request: its Envoy route's when it has one, else its tenant's, else its
    /// model's (exact, longest prefix, `*`), else `default`: the most specific deployment
    /// choice first. `tenant` is `None` without quotas; `route` is `None` when no policy is
    /// chosen by route.
    pub fn policy_for(&self, route: Option<&str>, tenant: Option<&str>, model: &str) -> usize {
        if let Some(index) = route.and_then(|r| self.route_policies.get(r)) {
            return *index;
        }
        if let Some(index) = tenant.and_then(|t| self.tenant_policies.get(t)) {
            return *index;
        }
        self.model_policies
            .iter()
            .find(|(pattern, _)| name_matches(pattern, model))
            .map_or(self.default_policy, |(_, index)| *index)
    }

    /// Where, in a stream's unreleased `text`, a match of a rule the policy enables could
    /// still be unfinished: the text before may be released; `text.len()` when none could.
    pub fn unfinished_from(&self, policy: usize, text: &str) -> usize {
        let Some(rules) = self.response_policies.get(policy) else {
            return text.len();
        };
        let folded = Normalized::new(text);
        let mut at =
            prefix::phrase_tail_start(&self.phrases, self.longest_phrase, &folded.text, |rule| {
                rules.action(rule).is_some()
            });
        if let Some(Some(regex)) = self.tails.get(policy) {
            at = at.min(prefix::regex_tail_start(regex, &folded.text));
        }
        if at >= folded.text.len() {
            return text.len();
        }
        folded.original_start(at).unwrap_or(0)
    }

    /// Every finding of the rules `policy` enables in `text`, in order of position.
    pub fn scan(&self, policy: &Policy, text: &str) -> Vec<Finding> {
        let mut findings = Vec::new();
        if text.is_empty() || !policy.any_enabled() {
            return findings;
        }
        let folded = Normalized::new(text);
        let haystack = folded.text.as_str();
        let mut push = |rule: usize, range: Range<usize>| {
            if let Some(original) = folded.original_range(text, range) {
                findings.push(Finding {
                    rule,
                    range: original,
                });
            }
        };
        for index in self.regex_candidates(policy, &folded) {
            let Some(rule) = self.regex_rules.get(index) else {
                continue;
            };
            let accept = |range: Range<usize>| {
                rule.validate.is_none_or(|validate| {
                    let original = folded
                        .original_range(text, range.clone())
                        .and_then(|r| text.get(r))
                        .unwrap_or_default();
                    validate(haystack, range, original)
                })
            };
            rule.find_valid(haystack, accept, |range| push(rule.rule, range));
        }
        if let Some((ac, word_rules)) = &self.words {
            for m in ac.find_iter(haystack) {
                let Some(rule) = word_rules.get(m.pattern().as_usize()).copied() else {
                    continue;
                };
                if policy.action(rule).is_some() && at_word_boundaries(haystack, m.range()) {
                    push(rule, m.range());
                }
            }
        }
        if policy.action(self.injection_rule).is_some() {
            if let Some((ac, weights)) = &self.injection {
                // Phrases as the overlapping automaton reports them, found by word starts when
                // they are indexed (`phrases`), in the same order.
                let found: Vec<(usize, Range<usize>)> = match &self.injection_starts {
                    Some(starts) => starts.find(haystack),
                    None => ac
                        .find_overlapping_iter(haystack)
                        .map(|m| (m.pattern().as_usize(), m.range()))
                        .collect(),
                };
                let mut seen = vec![false; weights.len()];
                let mut score = 0.0f32;
                let mut spans = Vec::new();
                for (id, range) in found {
                    if !at_word_boundaries(haystack, range.clone()) {
                        continue;
                    }
                    if let Some(seen) = seen.get_mut(id) {
                        if !*seen {
                            *seen = true;
                            score += weights.get(id).copied().unwrap_or(0.0);
                        }
                    }
                    spans.push(range);
                }
                if score >= self.injection_threshold {
                    for span in spans {
                        push(self.injection_rule, span);
                    }
                }
            }
        }
        findings.sort_by_key(|f| (f.range.start, std::cmp::Reverse(f.range.end)));
        findings
    }

    /// The regex rules (indexes into `regex_rules`, ascending) `policy` enables that could match
    /// the folded text: those whose gate string occurs, and those the set matches when their
    /// gate bytes are present. The others cannot match (see `screen`).
    fn regex_candidates(&self, policy: &Policy, folded: &Normalized) -> Vec<usize> {
        let enabled = |index: &usize| {
            self.regex_rules
                .get(*index)
                .is_some_and(|rule| policy.action(rule.rule).is_some())
        };
        let mut candidates = Vec::new();
        if let Some(screen) = &self.screen {
            screen.mark(&folded.text, &mut candidates);
            candidates.retain(enabled);
        }
        let mut present = screen::Presence::new(&folded.text);
        let set_needed = self.set_rules.iter().filter(|i| enabled(i)).any(|&i| {
            self.regex_rules
                .get(i)
                .is_some_and(|rule| rule.gate.open(&mut present))
        });
        if set_needed {
            for matched in self.set.matches(&folded.text).iter() {
                if let Some(&index) = self.set_rules.get(matched) {
                    if enabled(&index) {
                        candidates.push(index);
                    }
                }
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates
    }

    /// `text` with every finding whose action (per `policy`) is block or redact replaced by its
    /// rule's placeholder; overlapping findings merge under the first one's placeholder.
    /// Counts every finding in `hits` (block counts as redact in `Direction::Response`).
    pub fn redact(
        &self,
        policy: &Policy,
        text: &str,
        findings: &[Finding],
        hits: &mut Hits,
        direction: Direction,
    ) -> Option<String> {
        self.redact_read(policy, text, findings, hits, direction, Reading::Plain)
    }

    /// `redact` for text read as `reading`: in JSON text, placeholders keep it valid JSON.
    pub fn redact_read(
        &self,
        policy: &Policy,
        text: &str,
        findings: &[Finding],
        hits: &mut Hits,
        direction: Direction,
        reading: Reading,
    ) -> Option<String> {
        // Spans to replace, overlapping findings merged, each with its first finding's rule.
        let mut spans: Vec<(Range<usize>, usize)> = Vec::new();
        for finding in findings {
            let Some(mut action) = policy.action(finding.rule) else {
                continue;
            };
            if action == Action::Block && direction == Direction::Response {
                action = Action::Redact;
            }
            hits.add(finding.rule, action);
            if action == Action::Log {
                continue;
            }
            match spans.last_mut() {
                Some((span, _)) if finding.range.start < span.end => {
                    span.end = span.end.max(finding.range.end);
                }
                _ => spans.push((finding.range.clone(), finding.rule)),
            }
        }
        if spans.is_empty() {
            return None;
        }
        let classes = match reading {
            Reading::Plain => Vec::new(),
            Reading::Json(lexer) => lexer.classes(text.as_bytes()),
        };
        let mut out = String::with_capacity(text.len());
        let mut copied = 0usize;
        for (span, rule) in spans {
            let placeholder = self
                .placeholders
                .get(rule)
                .map_or("[REDACTED]", String::as_str);
            out.push_str(text.get(copied..span.start).unwrap_or_default());
            match reading {
                Reading::Plain => out.push_str(placeholder),
                Reading::Json(_) => {
                    json_text::write_redaction(&mut out, text, &classes, span.clone(), placeholder);
                }
            }
            copied = span.end;
        }
        out.push_str(text.get(copied..).unwrap_or_default());
        Some(out)
    }

    /// Every finding in `text` read as `reading`, in order of position, as byte ranges of
    /// `text`. In JSON text the detectors read the decoded view; a finding covers whole escapes
    /// and whole bare tokens.
    pub fn find(&self, policy: &Policy, text: &str, reading: Reading) -> Vec<Finding> {
        let Reading::Json(lexer) = reading else {
            return self.scan(policy, text);
        };
        let view = json_text::View::new(text, lexer);
        let classes = lexer.classes(text.as_bytes());
        let mut findings: Vec<Finding> = self
            .scan(policy, &view.text)
            .into_iter()
            .map(|f| Finding {
                rule: f.rule,
                range: json_text::widen(&classes, view.raw_range(f.range)),
            })
            .collect();
        findings.sort_by_key(|f| (f.range.start, std::cmp::Reverse(f.range.end)));
        findings
    }

    /// `unfinished_from` for text read as `reading` (a byte offset of `text`).
    pub fn unfinished_in(&self, policy: usize, text: &str, reading: Reading) -> usize {
        let Reading::Json(lexer) = reading else {
            return self.unfinished_from(policy, text);
        };
        let view = json_text::View::new(text, lexer);
        let at = self.unfinished_from(policy, &view.text);
        view.raw_at(at).min(view.covered)
    }

    /// Guards one complete text: blocked when a block rule matches (the first one found; the
    /// other findings are not counted), else redacted when anything was.
    pub fn guard_text(
        &self,
        policy: &Policy,
        text: &str,
        reading: Reading,
        hits: &mut Hits,
    ) -> TextVerdict {
        let findings = self.find(policy, text, reading);
        if findings.is_empty() {
            return TextVerdict::Clean;
        }
        if let Some(blocking) = findings
            .iter()
            .find(|f| policy.action(f.rule) == Some(Action::Block))
        {
            hits.add(blocking.rule, Action::Block);
            return TextVerdict::Blocked(blocking.rule);
        }
        match self.redact_read(policy, text, &findings, hits, Direction::Response, reading) {
            Some(redacted) => TextVerdict::Redacted(redacted),
            None => TextVerdict::Clean,
        }
    }

    /// Checks a request against its policy: the model, the limits, then every scanned text.
    /// `prompt_tokens` is the gateway's estimate.
    pub fn check_request(
        &self,
        route: Option<&str>,
        tenant: Option<&str>,
        model: &str,
        request: &CanonicalRequest<'_>,
        prompt_tokens: u64,
    ) -> Result<RequestVerdict, (Violation, Hits)> {
        let policy_index = self.policy_for(route, tenant, model);
        let mut verdict = RequestVerdict {
            policy: policy_index,
            ..RequestVerdict::default()
        };
        let Some(policy) = self.policies.get(policy_index) else {
            return Ok(verdict);
        };
        if !policy.allows_model(model) {
            return Err((
                Violation::ModelNotAllowed(model.to_owned()),
                Hits::default(),
            ));
        }
        if let Some(limit) = policy.max_prompt_tokens {
            if prompt_tokens > limit {
                return Err((
                    Violation::Limit {
                        field: "max_prompt_tokens",
                        limit,
                        requested: prompt_tokens,
                    },
                    Hits::default(),
                ));
            }
        }
        if let (Some(limit), Some(requested)) =
            (policy.max_output_tokens, request.max_output_tokens)
        {
            if requested > limit {
                return Err((
                    Violation::Limit {
                        field: "max_output_tokens",
                        limit,
                        requested,
                    },
                    Hits::default(),
                ));
            }
        }
        if !policy.any_enabled() {
            return Ok(verdict);
        }
        for segment in request.segments() {
            if !policy.roles.scans(segment.role) {
                continue;
            }
            let findings = self.scan(policy, segment.text);
            if findings.is_empty() {
                continue;
            }
            if let Some(blocking) = findings
                .iter()
                .find(|f| policy.action(f.rule) == Some(Action::Block))
            {
                verdict.hits.add(blocking.rule, Action::Block);
                let id = self.rule_id(blocking.rule).to_owned();
                return Err((Violation::Blocked(id), verdict.hits));
            }
            if let Some(redacted) = self.redact(
                policy,
                segment.text,
                &findings,
                &mut verdict.hits,
                Direction::Request,
            ) {
                if !verdict.replacements.iter().any(|(o, _)| o == segment.text) {
                    verdict
                        .replacements
                        .push((segment.text.to_owned(), redacted));
                }
            }
        }
        Ok(verdict)
    }

    /// Guards every model-produced text of a whole JSON response (chat, completions, Anthropic
    /// messages, Responses; `response_text` says where they are): blocked when a block rule
    /// matches (the first one found; the other findings are not counted), else the new body
    /// when anything was redacted, each text rewritten in place. A body that is not JSON is
    /// guarded as one text.
    pub fn guard_json_response(
        &self,
        policy: &Policy,
        body: &[u8],
        hits: &mut Hits,
    ) -> JsonVerdict {
        self.guard_json_read(policy, body, &BodyRead::new(body), hits)
            .verdict
    }

    /// `guard_json_response` of a body already read (`read`, shared with token accounting).
    pub fn guard_json_read(
        &self,
        policy: &Policy,
        body: &[u8],
        read: &BodyRead,
        hits: &mut Hits,
    ) -> JsonGuarded {
        let mut guarded = JsonGuarded {
            verdict: JsonVerdict::Unchanged,
            replaced: Vec::new(),
        };
        if !read.json {
            let text = String::from_utf8_lossy(body);
            guarded.verdict = match self.guard_text(policy, &text, Reading::Plain, hits) {
                TextVerdict::Clean => JsonVerdict::Unchanged,
                TextVerdict::Redacted(text) => JsonVerdict::Redacted(text.into_bytes()),
                TextVerdict::Blocked(rule) => JsonVerdict::Blocked(self.rule_id(rule).to_owned()),
            };
            return guarded;
        }
        let mut out: Vec<u8> = Vec::new();
        let mut copied = 0usize;
        for (index, site) in read.located.sites.iter().enumerate() {
            let Some(text) = site.text(body) else {
                continue;
            };
            let reading = Reading::of(site.channel.kind);
            let redacted = match self.guard_text(policy, &text, reading, hits) {
                TextVerdict::Clean => continue,
                TextVerdict::Blocked(rule) => {
                    guarded.verdict = JsonVerdict::Blocked(self.rule_id(rule).to_owned());
                    guarded.replaced.clear();
                    return guarded;
                }
                TextVerdict::Redacted(redacted) => redacted,
            };
            out.extend_from_slice(body.get(copied..site.value.start).unwrap_or_default());
            match site.form {
                // Writing a string into a Vec cannot fail.
                Form::String => {
                    let _ = serde_json::to_writer(&mut out, &redacted);
                }
                Form::Json => out.extend_from_slice(redacted.as_bytes()),
            }
            copied = site.value.end;
            guarded.replaced.push((index, redacted));
        }
        if copied == 0 {
            return guarded;
        }
        out.extend_from_slice(body.get(copied..).unwrap_or_default());
        guarded.verdict = JsonVerdict::Redacted(out);
        guarded
    }
}

/// Whether the match starts and ends on a word boundary (no letter or digit glued to it).
fn at_word_boundaries(text: &str, range: Range<usize>) -> bool {
    let before = text
        .get(..range.start)
        .and_then(|t| t.chars().next_back())
        .is_some_and(char::is_alphanumeric);
    let after = text
        .get(range.end..)
        .and_then(|t| t.chars().next())
        .is_some_and(char::is_alphanumeric);
    let first = text.get(range.clone()).and_then(|t| t.chars().next());
    let last = text.get(range).and_then(|t| t.chars().next_back());
    // A phrase that starts or ends with punctuation needs no boundary on that side.
    (!before || !first.is_some_and(char::is_alphanumeric))
        && (!after || !last.is_some_and(char::is_alphanumeric))
}

fn first_line(text: &str) -> String {
    text.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or(text)
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod model_text_tests;

#[cfg(test)]
mod eval;
