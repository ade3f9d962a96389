"""``nerloop.OpenAICompatible.v1``: any OpenAI-compatible chat-completions endpoint."""

from .model import Completion, LLMRequestError, OpenAICompatible
from .registry import openai_compatible_v1

__all__ = [
    "Completion",
    "LLMRequestError",
    "OpenAICompatible",
    "openai_compatible_v1",
]
