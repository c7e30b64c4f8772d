#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/ (small valid and near-valid inputs; the fuzzers
mutate them), including issue23-* inputs: small versions of what issue 23 found by hand (deep
JSON, repeated names, sizes that overflow). Run from anywhere: python3 fuzz/make_seeds.py. Inputs
that fuzzing found are added beside these as regress-*; this script leaves such files alone."""
import json, os, struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def joined(*parts):  # the targets split their input at NUL bytes
    return b"\0".join(p if isinstance(p, bytes) else p.encode() for p in parts)


# ---- config: the file, then --set assignments ------------------------------------------------
TINY = {"model": {"vocab_size": 512, "dim": 16, "layers": "(MMME)x2", "d_state": 4,
                  "moe": {"experts": 4, "top_k": 2, "hidden": 32}},
        "train": {"steps": 10, "batch_size": 2, "seq_len": 16, "warmup_steps": 2}}
put("config", "empty", "{}")
put("config", "tiny", json.dumps(TINY, indent=1))
put("config", "comments", '// a comment\n{"train": {"lr": 1e-3, /* inline */ "min_lr": 1e-4}}\n')
put("config", "sets", joined("{}", "train.steps=5", "model.layers=(ME)x2", "device=gpu"))
put("config", "set_section", joined(json.dumps(TINY), 'model.moe={"top_k": 1}', "lora.rank=4"))
put("config", "layer_list", '{"model": {"layers": ["mamba", "moe", "M", "E"]}}')
put("config", "lora", '{"lora": {"rank": 8, "alpha": 16, "target_modules": ["in_proj", "gate"], '
                      '"base_precision": "nf4"}}')
put("config", "fp16", '{"train": {"param_dtype": "fp16", "loss_scaling": true, '
                      '"gradient_checkpointing": "balanced", "activation_dtype": "fp16"}}')
put("config", "typo_key", '{"train": {"stpes": 3}}')
put("config", "wrong_type", '{"model": {"dim": "64"}, "train": {"lr": -1}}')
put("config", "too_big", '{"model": {"dim": 65537, "vocab_size": 2147483647}}')

# ---- safetensors: whole files ------------------------------------------------------------------
def safetensors(tensors, metadata=None, pad_to_8=True, extra=b""):
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad_to_8:
        h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data + extra


f32 = struct.pack("<6f", 1, -2, 3.5, 0, 1e-3, 7)
put("safetensors", "f32", safetensors({"w": ("F32", [2, 3], f32)}, {"format": "pt"}))
put("safetensors", "mixed", safetensors({
    "a": ("F16", [2], struct.pack("<2H", 0x3C00, 0xC000)),
    "b": ("BF16", [1, 2], struct.pack("<2H", 0x3F80, 0x4000)),
    "c": ("I64", [], struct.pack("<q", -5)),
    "d": ("U8", [0], b""),
    "e": ("I32", [3], struct.pack("<3i", 1, 2, 3))}))
put("safetensors", "empty", safetensors({}))
put("safetensors", "gap", safetensors({"w": ("F32", [2, 3], f32)}, extra=b"\0\0\0\0"))
put("safetensors", "bad_dtype", safetensors({"w": ("F64", [3], f32)}))
def raw_safetensors(header_text, data):  # a header written by hand (repeated names, ...)
    return struct.pack("<Q", len(header_text)) + header_text.encode() + data


put("safetensors", "duplicate", raw_safetensors('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                                                '"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4))
put("safetensors", "truncated", safetensors({"w": ("F32", [2, 3], f32)})[:-5])

# ---- checkpoint: config.json NUL trainer_state.json --------------------------------------------
STATE = {"format": "magellano-checkpoint-1", "step": 4, "optimizer_steps": 4, "tokens": 128,
         "batcher": {"seed": 1234, "epoch": 0, "position": 4}}
put("checkpoint", "valid", joined(json.dumps(TINY, indent=2), json.dumps(STATE, indent=2)))
put("checkpoint", "loss_scaler", joined(json.dumps(TINY), json.dumps(dict(STATE, loss_scaler={
    "scale": 32768.0, "clean_steps": 3, "skipped_steps": 1}, init_from="/tmp/base"))))
put("checkpoint", "string_step", joined("{}", json.dumps(dict(STATE, step="4"))))
put("checkpoint", "negative_step", joined("{}", json.dumps(dict(STATE, step=-1))))
put("checkpoint", "no_batcher", joined("{}", json.dumps({k: v for k, v in STATE.items() if k != "batcher"})))
put("checkpoint", "wrong_format", joined("{}", json.dumps(dict(STATE, format=1))))

# ---- token_file: one byte (name and vocabulary), then the file ---------------------------------
def tok(vocab, ids, count=None):
    width = 2 if vocab <= 65536 else 4
    head = b"MGTOKENS" + struct.pack("<IIIIQ", 1, width, vocab, 32, len(ids) if count is None else count)
    return head + b"".join(struct.pack("<H" if width == 2 else "<I", i) for i in ids)


put("token_file", "tok_small", b"\x00" + tok(300, [0, 1, 299, 42, 7]))
put("token_file", "tok_wide", b"\x00" + tok(70000, [65536, 69999, 3]))
put("token_file", "tok_model_vocab", b"\x04" + tok(1000, [1, 2, 999]))  # model vocabulary 1026
put("token_file", "u16", b"\x01" + struct.pack("<4H", 5, 6, 50256, 0))
put("token_file", "count_mismatch", b"\x00" + tok(300, [1, 2, 3], count=4))
put("token_file", "id_too_big", b"\x00" + tok(300, [300]))

# ---- bpe_tokenizer: vocabulary JSON NUL merges NUL text ----------------------------------------
def byte_alphabet():  # GPT-2's bytes_to_unicode
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


A = byte_alphabet()
tokens = [A[b] for b in range(256)]
merges = [("h", "e"), ("l", "l"), ("he", "ll"), (A[32], "w")]
tokens += [a + b for a, b in merges] + ["<|endoftext|>"]
vocab = json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False)
merges_txt = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
put("bpe_tokenizer", "gpt2_names", joined(vocab, merges_txt, "hello world<|endoftext|> hell\n"))
put("bpe_tokenizer", "hf_names", b"v" + joined(vocab, merges_txt, "well, hello"))
put("bpe_tokenizer", "missing_byte", joined(json.dumps({t: i for i, t in enumerate(tokens[1:])}), merges_txt, "x"))
put("bpe_tokenizer", "bad_merge", joined(vocab, merges_txt + "q z\n", "x"))

# ---- hf_tokenizer: tokenizer.json NUL text ---------------------------------------------------
GPT4 = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
        "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}


def hf_json(pre, normalizer=None, added=(), post=None, pair_merges=True):
    return json.dumps({
        "version": "1.0", "added_tokens": [dict(id=i, content=c, single_word=False, lstrip=False, rstrip=False,
                                                normalized=not sp, special=sp) for i, c, sp in added],
        "normalizer": normalizer, "pre_tokenizer": pre, "post_processor": post, "decoder": BYTE_LEVEL,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(tokens)},
                  "merges": [list(m) for m in merges] if pair_merges else [" ".join(m) for m in merges]}},
        ensure_ascii=False)


split = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": GPT4}, "behavior": "Isolated", "invert": False},
    dict(BYTE_LEVEL, use_regex=False)]}
template = {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                                                      {"Sequence": {"id": "A", "type_id": 0}}],
            "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [len(tokens) - 1]}}}
put("hf_tokenizer", "byte_level", joined(hf_json(BYTE_LEVEL), "hello world<|endoftext|> hell\n"))
put("hf_tokenizer", "legacy_merges", joined(hf_json(BYTE_LEVEL, pair_merges=False), "well, hello"))
put("hf_tokenizer", "split_added_template",
    joined(hf_json(split, added=[(len(tokens) - 1, "<|endoftext|>", True), (len(tokens), "  ", False)], post=template),
           "It's  he'LL 12345\n\n<|endoftext|>x"))
put("hf_tokenizer", "nfc", joined(hf_json(BYTE_LEVEL, normalizer={"type": "NFC"}), "cafe\u0301 \u1100\u1161"))
put("hf_tokenizer", "unsupported_regex", joined(hf_json(dict(split, pretokenizers=[
    {"type": "Split", "pattern": {"Regex": "\\d+(?<=x)"}, "behavior": "Isolated", "invert": False}, BYTE_LEVEL])), "x"))

# SentencePiece-style (Llama 2 / Jamba): characters, <0xXX> byte fallback, unk, legacy normalizer or Metaspace.
META = "\u2581"
SPM_VOCAB = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + [META, "h", "e", "l", "o", META + "h", "he", "ll", META + "he"]
SPM_MERGES = [[META, "h"], ["h", "e"], ["l", "l"], [META + "h", "e"]]
SPM_DECODER = {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": META}, "content": " "},
                                                {"type": "ByteFallback"}, {"type": "Fuse"},
                                                {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}


def spm_json(legacy):
    return json.dumps({
        "version": "1.0", "added_tokens": [dict(id=i, content=c, single_word=False, lstrip=False, rstrip=False,
                                                normalized=False, special=True) for i, c in enumerate(SPM_VOCAB[:3])],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": META},
                                                           {"type": "Replace", "pattern": {"String": " "}, "content": META}]}
        if legacy else None,
        "pre_tokenizer": None if legacy else {"type": "Metaspace", "replacement": META, "prepend_scheme": "first", "split": True},
        "post_processor": None, "decoder": SPM_DECODER,
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True,
                  "vocab": {t: i for i, t in enumerate(SPM_VOCAB)}, "merges": SPM_MERGES}}, ensure_ascii=False)


put("hf_tokenizer", "sentencepiece_legacy", joined(spm_json(True), "hello  the hell\n\u65e5\xff<s>"))
put("hf_tokenizer", "sentencepiece_metaspace", joined(spm_json(False), " hello the </s>h\u00e9"))

# ---- issue 23: small versions of the inputs found by hand (each is refused with one line now) ---
DEEP = "[" * 70 + "]" * 70  # past the 64-level limit
put("config", "issue23-deep-value", '{"device": ' + DEEP + '}')
put("config", "issue23-deep-set", joined("{}", "model.dim=" + DEEP))
put("config", "issue23-repeated-key", '{"train": {"steps": 5}, "train": {"steps": 6}}')
put("config", "issue23-overflow", joined("{}", "model.vocab_size=2147483647", "model.dim=65536",
                                         "train.batch_size=1048576", "train.seq_len=16777216"))
put("config", "issue23-int-truncation", joined("{}", "model.scan_chunk=2147483648"))
put("checkpoint", "issue23-deep-state", joined("{}", '{"format": "magellano-checkpoint-1", "step": ' + DEEP + '}'))
put("safetensors", "issue23-deep-dtype", raw_safetensors('{"a":{"dtype":' + DEEP + ',"shape":[1],"data_offsets":[0,4]}}', b"\0" * 4))
put("bpe_tokenizer", "issue23-deep-encoder", joined('{"a": ' + DEEP + '}', merges_txt, "x"))

# ---- safetensors_index: model.safetensors.index.json ----------------------------------------------
SHARDS = {"backbone.embeddings.weight": "model-00001-of-00002.safetensors",
          "backbone.layers.0.mixer.A_log": "model-00001-of-00002.safetensors",
          "lm_head.weight": "model-00002-of-00002.safetensors"}
put("safetensors_index", "transformers", json.dumps({"metadata": {"total_size": 6525276160}, "weight_map": SHARDS}, indent=2))
put("safetensors_index", "subfolder", '{"weight_map": {"a": "./shards/a.safetensors"}}')
put("safetensors_index", "escape", '{"weight_map": {"a": "../a.safetensors", "b": "/abs.safetensors"}}')
put("safetensors_index", "not_string", '{"weight_map": {"a": 3}}')
put("safetensors_index", "no_map", '{"metadata": {}}')
put("safetensors_index", "empty_map", '{"weight_map": {}}')

# ---- layer_pattern ------------------------------------------------------------------------------
for name, p in [("production", "(MMME)x9MMM"), ("plain", "MME"), ("nested", "((ME)x2M)x3"),
                ("spaces", " ( M M E ) x 2 "), ("max_count", "(M)x9999"), ("zero", "(ME)x0"),
                ("open", "((ME)"), ("letters", "MMX"), ("issue23-deep", "(" * 40 + "M" + ")" * 40)]:
    put("layer_pattern", name, p)

# ---- chat_template: a Jinja template NUL its variables (JSON) ----------------------------------
# Every case of the chat template fixtures (the real templates once each, with one conversation).
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures", "chat_templates")
with open(os.path.join(FIXTURES, "cases.json"), encoding="utf-8") as f:
    _seen = set()
    for case in json.load(f)["cases"]:
        if "template_file" in case:
            if case["template_file"] in _seen:
                continue
            _seen.add(case["template_file"])
            with open(os.path.join(FIXTURES, "templates", case["template_file"]), encoding="utf-8") as t:
                source = t.read()
        else:
            source = case["template"]
        name = case["name"].replace(":", "-").replace(".jinja", "")
        put("chat_template", name, joined(source, json.dumps(case["variables"], ensure_ascii=False)))
put("chat_template", "issue23-deep", "{{ " + "(" * 40 + "1" + ")" * 40 + " }}")
