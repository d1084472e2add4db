"""The workbench: a browser's view of the service for policy teams, served under /workbench/ on
the HTTP port. The catalogue, a case tried, its timeline and the impact of an edit, as a JSON API
(api.py) and static pages (static/, served by static.py), built by `build_workbench` (app.py)."""

from rules_engine.workbench.api import WorkbenchApi, WorkbenchOptions
from rules_engine.workbench.app import Workbench, build_workbench

__all__ = ["Workbench", "WorkbenchApi", "WorkbenchOptions", "build_workbench"]
