"""A route's `learning:` section: labels from its own live traffic (off unless configured).

    routes:
      auto:
        tiers: [small, large]
        router: default
        learning:
          sample_share: 0.02        # share of routed answers also asked of the other tier
          daily_budget_usd: "5.00"  # learning spend per UTC day (team `_learning`), then stop
          judge: judge-model        # a chat model of `models:` that compares the two answers
          retention_days: 30        # labels expire after this long

See gateway/learning/README.md for what is stored and how labels are exported."""

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

LEARNING_TEAM = "_learning"  # the account every learning call is charged to


class LearningConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Share of routed answers also asked of the other tier (0: off).
    sample_share: float = Field(default=0.0, ge=0.0, le=1.0)
    # Learning spend per UTC day (charged to team `_learning`), then it stops.
    daily_budget_usd: Decimal = Field(default=Decimal("1.00"), ge=0)
    judge: str | None = None  # a chat model name; without one, paired answers are not judged
    # Labels and feedback memos expire after this long.
    retention_days: int = Field(default=30, ge=1, le=3650)
    # Application feedback (POST /v1/feedback) needs a memo of each answer of the route, kept
    # this long (the window in which feedback is accepted; every answer is stored that long).
    feedback: bool = True
    # Hours each answer's memo is kept: the window in which POST /v1/feedback is accepted.
    feedback_window_hours: float = Field(default=24.0, gt=0, le=24 * 365)
    queue_max: int = Field(default=1000, ge=1)  # sampled answers waiting; beyond: dropped
    workers: int = Field(default=2, ge=1, le=64)  # paired calls in flight at once
    max_output_tokens: int = Field(default=1024, ge=1)  # the other tier's and the judge's cap
