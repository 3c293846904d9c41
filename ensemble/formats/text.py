"""The text of OpenAI chat messages, read the same way by voting, the history and the fake backend."""
from __future__ import annotations

from typing import Any


def message_text(content: Any) -> str:
    """Return the text of a message content: a string, or its text parts joined by newlines ("" for
    anything else, such as the null content of an assistant turn that only called tools)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text", "") for part in content if isinstance(part, dict)]
        return "\n".join(part for part in parts if isinstance(part, str))
    return ""


def last_user_text(messages: list) -> str:
    """Return the text of the last user message of `messages`, or "" if there is none."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message.get("content"))
    return ""
