//! Token usage after the request: what the upstream reports (JSON bodies and SSE streams of the
//! OpenAI and Anthropic APIs), what it did not report (estimated from the streamed text), the
//! usage chunk the gateway asked for on the client's behalf (removed again), and the
//! per-request record later stages and access logs read.

pub mod sse;

use std::borrow::Cow;

use serde::Deserialize;

use crate::response_text::{self, BodyRead, Flow, Located, Mode, Site, UsageAt};
use crate::tokens::{Family, Tables, to_tokens};
use sse::{ParsedEvent, Piece, SseSplitter};

/// Token counts an upstream reported; `None` where it said nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: Option<u64>,
    pub output: Option<u64>,
    /// Input tokens served from the prompt cache (OpenAI `cached_tokens`, Anthropic
    /// `cache_read_input_tokens`).
    pub cached: u64,
    /// Anthropic `cache_creation_input_tokens`.
    pub cache_creation: u64,
    /// Output tokens spent on reasoning (`reasoning_tokens`).
    pub reasoning: u64,
}

#[derive(Debug, Default, Deserialize)]
struct WireDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

/// The `usage` object of every API: OpenAI chat/completions/embeddings (`prompt_tokens`...),
/// Responses and Anthropic (`input_tokens`...).
#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<WireDetails>,
    #[serde(default)]
    input_tokens_details: Option<WireDetails>,
    #[serde(default)]
    completion_tokens_details: Option<WireDetails>,
    #[serde(default)]
    output_tokens_details: Option<WireDetails>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Folds these counts into `usage`; later reports win (Anthropic's `message_delta` carries
    /// the cumulative output).
    fn merge_into(self, usage: &mut Usage) {
        let cache_read = self.cache_read_input_tokens;
        if let Some(input) = self.prompt_tokens.or(self.input_tokens) {
            // Anthropic counts cached input apart from `input_tokens`; OpenAI includes it.
            let cache_creation = self.cache_creation_input_tokens.unwrap_or(0);
            let extra = cache_read.unwrap_or(0).saturating_add(cache_creation);
            usage.input = Some(input.saturating_add(extra));
        }
        if let Some(output) = self.completion_tokens.or(self.output_tokens) {
            usage.output = Some(output);
        }
        let details = |d: Option<WireDetails>| d.unwrap_or_default();
        let input_details = details(self.prompt_tokens_details.or(self.input_tokens_details));
        if let Some(cached) = input_details.cached_tokens.or(cache_read) {
            usage.cached = cached;
        }
        if let Some(created) = self.cache_creation_input_tokens {
            usage.cache_creation = created;
        }
        let output_details = details(
            self.completion_tokens_details
                .or(self.output_tokens_details),
        );
        if let Some(reasoning) = output_details.reasoning_tokens {
            usage.reasoning = reasoning;
        }
    }
}

/// What one body or event tells accounting, read in the same single pass that finds its texts
/// (`response_text`): its usage objects merged into `usage` (returns whether there was any),
/// its model, with `tables` its estimated output units (texts that repeat streamed ones left
/// out) and whether it carried any text.
struct Reading {
    reported: bool,
    model: Option<String>,
    units: u64,
    saw_text: bool,
    /// `choices: []` with a usage object: the usage chunk of an OpenAI stream.
    usage_only: bool,
}

fn read(tables: Option<&Tables>, doc: &[u8], mode: Mode, usage: &mut Usage) -> Option<Reading> {
    let located = response_text::locate(doc, mode);
    read_located(tables, doc, &located, |_, site| site.text(doc), usage)
}

/// `read` of a document already located: `text(i, site)` gives the text of its `i`th site
/// (the document's own, or what replaced it).
fn read_located<'d>(
    tables: Option<&Tables>,
    doc: &[u8],
    located: &Located,
    text: impl Fn(usize, &Site) -> Option<Cow<'d, str>>,
    usage: &mut Usage,
) -> Option<Reading> {
    if !located.complete {
        return None;
    }
    let mut reading = Reading {
        reported: false,
        model: located
            .model
            .clone()
            .and_then(|range| doc.get(range))
            .and_then(response_text::raw::decode_string)
            .map(Cow::into_owned),
        units: 0,
        saw_text: false,
        usage_only: false,
    };
    if let Some(tables) = tables {
        for (i, site) in located.sites.iter().enumerate() {
            if site.flow == Flow::Repeat {
                continue;
            }
            if let Some(text) = text(i, site) {
                reading.saw_text = reading.saw_text || !text.is_empty();
                reading.units = reading.units.saturating_add(tables.units(&text));
            }
        }
    }
    for (at, range) in &located.usage {
        let Some(Ok(mut wire)) = doc
            .get(range.clone())
            .map(serde_json::from_slice::<WireUsage>)
        else {
            continue;
        };
        // Anthropic's `message_start` carries a placeholder output count; the real one comes
        // in `message_delta`.
        if *at == UsageAt::MessageStart {
            wire.output_tokens = None;
        }
        wire.merge_into(usage);
        reading.reported = true;
        reading.usage_only = reading.usage_only || (*at == UsageAt::Top && located.no_choices);
    }
    Some(reading)
}

