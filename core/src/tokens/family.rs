//! Tokenizer families: which table prices a model's text and which chat format wraps it.

use super::count::Tables;
use super::tables;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// OpenAI `o200k_base`: GPT-4o, GPT-4.1, GPT-5, o-series.
    O200k,
    /// OpenAI `cl100k_base`: GPT-4, GPT-3.5, and the embeddings models.
    Cl100k,
    /// Llama 3.x. Its vocabulary is cl100k_base's plus 28k multilingual tokens and its
    /// pre-tokenizer is cl100k's, so it is priced with the cl100k table (not measured separately:
    /// no Llama 3 tokenizer is available offline here).
    Llama3,
    /// Qwen 2 / 2.5 / 3 (byte-level BPE, single-digit numbers).
    Qwen,
    /// Anthropic Claude.
    Claude,
}

impl Family {
    pub const ALL: [Family; 5] = [
        Family::O200k,
        Family::Cl100k,
        Family::Llama3,
        Family::Qwen,
        Family::Claude,
    ];

    /// The name used in the configuration (`models.<name>.tokenizer`).
    pub fn name(self) -> &'static str {
        match self {
            Self::O200k => "o200k",
            Self::Cl100k => "cl100k",
            Self::Llama3 => "llama3",
            Self::Qwen => "qwen",
            Self::Claude => "claude",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn tables(self) -> &'static Tables {
        match self {
            Self::O200k => &tables::O200K,
            Self::Cl100k | Self::Llama3 => &tables::CL100K,
            Self::Qwen => &tables::QWEN,
            Self::Claude => &tables::CLAUDE,
        }
    }

    /// The family a model name most likely belongs to, when the configuration does not say.
    pub fn guess(model: &str) -> Self {
        let name = model
            .rsplit('/')
            .next()
            .unwrap_or(model)
            .to_ascii_lowercase();
        let starts = |prefix: &str| name.starts_with(prefix);
        if starts("claude") {
            Self::Claude
        } else if starts("qwen") {
            Self::Qwen
        } else if starts("llama") || starts("meta-llama") {
            Self::Llama3
        } else if starts("gpt-4-")
            || name == "gpt-4"
            || starts("gpt-3.5")
            || starts("text-embedding")
            || starts("gpt-4-turbo")
        {
            Self::Cl100k
        } else {
            Self::O200k
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_family = "wasm")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::Family;

    #[test]
    fn names_round_trip_and_models_are_guessed() {
        for family in Family::ALL {
            assert_eq!(Family::from_name(family.name()), Some(family));
        }
        assert_eq!(Family::from_name("gpt2"), None);
        assert_eq!(Family::guess("gpt-4o-mini"), Family::O200k);
        assert_eq!(Family::guess("gpt-4.1"), Family::O200k);
        assert_eq!(Family::guess("gpt-4-0613"), Family::Cl100k);
        assert_eq!(Family::guess("gpt-3.5-turbo"), Family::Cl100k);
        assert_eq!(
            Family::guess("meta-llama/Llama-3.1-8B-Instruct"),
            Family::Llama3
        );
        assert_eq!(Family::guess("Qwen/Qwen2.5-7B-Instruct"), Family::Qwen);
        assert_eq!(Family::guess("claude-sonnet-4-5"), Family::Claude);
        assert_eq!(Family::guess("mystery"), Family::O200k);
    }
}
