"""Build a tiny local Qwen2 model, tokenizer and ShareGPT dataset: enough to run ms-swift end to end on a CPU.

Everything is generated in code from fixed seeds: no downloads, no network. torch, transformers and tokenizers
are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

VERSION = "2"  # bump when the fixtures change, so existing directories are rebuilt
MARKER = ".mhsft-fixtures"
# Qwen2's pre-tokenizer split (as in transformers' Qwen2Tokenizer, which AutoTokenizer rebuilds for a qwen2 model)
SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
SYSTEM = "You are a helpful assistant."
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and message['role'] != 'system' %}"
    "{{- '<|im_start|>system\\n" + SYSTEM + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
WORDS = ["apple", "banana", "cherry", "grape", "lemon", "mango", "red", "green", "blue", "cat", "dog", "fish"]
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@dataclass(frozen=True)
class Fixtures:
    """Paths of a built fixture directory."""

    root: Path
    model: Path
    train: Path
    val: Path


def build(root: Path) -> Fixtures:
    """Build the model, tokenizer and dataset under `root`; return at once if a complete build is already there."""
    root = Path(root).absolute()
    fx = Fixtures(root, root / "model", root / "data" / "train.jsonl", root / "data" / "val.jsonl")
    marker = root / MARKER
    if marker.is_file() and marker.read_text() == VERSION:
        return fx
    for stale in (marker, fx.model, fx.train.parent):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    rows = _samples(72, seed=0)
    _write_jsonl(fx.train, rows[:64])
    _write_jsonl(fx.val, rows[64:])
    tokenizer = _tokenizer(_corpus(rows))
    tokenizer.save_pretrained(fx.model)
    _model(tokenizer, fx.model)
    marker.write_text(VERSION)  # last: a half-built directory has no marker and is rebuilt
    return fx


def _samples(n: int, seed: int) -> list[dict]:
    """Short, learnable ShareGPT conversations: number words to digits, and copying a few words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        if i % 2:
            words = " ".join(rng.choice(WORDS) for _ in range(3))
            question, answer = f"Repeat: {words}", words
        else:
            a, b = rng.randrange(5), rng.randrange(5)
            question, answer = f"What is {NUMBERS[a]} plus {NUMBERS[b]}?", f"{a + b}"
        rows.append({"conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]})
    return rows


def _corpus(rows: list[dict]) -> list[str]:
    """Training text for the tokenizer: the dataset, the system prompt and a few hundred simple sentences."""
    rng = random.Random(1)
    text = [turn["value"] for row in rows for turn in row["conversations"]] + [SYSTEM, "system user assistant"]
    return text + [f"The {rng.choice(WORDS)} sees {rng.choice(NUMBERS)} {rng.choice(WORDS)}." for _ in range(300)]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def _tokenizer(corpus: list[str]):
    """A byte-level BPE tokenizer with Qwen2.5's chat special tokens, eos/pad and ChatML template."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS,
        chat_template=CHAT_TEMPLATE,
        model_max_length=2048,
        clean_up_tokenization_spaces=False,
    )


def _model(tokenizer, path: Path) -> None:
    """Save a randomly initialised tiny Qwen2 causal LM (float32, safetensors) and its generation config."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    eot, im_end = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=eot,
        eos_token_id=im_end,
        pad_token_id=eot,
        dtype="float32",
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=eot, eos_token_id=[im_end, eot], pad_token_id=eot)
    model.save_pretrained(path, safe_serialization=True)
