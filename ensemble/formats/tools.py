"""Tool calling: what a well-formed tool call is, and how voters read an answer that makes one.

A client's `tools`, `tool_choice` and `parallel_tool_calls` reach every member's generation call
(and the synthesizer's), never a ballot. A member may then answer with tool calls instead of (or
besides) text. Voters judge text, so wherever an answer is shown to a model (ballots, the
synthesizer, `concat`) or to a person (the voting details, the vote pages), it is `answer_text`:
its text, then one sentence per call. The winner's calls themselves reach the client as the
backend gave them (ids included), so the client runs the tool and sends its result back.
"""
from __future__ import annotations


def tool_calls_of(value) -> list[dict] | None:
    """Return `value` as OpenAI tool calls with only the keys OpenAI defines, or None unless it is
    a non-empty list of `{"id", "type": "function", "function": {"name", "arguments"}}` objects
    whose id, name and arguments are strings."""
    if not isinstance(value, list) or not value or not all(_is_tool_call(call) for call in value):
        return None
    return [{"id": call["id"], "type": "function",
             "function": {"name": call["function"]["name"], "arguments": call["function"]["arguments"]}}
            for call in value]


def _is_tool_call(call) -> bool:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        return False
    return (isinstance(call.get("id"), str) and call.get("type") == "function"
            and all(isinstance(call["function"].get(key), str) for key in ("name", "arguments")))


def answer_text(content: str, tool_calls) -> str:
    """Return what voters read of an answer: its text, then `Calls the tool NAME with arguments ARGS`
    for each of its tool calls, one per line."""
    calls = [f"Calls the tool {call['function']['name']} with arguments {call['function']['arguments']}"
             for call in tool_calls or ()]
    return "\n".join([content, *calls] if content else calls)


def tool_choice_unmet(params: dict, tool_calls) -> str | None:
    """Return why an answer with `tool_calls` breaks what `params` promise the client, or None.

    OpenAI guarantees a call under `tool_choice` "required" or a named function, no call under
    "none", and at most one call when `parallel_tool_calls` is false; a member that breaks that
    must not be the answer a client relies on.
    """
    choice = params.get("tool_choice")
    if not params.get("tools"):
        return None
    if choice == "none" and tool_calls:
        return "the answer calls a tool, which tool_choice none forbids"
    if params.get("parallel_tool_calls") is False and len(tool_calls) > 1:
        return f"the answer makes {len(tool_calls)} tool calls, but parallel_tool_calls is false"
    if choice in (None, "auto", "none"):
        return None
    if not tool_calls:
        return "the answer calls no tool, which tool_choice asked for"
    if isinstance(choice, dict):
        name = choice["function"]["name"]
        if not any(call["function"]["name"] == name for call in tool_calls):
            return f"the answer does not call {name}, which tool_choice asked for"
    return None


def unanswered_tool_message(messages: list[dict]) -> int | None:
    """Return the index of the first `tool` message that answers no call of the assistant turn before
    it (tool messages between them aside), or None.

    OpenAI refuses such a conversation with a 400, and so does any backend that follows it; checked
    here, the client gets that 400 naming the message, instead of a 502 after every member failed.
    """
    open_calls: set[str] = set()
    for index, message in enumerate(messages):
        if message["role"] == "assistant":
            open_calls = {call["id"] for call in message.get("tool_calls") or ()}
        elif message["role"] != "tool":
            open_calls = set()
        elif message.get("tool_call_id") not in open_calls:
            return index
    return None
