//! Reading an OpenAI chat completion stream as it arrives: when the first content token came,
//! how many came, and the usage chunk at the end. Network chunks split events at any byte, so
//! unfinished lines are carried over to the next chunk.

/// What one chunk of bytes brought.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Content chunks (non-empty `delta.content`) in this piece of the stream.
    pub content_events: u32,
}

#[derive(Debug, Default)]
pub struct StreamReader {
    carry: Vec<u8>,
    /// `usage.completion_tokens` of the final usage chunk.
    pub completion_tokens: Option<u64>,
    pub content_events: u64,
    pub done: bool,
    /// Lines that were `data:` but not JSON (other than `[DONE]`).
    pub malformed: u32,
}

impl StreamReader {
    pub fn feed(&mut self, bytes: &[u8]) -> Progress {
        self.carry.extend_from_slice(bytes);
        let mut progress = Progress::default();
        while let Some(end) = self.carry.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.carry.drain(..=end).collect();
            self.line(&line, &mut progress);
        }
        progress
    }

    fn line(&mut self, line: &[u8], progress: &mut Progress) {
        let line = String::from_utf8_lossy(line);
        let Some(data) = line.trim_end().strip_prefix("data:") else {
            return;
        };
        let data = data.trim_start();
        if data == "[DONE]" {
            self.done = true;
            return;
        }
        let Ok(event) = serde_json::from_str::<serde_json::Value>(data) else {
            self.malformed += 1;
            return;
        };
        let content = &event["choices"][0]["delta"]["content"];
        if content.as_str().is_some_and(|c| !c.is_empty()) {
            progress.content_events += 1;
            self.content_events += 1;
        }
        if let Some(tokens) = event["usage"]["completion_tokens"].as_u64() {
            self.completion_tokens = Some(tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StreamReader;

    const STREAM: &str = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}\n\n\
        data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}],\"usage\":null}\n\n\
        data: {\"choices\":[{\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"length\"}],\"usage\":null}\n\n\
        data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n\
        data: [DONE]\n\n";

    #[test]
    fn counts_content_and_reads_usage_whatever_the_splits() {
        for split in [1, 2, 7, 50, STREAM.len()] {
            let mut reader = StreamReader::default();
            let mut first_content_at = None;
            for (i, piece) in STREAM.as_bytes().chunks(split).enumerate() {
                if reader.feed(piece).content_events > 0 && first_content_at.is_none() {
                    first_content_at = Some(i);
                }
            }
            assert_eq!(reader.content_events, 2, "split {split}");
            assert_eq!(reader.completion_tokens, Some(2));
            assert!(reader.done);
            assert_eq!(reader.malformed, 0);
            // The role-only opening chunk is not the first token.
            let opening = STREAM.find("Hel").expect("content") / split;
            assert!(first_content_at.is_some_and(|i| i >= opening));
        }
    }

    #[test]
    fn an_unfinished_stream_is_not_done() {
        let mut reader = StreamReader::default();
        reader.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"cho");
        assert_eq!(reader.content_events, 1);
        assert!(!reader.done);
        assert_eq!(reader.completion_tokens, None);
        reader.feed(b"data: nonsense\n");
        assert_eq!(reader.malformed, 1);
    }
}
