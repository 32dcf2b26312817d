"""The site EMS's optimisation core (sans I/O): the plan-time model, the HiGHS LP and its safe fallback."""

from evse_emulator.energy.ems.lp import lower_bound, plan
from evse_emulator.energy.ems.model import Charger, Plan, SitePlan, Truck, TruckPlan, Weights

__all__ = ["Charger", "Plan", "SitePlan", "Truck", "TruckPlan", "Weights", "lower_bound", "plan"]
