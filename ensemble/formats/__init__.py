"""Plain values and text helpers every layer shares: message text, token usage, tool calls,
structured output.

The bottom of the import order: these modules import nothing else from `ensemble` (only the
standard library), no Django, no ORM and no HTTP, so the fake backend and the voting code can use
them as freely as the API.
"""
