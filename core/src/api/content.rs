//! Wire shapes several APIs share: message content (a string or typed parts), tool definitions,
//! and prompt inputs (strings or token ids). Parsed loosely (unknown fields are ignored: clients
//! send many parameters the gateway passes on untouched) but typed where the gateway reads.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::canonical::{Image, ImageDetail, Part, Tool};
use crate::json::FieldError;

/// A string, or an array of `T`: message content (parts), Responses `input` (items).
#[derive(Debug)]
pub(crate) enum TextOr<'a, T> {
    Text(Cow<'a, str>),
    Items(Vec<T>),
}

/// `content`: a string, or an array of typed parts.
pub(crate) type WireContent<'a> = TextOr<'a, WirePart<'a>>;

impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for TextOr<'a, T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextOrVisitor(PhantomData))
    }
}

struct TextOrVisitor<'a, T>(PhantomData<(&'a (), T)>);

impl<'de: 'a, 'a, T: Deserialize<'de>> Visitor<'de> for TextOrVisitor<'a, T> {
    type Value = TextOr<'a, T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(TextOr::Text(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(TextOr::Text(Cow::Owned(v.to_owned())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(TextOr::Items(items))
    }
}

/// One content part of any kind, OpenAI or Anthropic; only the fields the gateway reads.
#[derive(Debug, Deserialize)]
pub(crate) struct WirePart<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_use_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<WireContent<'a>>,
    /// OpenAI chat `{url, detail}`, or Responses' bare URL string.
    #[serde(borrow, default)]
    image_url: Option<WireImageUrl<'a>>,
    /// Responses' `detail` beside `image_url`.
    #[serde(borrow, default)]
    detail: Option<Cow<'a, str>>,
    /// Anthropic's image `source` (`{type: base64, data}` or `{type: url, url}`).
    #[serde(borrow, default)]
    source: Option<WireImageSource<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum WireImageUrl<'a> {
    Url(#[serde(borrow)] Cow<'a, str>),
    Object {
        #[serde(borrow, default)]
        url: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        detail: Option<Cow<'a, str>>,
    },
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireImageSource<'a> {
    #[serde(borrow, default)]
    data: Option<Cow<'a, str>>,
}

/// A field's JSON path (like `messages[3].content`), written only when an error names it: a
/// request that is fine builds none.
pub(crate) type Path<'p> = &'p dyn Fn() -> String;

impl<'a> WireContent<'a> {
    /// The parts, with `path` naming any bad one.
    pub(crate) fn into_parts(self, path: Path<'_>) -> Result<Vec<Part<'a>>, FieldError> {
        match self {
            TextOr::Text(text) => Ok(vec![Part::Text(text)]),
            TextOr::Items(parts) => parts
                .into_iter()
                .enumerate()
                .map(|(i, part)| part.into_part(&|| format!("{}[{i}]", path())))
                .collect(),
        }
    }
}

impl<'a> WirePart<'a> {
    /// The image's detail setting and, for inline images, its size from the header.
    fn image(&self) -> Image {
        let (url, detail) = match &self.image_url {
            Some(WireImageUrl::Url(url)) => (Some(url.as_ref()), self.detail.as_deref()),
            Some(WireImageUrl::Object { url, detail }) => (url.as_deref(), detail.as_deref()),
            None => (None, self.detail.as_deref()),
        };
        let inline = url
            .filter(|url| url.starts_with("data:"))
            .or(self.source.as_ref().and_then(|s| s.data.as_deref()));
        Image {
            detail: match detail {
                Some("low") => ImageDetail::Low,
                Some("high") => ImageDetail::High,
                _ => ImageDetail::Auto,
            },
            size: inline
                .and_then(crate::tokens::image_size_from_data_url)
                .map(|size| (size.width, size.height)),
        }
    }

