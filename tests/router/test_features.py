import numpy as np

from gateway.router.conversation import parse, strip_few_shot
from gateway.router.features import FEATURE_NAMES, structural_features

FEW_SHOT = (
    "What is 2+2?\nA) 3\nB) 4\nAnswer:\nB\n\n"
    "What colour is the sky?\nA) blue\nB) red\nAnswer:\nA\n\n"
    "Which planet is largest?\nA) Jupiter\nB) Mars\nAnswer:"
)


def test_strip_few_shot_keeps_last_question() -> None:
    assert strip_few_shot(FEW_SHOT).startswith("Which planet is largest?")
    assert strip_few_shot("Just a question?") == "Just a question?"


def test_parse_message_shapes() -> None:
    conv = parse(
        [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "image_url"}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
            {"role": "tool", "content": "42"},
            {"role": "user", "content": "second"},
        ]
    )
    assert conv.system == "Be terse."
    assert conv.last_user == "second"
    assert conv.n_user_turns == 2
    assert conv.tools
    assert "first" in conv.earlier


def test_parse_degenerate_inputs() -> None:
    assert parse([]).last_user == ""
    assert parse([{"role": "user"}]).last_user == ""
    assert parse([{"role": "user", "content": 5}]).last_user == ""


def test_structural_features_signal() -> None:
    plain = structural_features(parse([{"role": "user", "content": "hi"}]))
    code = structural_features(
        parse([{"role": "user", "content": "```python\ndef f(x):\n    return x\n```\nWhy?"}])
    )
    assert plain.shape == (len(FEATURE_NAMES),)
    assert plain.dtype == np.float32
    i = FEATURE_NAMES.index("code_markers")
    assert code[i] > plain[i]
    assert np.isfinite(structural_features(parse([]))).all()
    few = structural_features(parse([{"role": "user", "content": FEW_SHOT}]))
    assert few[FEATURE_NAMES.index("log_few_shot")] > 0
