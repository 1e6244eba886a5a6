"""Team budgets that hold: reserve the worst case atomically before a call, settle to the
cent after it, release on failure; rate limits; spend data. See README "Budgets and policies".
"""

from gateway.budget.enforcer import Admission, Budget, Reservation
from gateway.budget.service import BudgetRuntime, start_budget
from gateway.budget.view import BudgetView

__all__ = ["Admission", "Budget", "BudgetRuntime", "BudgetView", "Reservation", "start_budget"]