    fn into_part(self, path: Path<'_>) -> Result<Part<'a>, FieldError> {
        let missing = |field: &str| FieldError::Invalid {
            path: format!("{}.{field}", path()),
            message: format!("a `{}` part needs `{field}`", self.kind),
        };
        Ok(match self.kind.as_ref() {
            "text" | "input_text" | "output_text" => {
                Part::Text(self.text.clone().ok_or_else(|| missing("text"))?)
            }
            "refusal" => Part::Text(self.refusal.clone().ok_or_else(|| missing("refusal"))?),
            "image_url" | "image" | "input_image" => Part::Image(self.image()),
            "tool_use" | "server_tool_use" => Part::ToolCall {
                id: self.id.clone(),
                name: self.name.clone().ok_or_else(|| missing("name"))?,
                arguments: Cow::Borrowed(self.input.map_or("{}", RawValue::get)),
            },
            "tool_result" => Part::ToolResult {
                call_id: self.tool_use_id,
                parts: match self.content {
                    Some(content) => content.into_parts(&|| format!("{}.content", path()))?,
                    None => Vec::new(),
                },
            },
            _ => Part::Other { kind: self.kind },
        })
    }
}

/// A tool definition in any API's shape: OpenAI chat `{type, function: {name, description,
/// parameters}}`, Responses `{type, name, description, parameters}`, Anthropic `{name,
/// description, input_schema}`, or a provider's built-in tool that only has a `type`.
#[derive(Debug, Deserialize)]
pub(crate) struct WireTool<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(crate) kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) parameters: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) input_schema: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) function: Option<WireFunctionDefinition<'a>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct WireFunctionDefinition<'a> {
    #[serde(borrow)]
    pub(crate) name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(crate) description: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(crate) parameters: Option<&'a RawValue>,
    /// OpenAI's strict schema enforcement (read by translation, which cannot carry it).
    #[serde(default)]
    pub(crate) strict: Option<bool>,
}

pub(crate) fn tools<'a>(wire: Vec<WireTool<'a>>, field: &str) -> Result<Vec<Tool<'a>>, FieldError> {
    wire.into_iter()
        .enumerate()
        .map(|(i, tool)| {
            if let Some(function) = tool.function {
                return Ok(Tool {
                    name: function.name,
                    description: function.description,
                    schema: function.parameters.map(RawValue::get),
                });
            }
            // A built-in tool (`web_search`...) is named by its type; a function tool needs a name.
            let builtin = tool.kind.filter(|kind| kind != "function");
            let name = tool.name.or(builtin).ok_or_else(|| FieldError::Invalid {
                path: format!("{field}[{i}].name"),
                message: "a tool needs a `name` (or a `type` for built-in tools)".to_owned(),
            })?;
            Ok(Tool {
                name,
                description: tool.description,
                schema: tool.parameters.or(tool.input_schema).map(RawValue::get),
            })
        })
        .collect()
}

/// A prompt given as a string, an array of strings, an array of token ids, or an array of
/// token-id arrays (OpenAI completions `prompt`, embeddings `input`).
#[derive(Debug)]
pub(crate) struct PromptInput<'a>(pub Vec<Part<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for PromptInput<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PromptVisitor(PhantomData))
    }
}

struct PromptVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for PromptVisitor<'a> {
    type Value = PromptInput<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, an array of strings, or an array of token ids")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(PromptInput(vec![Part::Text(Cow::Borrowed(v))]))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PromptInput(vec![Part::Text(Cow::Owned(v.to_owned()))]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut parts: Vec<Part<'a>> = Vec::new();
        while let Some(element) = seq.next_element::<PromptElement<'a>>()? {
            match (element, parts.last_mut()) {
                // A flat array of token ids is one prompt.
                (PromptElement::TokenId, Some(Part::TokenIds(count))) => {
                    *count = count.saturating_add(1);
                }
                (PromptElement::TokenId, _) => parts.push(Part::TokenIds(1)),
                (PromptElement::TokenIds(n), _) => parts.push(Part::TokenIds(n)),
                (PromptElement::Text(text), _) => parts.push(Part::Text(text)),
            }
        }
        Ok(PromptInput(parts))
    }
}

enum PromptElement<'a> {
    Text(Cow<'a, str>),
    TokenId,
    /// A whole prompt of token ids.
    TokenIds(u64),
}

impl<'de: 'a, 'a> Deserialize<'de> for PromptElement<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PromptElementVisitor(PhantomData))
    }
}

struct PromptElementVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for PromptElementVisitor<'a> {
    type Value = PromptElement<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, a token id, or an array of token ids")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(PromptElement::Text(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PromptElement::Text(Cow::Owned(v.to_owned())))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(PromptElement::TokenId)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut count: u64 = 0;
        while seq.next_element::<u64>()?.is_some() {
            count = count.saturating_add(1);
        }
        Ok(PromptElement::TokenIds(count))
    }
}
