"""The response cache: exact (every answer-changing field in a versioned key), then semantic
(near-identical last user turn, Redis vector search, guarded against false hits).

Kept import-light on purpose: `gateway.config` imports `gateway.cache.settings`, so this
package's `__init__` must not import anything that imports `gateway.config`. The pipeline
uses `gateway.cache.service.ResponseCache`."""
