"""How much each level may ask of a model: prompt sizes, reply caps and attempts, sized to the model.

A 135M model should not spend 3000 tokens on a cast list: past a few hundred tokens it repeats
itself, and on two CPU cores every token costs time. :meth:`Budget.for_client` picks a tier from
the model's size (parameters, known for local models) and its context; APIs and unknown sizes get
the full budget. :meth:`Budget.estimate` turns the planned calls into a time range before a long
run, from the decoding speed the local client measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.script.llm.client import ChatClient

TINY = 1_000_000_000  # parameters: below this a model rarely follows a JSON schema reliably
SMALL = 10_000_000_000
FALLBACK_BELOW = 3_000_000_000  # local models smaller than this fall back to the offline engine by default
PREFILL_SPEEDUP = 8.0  # prompt tokens are read about this much faster than reply tokens are written


@dataclass(slots=True)
class Budget:
    tier: str  # "tiny", "small" or "full"
    context_tokens: int
    source_chars: int  # source text one prompt may carry
    summary_chars: int
    max_characters: int
    outline_batch: int  # episodes per outline request
    attempts: int
    tokens: dict[str, int] = field(default_factory=dict)  # level -> max reply tokens (outline: per episode)
    tokens_per_s: float = 0.0

    @classmethod
    def for_client(cls, client: ChatClient, *, attempts: int | None = None,
                   max_characters: int | None = None) -> Budget:
        ctx = int(client.context_tokens)
        params = int(getattr(client, "parameters", 0) or 0)
        tier = "full" if not params or params >= SMALL else "tiny" if params < TINY else "small"
        # about half the context for source text (~1 token per CJK character)
        source = max(800, min(60_000, int(ctx * 0.45)))
        if tier == "full":
            summary = max(300, min(3000, source // 6))
            b = cls(tier, ctx, source, summary, 20, 10, 3,
                    {"summaries": max(512, summary * 2), "logline": 512, "characters": 3000, "outline": 400,
                     "scenes": 2048, "lines": 3000})
        elif tier == "small":
            source = min(source, 6000)
            summary = max(300, min(800, source // 6))
            b = cls(tier, ctx, source, summary, 12, 5, 3,
                    {"summaries": summary * 2, "logline": 300, "characters": 1600, "outline": 300,
                     "scenes": 1200, "lines": 2000})
        else:
            source = min(source, 1800)
            b = cls(tier, ctx, source, 200, 6, 3, 2,
                    {"summaries": 400, "logline": 160, "characters": 700, "outline": 160,
                     "scenes": 600, "lines": 900})
        # a reply never gets more room than the context leaves after the prompt
        room = max(256, ctx - source - 600)
        b.tokens = {k: min(v, room) for k, v in b.tokens.items()}
        if attempts is not None:
            b.attempts = attempts
        if max_characters is not None:
            b.max_characters = max_characters
        b.tokens_per_s = float(getattr(client, "tokens_per_s", 0.0) or 0.0)
        return b

    def reply_tokens(self, level: str, episodes: int = 1) -> int:
        if level == "outline":
            return min(self.tokens["outline"] * max(1, episodes), max(256, self.context_tokens - self.source_chars - 600))
        return self.tokens[level]

    def estimate(self, calls: dict[str, int]) -> tuple[float, float] | None:
        """Seconds for ``calls`` (level -> number of requests): typical (half the cap, one attempt) and
        worst (every reply to its cap, every attempt); None when the speed is unknown (an API)."""
        if self.tokens_per_s <= 0:
            return None
        low = high = 0.0
        for level, n in calls.items():
            cap = self.reply_tokens(level)
            prompt = self.source_chars / (self.tokens_per_s * PREFILL_SPEEDUP)
            low += n * (prompt + cap * 0.5 / self.tokens_per_s)
            high += n * self.attempts * (prompt + cap / self.tokens_per_s)
        return low, high
