"""Plain values and text helpers shared by every layer (message text, for now).

Imports only the standard library: no Django, no ORM, no HTTP, so the fake backend and the voting
code can use it as freely as the API.
"""
