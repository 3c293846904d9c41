"""Development tools: the fake OpenAI-compatible backend and the in-thread dev server.

Never imported by served code; tests, bench/, scripts/ and the `fakebackend` command use them. They import
nothing from the rest of `ensemble`.
"""
