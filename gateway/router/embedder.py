"""Sentence embeddings with the int8 ONNX all-MiniLM-L6-v2 (mean pooling, L2-normalised).

Inputs are truncated to `MAX_TOKENS` tokens: a very long text keeps its head and its tail
(`HEAD_CHARS` + `TAIL_CHARS` characters) before tokenisation, so that a question at the end of
a long context still counts and tokenising a 100 kB prompt stays cheap.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

from gateway.router.resources import onnx_model_path, tokenizer_path

MAX_TOKENS = 256
HEAD_CHARS = 900
TAIL_CHARS = 300
DIM = 384


def clip_text(text: str) -> str:
    """Head and tail of a long text; short texts unchanged."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + " ... " + text[-TAIL_CHARS:]


class MiniLMEmbedder:
    """Thread-safe after construction: the tokenizer and the session are only read."""

    def __init__(
        self,
        model: str | Path | None = None,
        tokenizer: str | Path | None = None,
        threads: int = 1,
    ) -> None:
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path(tokenizer)))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(onnx_model_path(model)), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One L2-normalised row per text (an empty text gets the embedding of "")."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        encodings = self._tokenizer.encode_batch([clip_text(t) for t in texts])
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        normalised: npt.NDArray[np.float32] = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return normalised

    def embed_sorted(self, texts: Sequence[str], batch: int = 64) -> npt.NDArray[np.float32]:
        """Embed many texts in length-sorted batches (for training; same result as `embed`)."""
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            out[idx] = self.embed([texts[i] for i in idx])
        return out
