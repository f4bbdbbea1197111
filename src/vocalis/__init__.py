"""Vocalis: a self-hosted voice agent server speaking the AssemblyAI Voice Agent API protocol."""

__version__ = "0.1.0"
