"""What the router reads from an OpenAI `messages` list: the parts of a conversation.

A conversation is split once into its system prompt, earlier turns and the last user turn;
the last user turn is further reduced to its *core*: the final question of a few-shot
prompt (worked examples before it carry little about how hard this question is).

Texts are bounded here (`router_view`: a 16 KiB head and tail of each), so the features and the
embedder cost the same for a 4 MB prompt as for a 16 KiB one; the length features keep the true
lengths (`*_chars`).
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.router.heuristic import router_view, text_of

# A worked example ends with an answer line ("Answer: B", "Answer:\nB", "A: 42") and a blank line.
_EXAMPLE_END = re.compile(r"(?:Answer|A)\s*:[ \t]*\n?[^\n]{1,80}\n[ \t]*\n", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Conversation:
    """Texts (bounded by `router_view`) and shape of one request, as the features and the
    embedder see it; `*_chars` are the lengths of the texts as sent."""

    system: str
    earlier: tuple[str, ...]
    last_user: str
    n_messages: int
    n_user_turns: int
    tools: bool
    system_chars: int
    earlier_chars: int
    last_user_chars: int

    @property
    def core(self) -> str:
        """The last user turn without a few-shot preamble."""
        return strip_few_shot(self.last_user)

    @property
    def few_shot_examples(self) -> int:
        return len(_EXAMPLE_END.findall(self.last_user))


def strip_few_shot(text: str) -> str:
    """The text after the last worked example, or `text` itself when there is none."""
    last_end = -1
    for match in _EXAMPLE_END.finditer(text):
        last_end = match.end()
    if last_end <= 0:
        return text
    rest = text[last_end:].strip()
    return rest if len(rest) >= 10 else text


def parse(messages: Sequence[Mapping[str, Any]], tools: bool = False) -> Conversation:
    """Split `messages` (content as a string, a list of parts or None) into a Conversation."""
    system: list[str] = []
    turns: list[str] = []
    last_user = ""
    last_user_index = -1
    n_user = 0
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            continue
        role = message.get("role")
        text = text_of(message.get("content"))
        if role in ("system", "developer"):
            system.append(text)
        elif role == "user":
            n_user += 1
            last_user, last_user_index = text, i
        if message.get("tool_calls") or role == "tool":
            tools = True
    for message in messages[: max(last_user_index, 0)]:
        if isinstance(message, Mapping) and message.get("role") not in ("system", "developer"):
            turns.append(text_of(message.get("content")))
    system_text = "\n".join(s for s in system if s)
    return Conversation(
        system=router_view(system_text),
        earlier=tuple(router_view(t) for t in turns),
        last_user=router_view(last_user),
        n_messages=len(messages),
        n_user_turns=n_user,
        tools=tools,
        system_chars=len(system_text),
        earlier_chars=sum(map(len, turns)),
        last_user_chars=len(last_user),
    )