/// What accounting takes from a whole response body read once (`BodyRead`, shared with the
/// response guard): the usage it reports and the model that answered, and, when it reports no
/// output count, the output estimated from its texts. `replaced` holds the texts a redaction
/// changed (site index, new text): the estimate counts what the client got.
pub fn body_counts(
    family: Family,
    body: &[u8],
    read: &BodyRead,
    replaced: &[(usize, String)],
    input_estimate: u64,
) -> Counts {
    let mut usage = Usage::default();
    let reported = if read.json {
        read_located(None, body, &read.located, |_, _| None, &mut usage)
    } else {
        None
    };
    let (usage, model) = match reported {
        Some(reading) if reading.reported => (Some(usage), reading.model),
        _ => (None, None),
    };
    // No output count reported: estimate it from the body's texts.
    let output_estimate = if usage.is_some_and(|u| u.output.is_some()) {
        0
    } else {
        let text = |i: usize, site: &Site| match replaced.iter().find(|(at, _)| *at == i) {
            Some((_, text)) => Some(Cow::Borrowed(text.as_str())),
            None => site.text(body),
        };
        read_located(
            Some(family.tables()),
            body,
            &read.located,
            text,
            &mut Usage::default(),
        )
        .map_or(0, |r| to_tokens(r.units))
    };
    Counts::from_parts(usage, input_estimate, output_estimate).with_model(model)
}

/// The output tokens of a whole response body estimated from its texts, for a body that
/// reports no usage.
pub fn output_estimate_json(family: Family, body: &[u8]) -> u64 {
    let units = read(
        Some(family.tables()),
        body,
        Mode::Body,
        &mut Usage::default(),
    )
    .map_or(0, |r| r.units);
    to_tokens(units)
}

/// The usage in a whole (non-streamed) response body, and the model that answered.
pub fn usage_from_json(body: &[u8]) -> Option<(Usage, Option<String>)> {
    if !response_text::raw::is_json(body) {
        return None;
    }
    let mut usage = Usage::default();
    let reading = read(None, body, Mode::Body, &mut usage)?;
    reading.reported.then_some((usage, reading.model))
}

/// Reads a streamed response as it passes: usage events, the generated text (for an estimate
/// when usage never comes) and, when the gateway asked for usage the client did not, removes
/// what that request added so the client gets the stream it asked for.
#[derive(Debug)]
pub struct StreamReader {
    splitter: SseSplitter,
    tables: &'static Tables,
    /// Remove the usage chunk and `"usage":null` members the gateway's request added.
    strip: bool,
    usage: Usage,
    reported: bool,
    output_units: u64,
    model: Option<String>,
    /// Whether any generated text has been seen (time to first token).
    pub saw_output: bool,
}

/// What to do with one chunk of a stream.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkAction {
    /// Pass the chunk on as it is.
    Pass,
    /// Send these bytes instead.
    Replace(Vec<u8>),
}

impl StreamReader {
    pub fn new(family: Family, strip: bool) -> Self {
        Self {
            splitter: SseSplitter::default(),
            tables: family.tables(),
            strip,
            usage: Usage::default(),
            reported: false,
            output_units: 0,
            model: None,
            saw_output: false,
        }
    }

    /// Reads one chunk; `end` when it is the last.
    pub fn chunk(&mut self, bytes: &[u8], end: bool) -> ChunkAction {
        let mut out: Vec<u8> = Vec::new();
        let strip = self.strip;
        let mut events = Vec::new();
        self.splitter.feed(bytes, |piece| events.push(piece));
        for piece in events {
            match piece {
                Piece::Event(raw) => {
                    let keep = self.event(&ParsedEvent::parse(&raw), true);
                    if strip && keep {
                        out.extend_from_slice(&without_null_usage(&raw));
                    }
                }
                Piece::Raw(raw) => {
                    if strip {
                        out.extend_from_slice(&raw);
                    }
                }
            }
        }
        if end {
            let rest = self.splitter.finish();
            // A last event without its blank line still counts.
            let keep = rest.is_empty() || self.event(&ParsedEvent::parse(&rest), true);
            if strip && keep {
                out.extend_from_slice(&rest);
            }
        }
        if strip && out != bytes {
            ChunkAction::Replace(out)
        } else {
            ChunkAction::Pass
        }
    }

    /// Reads one event (its usage and model, and with `texts` its generated text); returns
    /// whether the client should get it. Without `texts`, what the client got of the text is
    /// counted by `add_output`.
    pub fn event(&mut self, event: &ParsedEvent<'_>, texts: bool) -> bool {
        let Some(located) = &event.located else {
            return true;
        };
        let data: &[u8] = &event.data;
        let tables = texts.then_some(self.tables);
        let Some(reading) = read_located(
            tables,
            data,
            located,
            |_, site| site.text(data),
            &mut self.usage,
        ) else {
            return true;
        };
        if self.model.is_none() {
            self.model = reading.model;
        }
        self.add_output(reading.units, reading.saw_text);
        self.reported = self.reported || reading.reported;
        // The chunk the gateway asked for: `choices: []` with the usage.
        !(self.strip && reading.usage_only)
    }

