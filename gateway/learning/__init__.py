"""Labels from the deployment's own traffic, for `frugal router train --logs`.

Serving side (runs in the gateway, never on the request path): paired sampling of a share of a
route's answers with a pairwise judge (sampling.py, judge.py), implicit labels from cascade
escalations and application feedback (feedback.py), the label store and its export (labels.py),
and the live router's promotion and rollback (rollout.py). README.md documents all of it."""
