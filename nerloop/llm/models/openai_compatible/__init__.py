"""``nerloop.OpenAICompatible.v1``: any OpenAI-compatible chat-completions endpoint."""

from nerloop.llm.models.openai_compatible.model import Completion, LLMRequestError, OpenAICompatible
from nerloop.llm.models.openai_compatible.registry import openai_compatible_v1

__all__ = [
    "Completion",
    "LLMRequestError",
    "OpenAICompatible",
    "openai_compatible_v1",
]
