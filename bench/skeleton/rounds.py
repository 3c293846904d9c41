"""The two rounds of backend calls that every three-model completion makes, and its answer."""
from __future__ import annotations

import asyncio
import time
import uuid

from django.conf import settings

from ensemble.completion.admission import admission_release
from ensemble.backend import client_for_running_loop


async def two_rounds(messages: list[dict]) -> dict:
    """Ask every model, then ask every model again with all answers; return a chat.completion."""
    client = client_for_running_loop()  # Trio's own, one per event loop
    admission_release()  # as Trio's service does before its first call (a no-op outside the gate)
    answers = await asyncio.gather(*(client.chat(model, messages) for model in settings.MODELS))
    listing = "\n\n".join(f"Candidate {number}: {answer.content}" for number, answer in enumerate(answers, 1))
    ballot = [*messages, {"role": "user", "content": f"Which candidates are acceptable?\n\n{listing}"}]
    await asyncio.gather(*(client.chat(model, ballot) for model in settings.MODELS))
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": "skeleton",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": answers[0].content}}],
    }
