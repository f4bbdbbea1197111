"""Which model answers and what it sees: replies built from plans.

The factory owns the session's LLM (the server's, or a custom one from the session's or a stored
agent's ``llm``) and turns a :class:`~vocalis.session.reply.ReplyPlan` into a
:class:`~vocalis.session.reply.Reply`: a greeting is spoken verbatim; anything else asks the model
with the history, the one-shot instructions and, while tool rounds allow it, the tools.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from vocalis.protocol.config import SessionConfig
from vocalis.providers.base import LLM, ChatMessage, LLMRequest, ToolSpec
from vocalis.session.history import History
from vocalis.session.hooks import SessionDeps
from vocalis.session.reply import Reply, ReplyHost, ReplyPlan


class ReplyFactory:
    def __init__(
        self,
        host: ReplyHost,
        deps: SessionDeps,
        config: Callable[[], SessionConfig],
        history: History,
        llm: LLM,
    ) -> None:
        self._host = host
        self._deps = deps
        self._config = config
        self._history = history
        self.llm = llm

    def build(self, plan: ReplyPlan, *, tools: bool, pending_user_text: str | None = None) -> Reply:
        cfg = self._config()
        settings = self._deps.settings
        common: dict[str, Any] = {
            "plan": plan,
            "host": self._host,
            "clock": self._deps.clock,
            "tts": self._deps.providers.tts,
            "voice": cfg.effective_voice,
            "output_encoding": cfg.output_format.encoding,
            "output_rate": cfg.output_format.sample_rate,
            "chunk_ms": settings.output_chunk_ms,
            "lead_ms": settings.output_lead_ms,
            "text_only": cfg.output_type == "text",
        }
        if plan.trigger == "greeting":
            protected = "greeting" in cfg.uninterruptible_turns
            return Reply(text=cfg.greeting or "", protected=protected, **common)
        return Reply(llm=self.llm, request=self.request(plan, tools, pending_user_text), **common)

    def request(
        self, plan: ReplyPlan, tools: bool, pending_user_text: str | None = None
    ) -> LLMRequest:
        cfg = self._config()
        specs = tuple(ToolSpec(t.name, t.description, t.parameters) for t in cfg.all_tools)
        messages = self._history.messages(cfg.effective_system_prompt, plan.instructions)
        if pending_user_text is not None:
            messages.append(ChatMessage("user", pending_user_text))
        max_tokens = self._deps.settings.reply_max_tokens
        return LLMRequest(tuple(messages), specs if tools else (), max_tokens=max_tokens)

    def prefill_request(self, plan: ReplyPlan, tools: bool) -> LLMRequest | None:
        """The system prompt and tools alone, for a model that can cache them ahead of the first
        turn (the embedded one); ``None`` when the model cannot."""
        if getattr(self.llm, "prefill", None) is None:
            return None
        request = self.request(plan, tools)
        return replace(request, messages=request.messages[:1])