    /// Generated text the client got: `units` (of this reader's family's tables), `saw_text`
    /// when any of it was not empty.
    pub fn add_output(&mut self, units: u64, saw_text: bool) {
        self.output_units = self.output_units.saturating_add(units);
        self.saw_output = self.saw_output || saw_text;
    }

    /// The tables this reader counts text units with.
    pub fn tables(&self) -> &'static Tables {
        self.tables
    }

    /// Whether it removes the usage chunk the gateway asked for.
    pub fn strips(&self) -> bool {
        self.strip
    }

    /// Bytes held back waiting for the rest of an event (bounded by `sse::MAX_EVENT_BYTES`).
    pub fn held(&self) -> usize {
        self.splitter.held()
    }

    /// The counts at the end of the stream: reported where the upstream reported them,
    /// estimated otherwise (`input_estimate` for the prompt, the streamed text for the output).
    pub fn finish(&self, input_estimate: u64) -> Counts {
        let reported = if self.reported {
            Some(self.usage)
        } else {
            None
        };
        Counts::from_parts(reported, input_estimate, to_tokens(self.output_units))
            .with_model(self.model.clone())
    }
}

/// Removes the `"usage":null` member every chunk carries once usage is asked for.
pub fn without_null_usage(raw: &[u8]) -> Cow<'_, [u8]> {
    let Some(at) = memchr::memmem::find(raw, b"\"usage\"") else {
        return Cow::Borrowed(raw);
    };
    let skip_ws = |mut i: usize| {
        while raw.get(i).is_some_and(|b| *b == b' ') {
            i = i.saturating_add(1);
        }
        i
    };
    let colon = skip_ws(at.saturating_add(7));
    if raw.get(colon) != Some(&b':') {
        return Cow::Borrowed(raw);
    }
    let value = skip_ws(colon.saturating_add(1));
    if raw.get(value..value.saturating_add(4)) != Some(b"null") {
        return Cow::Borrowed(raw);
    }
    let member_end = value.saturating_add(4);
    // Take the comma before the member (`,"usage":null}`) or, when it is first, the one after.
    let mut before = at;
    while before > 0
        && raw
            .get(before.saturating_sub(1))
            .is_some_and(|b| *b == b' ')
    {
        before = before.saturating_sub(1);
    }
    let (from, to) = if before > 0 && raw.get(before.saturating_sub(1)) == Some(&b',') {
        (before.saturating_sub(1), member_end)
    } else {
        let after = skip_ws(member_end);
        if raw.get(after) == Some(&b',') {
            (at, skip_ws(after.saturating_add(1)))
        } else {
            (at, member_end)
        }
    };
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(raw.get(..from).unwrap_or_default());
    out.extend_from_slice(raw.get(to..).unwrap_or_default());
    Cow::Owned(out)
}

/// One request's token counts: what quotas charge, metrics count and access logs print.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counts {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
    pub reasoning: u64,
    /// Some count was estimated by the gateway (the upstream reported none, or not all).
    pub estimated: bool,
    /// The model the upstream says answered, when it said.
    pub response_model: Option<String>,
}

impl Counts {
    /// Reported counts where there are any, the estimates for the rest.
    pub fn from_parts(reported: Option<Usage>, input_estimate: u64, output_estimate: u64) -> Self {
        let usage = reported.unwrap_or_default();
        Self {
            input: usage.input.unwrap_or(input_estimate),
            output: usage.output.unwrap_or(output_estimate),
            cached: usage.cached,
            reasoning: usage.reasoning,
            estimated: usage.input.is_none() || usage.output.is_none(),
            response_model: None,
        }
    }

    fn with_model(mut self, model: Option<String>) -> Self {
        self.response_model = model;
        self
    }

    pub fn total(&self) -> u64 {
        self.input.saturating_add(self.output)
    }

    /// `reported` or `estimated`.
    pub fn source(&self) -> &'static str {
        if self.estimated {
            "estimated"
        } else {
            "reported"
        }
    }
}

/// The per-request record: counts plus what they are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub counts: Counts,
    /// The model the request was routed to.
    pub model: String,
    /// The tenant, once the gateway knows tenants (authentication is a later stage).
    pub tenant: Option<String>,
}

impl TokenRecord {
    /// The optional response header's value.
    pub fn header_value(&self) -> String {
        let c = &self.counts;
        format!(
            "input={}; output={}; cached={}; total={}; source={}",
            c.input,
            c.output,
            c.cached,
            c.total(),
            c.source()
        )
    }
}

#[cfg(test)]
mod tests;
