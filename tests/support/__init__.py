"""Helpers the tests share (not tests): the real data sets, a fake OpenAI-compatible upstream,
a service started as a real process, waiting on conditions rather than for fixed times."""
