"""The ``da`` command line: one entry point for the local stack, topics, every stage and the tools.

Settings are loaded here, once, and passed down to the stages.
"""
