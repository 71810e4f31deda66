//! Splitting a server-sent-events body into its events, for assertions.

/// One event: its `event:` name (if any) and its `data:` payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}

pub fn parse(body: &str) -> Vec<Event> {
    body.replace("\r\n", "\n")
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event:") {
                    event = Some(name.trim().to_owned());
                } else if let Some(payload) = line.strip_prefix("data:") {
                    data.push(payload.strip_prefix(' ').unwrap_or(payload));
                }
            }
            Event {
                event,
                data: data.join("\n"),
            }
        })
        .collect()
}
