"""The shared conformance suite's fixtures (a real `vireo serve`, SDK connections, agents)."""
import importlib.util
import os

_path = os.path.join(
    os.environ.get("VIREO_SHARED_CONFORMANCE",
                   os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "conformance")),
    "conftest.py")
_spec = importlib.util.spec_from_file_location("shared_conformance", _path)
shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shared)

workdir = shared.workdir
engine = shared.engine
conn = shared.conn
system = shared.system
agents = shared.agents
wait_for = shared.wait_for
unique = shared.unique
