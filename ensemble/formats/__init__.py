"""Plain values and text helpers every layer shares: token usage, tool calls, structured output.

The bottom of the import order: these modules import nothing else from `ensemble`, no ORM and no HTTP.
"""
