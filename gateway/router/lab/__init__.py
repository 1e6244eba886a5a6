"""The router's training and evaluation lab: offline only, never imported while serving.

Public data, user logs, cross-validation, training, experiments, reports and the
`frugal router` CLI live here; what a request touches lives one level up (gateway/router/).
"""
