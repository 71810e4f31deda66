//! Message content as both APIs accept it: a plain string, or an array of typed parts of which
//! only the text parts matter to the simulator.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TextContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// Any content part; non-text parts (images, tool calls) have no `text` and add nothing.
#[derive(Debug, Deserialize)]
pub struct ContentPart {
    #[serde(default)]
    pub text: Option<String>,
}

impl TextContent {
    pub fn append_to(&self, prompt: &mut String) {
        match self {
            Self::Text(text) => prompt.push_str(text),
            Self::Parts(parts) => parts
                .iter()
                .filter_map(|part| part.text.as_deref())
                .for_each(|text| prompt.push_str(text)),
        }
    }
}
